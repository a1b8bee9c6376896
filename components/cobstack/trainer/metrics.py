"""Classification scores, in plain numpy so baselines and models are scored by one code path.

macro-F1: the unweighted mean of per-class F1 over the classes that occur in the truth or
the predictions (as scikit-learn does), so a model that only ever says "flat" scores low
even when flat is the majority. MCC: Gorodkin's multiclass Matthews correlation, 0 for a
constant prediction, 1 for a perfect one, comparable across class balances.
"""

from __future__ import annotations

import math

import numpy as np


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """int64 [n_classes, n_classes]: rows truth, columns prediction."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"truth and predictions differ in shape: {y_true.shape} vs {y_pred.shape}")
    bad = (y_true < 0) | (y_true >= n_classes) | (y_pred < 0) | (y_pred >= n_classes)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} labels outside 0..{n_classes - 1}; drop NO_LABEL rows first")
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(n_classes, n_classes)


def macro_f1(cm: np.ndarray) -> float:
    tp = np.diag(cm).astype(np.float64)
    support, predicted = cm.sum(axis=1), cm.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return 0.0
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean())


def mcc(cm: np.ndarray) -> float:
    cm = cm.astype(np.float64)
    s = cm.sum()
    c = np.trace(cm)
    t, p = cm.sum(axis=1), cm.sum(axis=0)
    denom = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / denom) if denom > 0 else 0.0


def scores(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int = 3) -> dict:
    """{"f1", "mcc", "accuracy", "n", "confusion"} for one horizon."""
    cm = confusion(y_true, y_pred, n_classes)
    n = int(cm.sum())
    return {"f1": macro_f1(cm), "mcc": mcc(cm), "accuracy": float(np.trace(cm) / n) if n else 0.0,
            "n": n, "confusion": cm.tolist()}


# Decision offsets tried on the validation block: added to the log-probability of "down"
# and "up" before the argmax (0 = plain argmax).
BIAS_GRID = np.arange(0.0, 4.01, 0.25)


def decide(probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Classes from probabilities [n, H, 3] with a per-horizon move bias [H].

    A calibrated model's argmax almost never calls a rare move, which MCC and macro-F1
    punish; lowering the bar for "down"/"up" by a bias chosen on validation data
    ("threshold moving") trades a little precision for much more recall."""
    logp = np.log(np.clip(probs, 1e-12, 1.0))
    logp[..., 0] += bias
    logp[..., 2] += bias
    return logp.argmax(axis=-1)


def fit_bias(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per horizon, the BIAS_GRID value with the best MCC on these (validation) samples;
    ties go to the smaller bias."""
    out = np.zeros(probs.shape[1])
    for j in range(probs.shape[1]):
        ok = labels[:, j] >= 0
        best = -2.0
        for b in BIAS_GRID:
            m = mcc(confusion(labels[ok, j], decide(probs[ok, j:j + 1], np.array([b]))[:, 0], 3))
            if m > best + 1e-12:
                best, out[j] = m, b
    return out
