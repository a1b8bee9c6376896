"""Book features, computed once per publish so consumers never recompute them.

Everything here is a pure function of the consolidated book, except order-flow imbalance,
which compares successive top-of-book observations: its state is the small immutable
`OFIState`, advanced by `ofi_step` and emptied by `ofi_flush` at each publish.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .consolidate import Touch


def top_features(t: Touch | None) -> dict:
    """mid, spread (abs, bps), weighted mid, microprice; all None while a side is empty.

    weighted_mid: the top quotes' prices weighted by their own sizes,
        (bid*bid_size + ask*ask_size) / (bid_size + ask_size).
    microprice: weighted by the opposite size (Stoikov's imbalance weighting), so it leans
        toward the side about to be taken out,
        (bid*ask_size + ask*bid_size) / (bid_size + ask_size).
    A crossed consolidated book (one venue's bid above another's ask) keeps its negative
    spread and sets `crossed`.
    """
    if t is None:
        return {"best_bid": None, "best_ask": None, "bid_size": None, "ask_size": None,
                "mid": None, "spread": None, "spread_bps": None, "weighted_mid": None,
                "microprice": None, "crossed": False}
    mid = (t.bid + t.ask) / 2
    spread = t.ask - t.bid
    total = t.bid_size + t.ask_size  # > 0: books never hold zero-size levels
    return {"best_bid": t.bid, "best_ask": t.ask, "bid_size": t.bid_size, "ask_size": t.ask_size,
            "mid": mid, "spread": spread, "spread_bps": spread / mid * 1e4,
            "weighted_mid": (t.bid * t.bid_size + t.ask * t.ask_size) / total,
            "microprice": (t.bid * t.ask_size + t.ask * t.bid_size) / total,
            "crossed": spread < 0}


def imbalance(bid_totals: Sequence[float], ask_totals: Sequence[float],
              levels: Sequence[int]) -> dict[str, float | None]:
    """(B - A) / (B + A) over the top n consolidated levels (totals best first), for each n;
    None when both sides are empty. Keys are str(n): msgpack maps want string keys."""
    out: dict[str, float | None] = {}
    for n in levels:
        b = sum(bid_totals[:n])
        a = sum(ask_totals[:n])
        out[str(n)] = (b - a) / (b + a) if b + a > 0 else None
    return out


def ofi_increment(prev: Touch, cur: Touch) -> float:
    """One step of Cont, Kukanov & Stoikov (2014) order-flow imbalance, in base units.

    e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa'
    (primed: previous observation). Positive = net buying pressure at the touch.
    """
    e = 0.0
    if cur.bid >= prev.bid:
        e += cur.bid_size
    if cur.bid <= prev.bid:
        e -= prev.bid_size
    if cur.ask <= prev.ask:
        e -= cur.ask_size
    if cur.ask >= prev.ask:
        e += prev.ask_size
    return e


@dataclass(frozen=True, slots=True)
class OFIState:
    prev: Touch | None = None  # last observation
    members: tuple[int, ...] = ()  # venue columns merged at `prev`
    ofi: float = 0.0  # accumulated since the last flush
    depth: float = 0.0  # sum over observations of the mean touch size, for normalising
    steps: int = 0  # increments accumulated since the last flush
    rebaselines: int = 0  # lifetime count of observations skipped as a new baseline


def ofi_step(state: OFIState, cur: Touch | None, members: tuple[int, ...]) -> OFIState:
    """Account one top-of-book observation.

    When the set of merged venues changed since the previous observation, the touch moved
    because a venue joined or left, not because anyone traded or quoted: that observation
    becomes the new baseline and adds nothing. An empty side also resets the baseline.
    """
    if cur is None:
        return replace(state, prev=None, members=members)
    if state.prev is None or state.members != members:
        rebased = state.rebaselines + (state.prev is not None)
        return replace(state, prev=cur, members=members, rebaselines=rebased)
    return replace(state, prev=cur, ofi=state.ofi + ofi_increment(state.prev, cur),
                   depth=state.depth + (cur.bid_size + cur.ask_size) / 2,
                   steps=state.steps + 1)


def ofi_flush(state: OFIState) -> tuple[OFIState, dict]:
    """Publish the interval's OFI and start the next interval (the baseline is kept).

    ofi_norm divides by the interval's average touch depth (Cont et al.'s normalisation),
    so it is comparable across symbols and quiet/busy periods; 0 when nothing was observed.
    """
    avg_depth = state.depth / state.steps if state.steps else 0.0
    out = {"ofi": state.ofi, "ofi_norm": state.ofi / avg_depth if avg_depth > 0 else 0.0,
           "ofi_steps": state.steps}
    return replace(state, ofi=0.0, depth=0.0, steps=0), out


def model_tensor(bid_sizes: np.ndarray, ask_sizes: np.ndarray, k: int) -> np.ndarray:
    """float32 [2k, 2, V]: price buckets x (size, venue share) x venues, centred on the mid.

    Row k-1-j is bid bucket j (j = 0 holds the best bid), row k+j is ask bucket j, so rows
    run from the lowest price to the highest and the mid lies between rows k-1 and k.
    Channel 0: the venue's size in base units. Channel 1: the venue's share of the row's
    total size (0 for an empty row). A venue not merged has zeros in every row.
    """
    rows = np.concatenate((bid_sizes[:k][::-1], ask_sizes[:k]))
    totals = rows.sum(axis=1, keepdims=True)
    share = np.divide(rows, totals, out=np.zeros_like(rows), where=totals > 0)
    return np.stack((rows, share), axis=1).astype(np.float32)
