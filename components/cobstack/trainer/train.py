"""Supervised training of one walk-forward fold, with exact resume.

Batches are a pure function of (seed, epoch, position): each epoch's order is a permutation
drawn from a generator seeded by (seed, fold, epoch), so the data cursor is two integers
and a resumed run draws exactly the batches the killed one would have. The checkpointed
state (model, optimiser, RNG states, cursor, step) therefore reproduces the next step
bit for bit on the same device and thread count.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import TrainerSettings
from .checkpoint import rng_state, set_rng_state
from .dataset import Series, book_log_mask, windows
from .labels import CLASSES, NO_LABEL, direction_labels
from .metrics import fit_bias
from .models import PRESETS, LOBModel, autocast, build, make_optimizer
from .splits import Fold, Normaliser, walk_forward


@dataclass(frozen=True)
class Plan:
    """Resolved hyperparameters of a run (settings plus the preset's defaults)."""

    preset: str
    window: int
    batch_size: int
    lr: float
    steps: int
    horizons: tuple[int, ...]
    label: str
    taker_fee: float  # fraction
    folds: int
    test_fraction: float
    val_fraction: float
    embargo: int
    seed: int
    device: str
    compile: bool

    @classmethod
    def from_settings(cls, t: TrainerSettings) -> Plan:
        p = PRESETS[t.preset]
        window = t.window or p.window
        device = t.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("trainer.device is cuda but torch sees no GPU; set trainer.device=cpu "
                               "or run on a GPU node")
        return cls(t.preset, window, t.batch_size or p.batch_size, t.lr or p.lr, t.steps,
                   tuple(t.horizons), t.label, t.taker_fee_bps * 1e-4, t.folds, t.test_fraction,
                   t.val_fraction, window if t.embargo is None else t.embargo, t.seed, device, t.compile)

    def run_id(self, data_key: str) -> str:
        """Identifies a run: hyperparameters (not the device) and the data it trains on."""
        d = asdict(self)
        d.pop("device")
        blob = json.dumps({**d, "data": data_key}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


@dataclass
class Data:
    series: Series
    labels: np.ndarray  # int64 [N, H]
    folds: list[Fold]


def prepare(series: Series, plan: Plan) -> Data:
    n = len(series)
    labels = direction_labels(series.mid, series.spread, list(plan.horizons), plan.taker_fee, plan.label)
    # Samples need a full window behind them and every horizon's label ahead of them.
    first = plan.window - 1
    if plan.label == "smoothed":
        first = max(first, max(plan.horizons) - 1)
    stop = n - max(plan.horizons)
    if stop <= first:
        raise ValueError(f"{n} snapshots are too few for window {plan.window} and horizons "
                         f"{list(plan.horizons)}; collect more history (trainer.min_snapshots)")
    folds = walk_forward(first, stop, plan.folds, plan.test_fraction, max(plan.horizons), plan.embargo,
                         plan.val_fraction)
    return Data(series, labels, folds)


class FoldTrainer:
    """Model, optimiser, normalisation and batch cursor of one walk-forward fold."""

    def __init__(self, data: Data, fold_index: int, plan: Plan):
        self.data, self.plan, self.fold_index = data, plan, fold_index
        self.fold = fold = data.folds[fold_index]
        s = data.series
        n = len(s)
        flat = s.book.reshape(n, -1)
        # Statistics from the snapshots the training samples can see, never the test block's.
        seen = slice(0, fold.train.stop)
        self.book_norm = Normaliser.fit(flat[seen], book_log_mask(s.book.shape[1:]))
        self.feat_norm = Normaliser.fit(s.feats[seen], np.zeros(s.feats.shape[1], dtype=bool))
        self.book = torch.from_numpy(self.book_norm(flat))
        self.feats = torch.from_numpy(self.feat_norm(s.feats))
        self.labels = torch.from_numpy(data.labels)
        self.train_idx = np.arange(fold.train.start, fold.train.stop)
        self.val_idx = np.arange(fold.val.start, fold.val.stop)
        self.best: dict | None = None  # {"loss", "step", "model"}: the weights early stopping keeps
        self.bias = np.zeros(len(plan.horizons))  # decision bias per horizon (metrics.decide)
        torch.manual_seed(plan.seed * 1000 + fold_index)
        self.model: LOBModel = build(plan.preset, s.book.shape[1], s.book.shape[2] * s.book.shape[3],
                                     s.feats.shape[1], len(plan.horizons), device=plan.device,
                                     window=plan.window)
        if PRESETS[plan.preset].kind == "transformer" and plan.device == "cuda":
            self.model.encoder.checkpointing = True
        self.forward = torch.compile(self.model) if plan.compile else self.model
        self.opt = make_optimizer(self.model, plan.lr, plan.device)
        self.step_no, self.epoch, self.pos = 0, 0, 0
        self._perm = self._permutation()
        self._fit_wide()

    @torch.no_grad()
    def _fit_wide(self, most: int = 20_000) -> None:
        """Start the linear path at its optimum: multinomial logistic regression of every
        horizon on the window features (convex, solved by L-BFGS on at most `most` evenly
        spaced training samples), so gradient steps only have to add what the deep path
        finds. The deep head starts at zero for the same reason."""
        idx = self.train_idx[np.linspace(0, len(self.train_idx) - 1, min(most, len(self.train_idx))).astype(int)]
        x = self.model.wide_inputs(self.feats[torch.from_numpy(windows(idx, self.plan.window))]).double()
        y = self.labels[idx]
        w = torch.zeros(x.shape[1], y.shape[1] * CLASSES, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(y.shape[1] * CLASSES, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            with torch.enable_grad():
                loss = self.loss((x @ w + b).view(len(idx), -1, CLASSES), y) + 1e-3 * (w * w).sum()
                loss.backward()
            return loss

        opt.step(closure)
        self.model.wide.weight.copy_(w.detach().T.to(self.model.wide.weight))
        self.model.wide.bias.copy_(b.detach().to(self.model.wide.bias))
        self.model.head.weight.zero_()
        self.model.head.bias.zero_()

    def _permutation(self) -> np.ndarray:
        rng = np.random.default_rng([self.plan.seed, self.fold_index, self.epoch])
        return rng.permutation(self.train_idx)

    def inputs(self, positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised input windows ending at `positions`, on the device."""
        w = torch.from_numpy(windows(positions, self.plan.window))
        s = self.data.series.book.shape
        book = self.book[w].view(len(positions), self.plan.window, s[1], s[2], s[3])
        dev = self.plan.device
        return book.to(dev, non_blocking=True), self.feats[w].to(dev, non_blocking=True)

    def next_batch(self) -> np.ndarray:
        b = self.plan.batch_size
        if self.pos + b > len(self._perm):
            self.epoch, self.pos = self.epoch + 1, 0
            self._perm = self._permutation()
        batch = self._perm[self.pos:self.pos + b]
        self.pos += b
        return batch

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        losses = [F.cross_entropy(logits[:, j].float(), y[:, j], ignore_index=NO_LABEL)
                  for j in range(y.shape[1])]
        return torch.stack(losses).mean()

    def step(self) -> float:
        self.model.train()
        positions = self.next_batch()
        book, feats = self.inputs(positions)
        y = self.labels[positions].to(self.plan.device)
        with autocast(self.plan.device):
            logits = self.forward(book, feats)
        loss = self.loss(logits, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.step_no += 1
        return float(loss.detach())

    @torch.no_grad()
    def validate(self, batch: int = 512) -> float:
        """Mean loss on the validation block (the early-stopping criterion)."""
        self.model.eval()
        total = 0.0
        for i in range(0, len(self.val_idx), batch):
            positions = self.val_idx[i:i + batch]
            book, feats = self.inputs(positions)
            with autocast(self.plan.device):
                logits = self.forward(book, feats)
            total += float(self.loss(logits, self.labels[positions].to(self.plan.device))) * len(positions)
        return total / len(self.val_idx)

    def keep_if_best(self, val_loss: float) -> bool:
        """Remember the current weights if they have the lowest validation loss so far."""
        if self.best is not None and val_loss >= self.best["loss"]:
            return False
        self.best = {"loss": val_loss, "step": self.step_no,
                     "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
        return True

    def use_best(self) -> None:
        """Load the weights early stopping chose (the latest ones if never validated) and
        tune the decision bias on the validation block."""
        if self.best is not None:
            self.model.load_state_dict(self.best["model"])
        self.bias = fit_bias(self.predict(self.val_idx), self.data.labels[self.val_idx])

    @torch.no_grad()
    def predict(self, positions: np.ndarray, batch: int = 512) -> np.ndarray:
        """Class probabilities [n, H, 3] at `positions`."""
        self.model.eval()
        out = []
        for i in range(0, len(positions), batch):
            book, feats = self.inputs(positions[i:i + batch])
            with autocast(self.plan.device):
                out.append(torch.softmax(self.forward(book, feats).float(), dim=-1).cpu())
        return torch.cat(out).numpy() if out else np.zeros((0, len(self.plan.horizons), CLASSES))

    @torch.no_grad()
    def embed(self, positions: np.ndarray, batch: int = 512) -> np.ndarray:
        """The DQN's view of each snapshot [n, D + 3H]: the encoder's embedding and the
        supervised head's log-probabilities for every horizon."""
        self.model.eval()
        out = []
        for i in range(0, len(positions), batch):
            book, feats = self.inputs(positions[i:i + batch])
            with autocast(self.plan.device):
                emb = self.model.embed(book, feats).float()
                logp = torch.log_softmax(self.forward(book, feats).float(), dim=-1).flatten(1)
            out.append(torch.cat([emb, logp], dim=1).cpu())
        return torch.cat(out).numpy()

    def state(self) -> dict:
        return {"fold": self.fold_index, "step": self.step_no, "epoch": self.epoch, "pos": self.pos,
                "model": self.model.state_dict(), "optim": self.opt.state_dict(), "rng": rng_state(),
                "best": self.best}

    def load_state(self, state: dict) -> None:
        if state["fold"] != self.fold_index:
            raise ValueError(f"checkpoint is for fold {state['fold']}, not {self.fold_index}")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optim"])
        self.step_no, self.epoch, self.pos = state["step"], state["epoch"], state["pos"]
        self.best = state["best"]
        self._perm = self._permutation()
        set_rng_state(state["rng"])
