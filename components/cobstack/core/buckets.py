"""Price buckets: the consolidated ladder aggregated on a fixed price grid, per venue.

A bid at price p belongs to the bucket labelled floor(p / size) * size, an ask to the one
labelled ceil(p / size) * size: each side rounds away from the mid. For any non-crossed book
(bid < ask) every bid label is then strictly below every ask label, so a labelled bucket
never holds both sides. Buckets are counted from the touch outward: bid bucket 0 holds the
best bid, ask bucket 0 the best ask, and each side publishes N buckets, empty ones included,
so the shape never depends on the book.
"""

from __future__ import annotations

import math

import numpy as np

from .consolidate import Side

DEFAULT_SIZES = {"BTC": 10.0, "ETH": 1.0}  # by base asset
# A price within this many buckets of a grid line is on it: 65010.0 / 10 must not floor to
# 6500.999999 because of binary floating point.
SNAP = 1e-9


def nice_size(price: float) -> float:
    """About one basis point of `price`, rounded to the 1-2-5 grid (40000 -> 5.0)."""
    if not (price > 0 and math.isfinite(price)):
        raise ValueError(f"cannot derive a bucket size from price {price!r}")
    target = price * 1e-4
    exp = math.floor(math.log10(target))
    steps = [float(f"{m}e{e}") for e in (exp, exp + 1) for m in (1, 2, 5)]  # exact literals
    return min(steps, key=lambda s: abs(math.log10(s / target)))


def default_size(symbol: str) -> float | None:
    """The configured default for the symbol's base asset; None when it must be derived."""
    return DEFAULT_SIZES.get(symbol.split("-")[0].upper())


def bucket_index(price: np.ndarray, size: float, is_bid: bool) -> np.ndarray:
    """Grid index of each price: floor for bids, ceil for asks (int64)."""
    q = price / size
    return (np.floor(q + SNAP) if is_bid else np.ceil(q - SNAP)).astype(np.int64)


def labels(indexes: np.ndarray, size: float) -> np.ndarray:
    """Bucket prices free of binary noise: bucket 1234 of 0.01 is 12.34, where 1234 * 0.01
    is 12.340000000000002. A size whose inverse is a whole number divides instead, and an
    IEEE division gives the double nearest the true decimal; other sizes multiply."""
    per_unit = round(1 / size)
    if per_unit > 1 and abs(per_unit * size - 1) < 1e-12:
        return indexes / per_unit
    return indexes * size


def bucket_side(side: Side, size: float, n: int, n_venues: int,
                is_bid: bool) -> tuple[list[float], np.ndarray]:
    """N buckets from the touch outward: (labels, per-venue sizes [n, V]).

    Labels are empty when the side is empty; the size matrix always has n rows.
    """
    sizes = np.zeros(n * n_venues)
    if not side.price.size:
        return [], sizes.reshape(n, n_venues)
    idx = bucket_index(side.price, size, is_bid)
    first = int(idx.max() if is_bid else idx.min())
    rank = first - idx if is_bid else idx - first
    keep = rank < n
    sizes = np.bincount(rank[keep] * n_venues + side.venue[keep], weights=side.size[keep],
                        minlength=n * n_venues)
    offsets = np.arange(n)
    grid = first - offsets if is_bid else first + offsets
    return labels(grid, size).tolist(), sizes.reshape(n, n_venues)
