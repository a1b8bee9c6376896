"""Snapshots -> arrays the models train on. Nothing here recomputes what ingest published:
the model tensor is taken as is, and the per-snapshot scalars are the published features,
only re-expressed scale-free (relative to the mid and spread) so one model fits any price.

Per snapshot t:
    book[t]   float32 [2K, 2, V]  the published model tensor
    feats[t]  float32 [F]         `feature_names` (below), from the published features
    mid, spread                   for labels and the trading environment
    ladder                        per-venue sizes at the consolidated ladder prices, for fills
Snapshots without a two-sided book (no mid) are skipped and counted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..core import schema
from ..core.schema import SchemaError, Snapshot

log = logging.getLogger("cobstack.trainer")

BASE_FEATURES = ("ret_bps", "spread_bps", "micro_dev", "wmid_dev", "ofi_norm", "live_share")


def feature_names(imbalance_levels: Iterable[int], venues: Iterable[str]) -> list[str]:
    return [*BASE_FEATURES, *(f"imbalance_{n}" for n in sorted(imbalance_levels)),
            *(f"venue_mid_bps_{v}" for v in venues)]


@dataclass
class Series:
    """One symbol's snapshots in stream order, as arrays."""

    symbol: str
    venues: list[str]
    feature_names: list[str]
    ids: list[str]
    ts: np.ndarray  # int64 ns
    book: np.ndarray  # float32 [N, 2K, 2, V]
    feats: np.ndarray  # float32 [N, F]
    mid: np.ndarray  # float64 [N]
    spread: np.ndarray  # float64 [N]
    bid_px: np.ndarray  # float64 [N, L] consolidated ladder prices, best first (NaN past the end)
    bid_sz: np.ndarray  # float64 [N, L, V] each venue's size at those prices
    ask_px: np.ndarray
    ask_sz: np.ndarray
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> snapshots left out

    def __len__(self) -> int:
        return len(self.ids)


def _ladder(rows: list[schema.Row], levels: int, n_venues: int) -> tuple[np.ndarray, np.ndarray]:
    px = np.full(levels, np.nan)
    sz = np.zeros((levels, n_venues))
    for i, r in enumerate(rows[:levels]):
        px[i] = r.price
        sz[i] = r.sizes
    return px, sz


def scalar_features(snap: Snapshot, prev_mid: float | None, levels: list[int]) -> list[float]:
    """`feature_names` for one snapshot with a two-sided book (prev_mid: the previous mid).

    venue_mid_bps_*: each merged venue's own mid (from its published best bid/ask) against
    the consolidated mid, in bps; 0 for a venue left out. Venues quote the same fair price
    with different delays, so who has already moved is information no single book holds."""
    f = snap.features
    mid = f.mid
    spread = f.spread if f.spread and f.spread > 0 else 0.0
    rel = (lambda p: (p - mid) / spread if spread and p is not None else 0.0)
    ret = math.log(mid / prev_mid) * 1e4 if prev_mid else 0.0
    live = sum(s.included for s in snap.status) / len(snap.status)
    imb = [f.imbalance.get(n) or 0.0 for n in levels]
    venue_mid = [((s.bid + s.ask) / 2 - mid) / mid * 1e4 if s.included and s.bid and s.ask else 0.0
                 for s in snap.status]
    return [ret, f.spread_bps or 0.0, rel(f.microprice), rel(f.weighted_mid), f.ofi_norm, live, *imb,
            *venue_mid]


def build_series(entries: Iterable[tuple[str, bytes]], ladder_levels: int = 10) -> Series:
    """Decode (id, snapshot bytes) pairs of ONE symbol into a Series.

    Undecodable records and snapshots without a mid are skipped and counted in `skipped`.
    The model's input shape is fixed, so when the venue set or tensor shape changes mid-stream
    (ingest was reconfigured) the series restarts there: the newest configuration is trained
    on, and the older snapshots are counted in `skipped` under "older configuration"."""
    skipped: dict[str, int] = {}
    first: Snapshot | None = None
    for sid, data in entries:
        try:
            snap = schema.decode_snapshot(data)
        except SchemaError as e:
            key = f"undecodable: {str(e)[:80]}"
            skipped[key] = skipped.get(key, 0) + 1
            continue
        if first is None or snap.symbol != first.symbol or snap.venues != first.venues or \
                snap.tensor.shape != first.tensor.shape:
            if first is not None:
                log.warning("snapshot %s: %s venues %s tensor %s differs from the series so far "
                            "(%s %s %s); training on the newer configuration only", sid, snap.symbol,
                            snap.venues, snap.tensor.shape, first.symbol, first.venues, first.tensor.shape)
                skipped["older configuration"] = skipped.get("older configuration", 0) + len(ids)
            first, levels, prev_mid = snap, sorted(snap.features.imbalance), None
            ids, ts, books, feats, mids, spreads = [], [], [], [], [], []
            bpx, bsz, apx, asz = [], [], [], []
        f = snap.features
        if f.mid is None or f.spread is None:
            skipped["one-sided book"] = skipped.get("one-sided book", 0) + 1
            prev_mid = None
            continue
        ids.append(sid)
        ts.append(snap.ts)
        books.append(snap.tensor)
        feats.append(scalar_features(snap, prev_mid, levels))
        mids.append(f.mid)
        spreads.append(max(f.spread, 0.0))
        n_v = len(snap.venues)
        for rows, px_out, sz_out in ((snap.ladder.bids, bpx, bsz), (snap.ladder.asks, apx, asz)):
            px, sz = _ladder(rows, ladder_levels, n_v)
            px_out.append(px)
            sz_out.append(sz)
        prev_mid = f.mid
    if first is None:
        raise ValueError(f"no decodable snapshot in the input (skipped: {skipped or 'nothing given'})")
    v, k2 = len(first.venues), first.tensor.shape[0]
    stack = (lambda xs, shape, dt: np.array(xs, dtype=dt) if xs else np.zeros((0, *shape), dt))
    return Series(
        symbol=first.symbol, venues=list(first.venues), feature_names=feature_names(levels, first.venues), ids=ids,
        ts=np.array(ts, dtype=np.int64), book=stack(books, (k2, 2, v), np.float32),
        feats=stack(feats, (len(BASE_FEATURES) + len(levels) + v,), np.float32),
        mid=np.array(mids, dtype=np.float64), spread=np.array(spreads, dtype=np.float64),
        bid_px=stack(bpx, (ladder_levels,), np.float64), bid_sz=stack(bsz, (ladder_levels, v), np.float64),
        ask_px=stack(apx, (ladder_levels,), np.float64), ask_sz=stack(asz, (ladder_levels, v), np.float64),
        skipped=skipped)


def book_log_mask(book_shape: tuple[int, ...]) -> np.ndarray:
    """Which flattened tensor entries are sizes (log-scaled before z-scoring): channel 0."""
    mask = np.zeros(book_shape, dtype=bool)
    mask[:, 0, :] = True
    return mask.reshape(-1)


def windows(index: np.ndarray, window: int) -> np.ndarray:
    """[len(index), window] snapshot positions of each sample's input window, oldest first."""
    return index[:, None] + np.arange(1 - window, 1)[None, :]
