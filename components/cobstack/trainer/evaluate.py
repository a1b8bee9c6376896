"""Out-of-sample scoring of the model against baselines, per horizon.

Baselines, each fitted on the fold's training samples only:
- majority: the most frequent training class, always;
- persistence: the label of the latest horizon already complete (labels[t - h]);
- logistic: multinomial logistic regression on the published top-of-book signals
  (imbalance at every published depth, normalised OFI, microprice offset from the mid),
  fitted with the same cross-entropy as the model, and given the same decision bias
  tuned on the validation block (metrics.decide), so it is not handicapped by the argmax.
Only test-block samples are scored.
"""

from __future__ import annotations

import numpy as np
import torch

from .dataset import Series
from .labels import CLASSES, NO_LABEL, persistence
from .metrics import decide, fit_bias, scores
from .splits import Fold, Normaliser

LOGISTIC_FEATURES = ("ofi_norm", "micro_dev")  # plus every imbalance_* column


def logistic_columns(names: list[str]) -> list[int]:
    return [i for i, n in enumerate(names) if n in LOGISTIC_FEATURES or n.startswith("imbalance_")]


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by L-BFGS (convex, so deterministic to tolerance)."""
    xt, yt = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(y)
    w = torch.zeros(x.shape[1], CLASSES, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(CLASSES, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy()


def baseline_predictions(series: Series, labels: np.ndarray, fold: Fold,
                         horizons: list[int]) -> dict[str, np.ndarray]:
    """name -> predicted classes [len(test), H] for each baseline."""
    train, test = np.arange(fold.train.start, fold.train.stop), np.arange(fold.test.start, fold.test.stop)
    val = np.arange(fold.val.start, fold.val.stop)
    h = len(horizons)
    majority = np.empty((len(test), h), dtype=np.int64)
    probs_val, probs_test = np.empty((len(val), h, CLASSES)), np.empty((len(test), h, CLASSES))
    cols = logistic_columns(series.feature_names)
    norm = Normaliser.fit(series.feats[train][:, cols], np.zeros(len(cols), dtype=bool))
    x = {name: norm(series.feats[idx][:, cols]) for name, idx in (("train", train), ("val", val), ("test", test))}
    for j in range(h):
        y = labels[train, j]
        ok = y != NO_LABEL
        majority[:, j] = np.bincount(y[ok], minlength=CLASSES).argmax()
        w, b = fit_logistic(x["train"][ok], y[ok])
        probs_val[:, j], probs_test[:, j] = softmax(x["val"] @ w + b), softmax(x["test"] @ w + b)
    logistic = decide(probs_test, fit_bias(probs_val, labels[val]))
    return {"majority": majority, "persistence": persistence(labels, horizons)[test], "logistic": logistic}


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def score_fold(labels: np.ndarray, fold: Fold, horizons: list[int], model_pred: np.ndarray,
               baselines: dict[str, np.ndarray]) -> dict:
    """{"model": {h: scores}, "<baseline>": {h: scores}, "label_mix": {h: [down, flat, up]}}
    over the fold's test samples that have a label (persistence: also a forecast)."""
    y = labels[fold.test.start:fold.test.stop]
    preds = {"model": model_pred, **baselines}
    out: dict = {name: {} for name in preds}
    out["label_mix"] = {}
    for j, hz in enumerate(horizons):
        ok = y[:, j] != NO_LABEL
        out["label_mix"][str(hz)] = (np.bincount(y[ok, j], minlength=CLASSES) / max(ok.sum(), 1)).tolist()
        for name, p in preds.items():
            m = ok & (p[:, j] != NO_LABEL)
            out[name][str(hz)] = scores(y[m, j], p[m, j])
    return out
