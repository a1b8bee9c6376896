"""Direction labels over several horizons, with a no-trade band tied to trading cost.

Classes: 0 = down, 1 = flat, 2 = up (the order of a signal's `probs`). A move only counts
as up or down when it exceeds what a round trip would cost to act on it at time t: the
half-spread paid crossing the book plus the taker fee, as a fraction of the mid. Anything
smaller is "flat": a model cannot earn money predicting it.

Two label definitions:
- "point": r = m[t+h] / m[t] - 1 (the mid h snapshots ahead).
- "smoothed" (DeepLOB, Zhang et al. 2019): r = mean(m[t+1..t+h]) / mean(m[t-h+1..t]) - 1,
  which denoises the label at the price of a little look-behind.
Positions whose label would need data outside the series are NO_LABEL.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DOWN, FLAT, UP = 0, 1, 2
NO_LABEL = -1
CLASSES = 3

LabelKind = Literal["point", "smoothed"]


def cost_threshold(mid: np.ndarray, spread: np.ndarray, taker_fee: float) -> np.ndarray:
    """Per-sample band as a fraction of the mid: half-spread / mid + taker fee (fraction)."""
    return 0.5 * spread / mid + taker_fee


def future_returns(mid: np.ndarray, horizon: int, kind: LabelKind = "point") -> np.ndarray:
    """Relative mid change used for the label at each t; NaN where it is not defined."""
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 snapshot, got {horizon}")
    n = len(mid)
    out = np.full(n, np.nan)
    if n <= horizon:
        return out
    if kind == "point":
        out[:-horizon] = mid[horizon:] / mid[:-horizon] - 1
        return out
    if kind == "smoothed":
        c = np.concatenate(([0.0], np.cumsum(mid, dtype=np.float64)))
        t = np.arange(horizon - 1, n - horizon)  # needs h past (incl. t) and h future points
        past = (c[t + 1] - c[t + 1 - horizon]) / horizon
        future = (c[t + 1 + horizon] - c[t + 1]) / horizon
        out[t] = future / past - 1
        return out
    raise ValueError(f"unknown label kind {kind!r}: expected 'point' or 'smoothed'")


def direction_labels(mid: np.ndarray, spread: np.ndarray, horizons: list[int], taker_fee: float,
                     kind: LabelKind = "point") -> np.ndarray:
    """int64 [n, len(horizons)] of DOWN/FLAT/UP, NO_LABEL where the horizon runs off the end."""
    mid = np.asarray(mid, dtype=np.float64)
    band = cost_threshold(mid, np.asarray(spread, dtype=np.float64), taker_fee)
    out = np.full((len(mid), len(horizons)), NO_LABEL, dtype=np.int64)
    for j, h in enumerate(horizons):
        r = future_returns(mid, h, kind)
        ok = ~np.isnan(r)
        col = np.full(len(mid), FLAT, dtype=np.int64)
        col[r > band] = UP
        col[r < -band] = DOWN
        out[ok, j] = col[ok]
    return out


def persistence(labels: np.ndarray, horizons: list[int]) -> np.ndarray:
    """The persistence forecast: at t, the label of the latest horizon already complete,
    i.e. labels[t - h] (known at t: it only used mids up to t). NO_LABEL before that."""
    out = np.full_like(labels, NO_LABEL)
    for j, h in enumerate(horizons):
        out[h:, j] = labels[:-h, j]
    return out
