"""Walk-forward splits with purge and embargo, and normalisation fitted on the past only.

Sample t is the window of snapshots [t - window + 1, t] with labels from t + 1 up to
t + max_horizon. For a test block [start, end):
- purge: training samples whose label looks past `start` (t + max_horizon >= start) would
  have seen test-period prices; they are dropped.
- embargo: a further `embargo` samples before the purge boundary are dropped, because
  features are serially correlated (overlapping input windows, persistent order flow).
Training always precedes testing (expanding window), so nothing from the future of a test
block ever trains the model that is scored on it. The same rule separates the fitted
samples from the validation block that picks the training step (early stopping).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Fold:
    train: range  # sample positions the model is fitted on
    val: range  # the end of the training period, held out to pick the training step
    test: range  # scored out of sample, never seen before scoring

    def as_dict(self) -> dict:
        return {k: [r.start, r.stop] for k, r in (("train", self.train), ("val", self.val), ("test", self.test))}


def walk_forward(first: int, stop: int, folds: int, test_fraction: float, max_horizon: int,
                 embargo: int, val_fraction: float = 0.15) -> list[Fold]:
    """`folds` consecutive test blocks covering the last `test_fraction` of [first, stop),
    each trained on everything before it minus purge and embargo; the last `val_fraction`
    of that training period is the validation block (itself purged and embargoed from the
    samples that are fitted), so early stopping never looks at the test block.

    first: the first usable sample (window - 1); stop: one past the last labelled sample.
    """
    if folds < 1 or not 0 < test_fraction < 1 or not 0 < val_fraction < 1 or max_horizon < 1 or embargo < 0:
        raise ValueError(f"need folds >= 1, 0 < test_fraction < 1, 0 < val_fraction < 1, max_horizon >= 1, "
                         f"embargo >= 0 (got {folds}, {test_fraction}, {val_fraction}, {max_horizon}, {embargo})")
    n = stop - first
    test_len = int(n * test_fraction) // folds
    if test_len < 1:
        raise ValueError(f"{n} samples cannot hold {folds} test block(s) of {test_fraction:.0%}")
    gap = max_horizon + embargo
    out = []
    for k in range(folds):
        start = stop - (folds - k) * test_len
        val_stop = start - gap
        val_start = val_stop - int((val_stop - first) * val_fraction)
        fit_stop = val_start - gap
        if fit_stop - first < test_len or val_stop <= val_start:
            raise ValueError(f"fold {k}: only {max(0, fit_stop - first)} training samples before the "
                             f"test block at {start} (purge {max_horizon} + embargo {embargo}, twice, "
                             f"with a validation block); collect more history or use fewer folds")
        out.append(Fold(range(first, fit_stop), range(val_start, val_stop), range(start, start + test_len)))
    return out


@dataclass(frozen=True, slots=True)
class Normaliser:
    """Per-channel z-score after an optional log1p (sizes span orders of magnitude)."""

    mean: np.ndarray
    std: np.ndarray
    log: np.ndarray  # bool per channel

    @classmethod
    def fit(cls, x: np.ndarray, log: np.ndarray) -> Normaliser:
        """x: [n, channels] from training samples ONLY."""
        z = np.where(log, np.log1p(np.maximum(x, 0)), x).astype(np.float64)
        std = z.std(axis=0)
        return cls(z.mean(axis=0).astype(np.float32), np.where(std > 1e-12, std, 1.0).astype(np.float32),
                   np.asarray(log, dtype=bool))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = np.where(self.log, np.log1p(np.maximum(x, 0)), x)
        return ((z - self.mean) / self.std).astype(np.float32)

    def state(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "log": self.log.tolist()}

    @classmethod
    def from_state(cls, s: dict) -> Normaliser:
        return cls(np.asarray(s["mean"], np.float32), np.asarray(s["std"], np.float32),
                   np.asarray(s["log"], bool))
