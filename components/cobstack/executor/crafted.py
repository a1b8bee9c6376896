"""Crafted book snapshots: exact per-venue books, encoded through core/schema like ingest's.

For the executor's tests and benchmark, where a routing or risk outcome must follow from
books chosen by hand rather than from the simulated market.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..core import schema

Levels = Sequence[tuple[float, float]]


def _rows(books: Mapping[str, tuple[Levels, Levels]], venues: list[str], side: int, best_first: bool) -> list:
    sizes: dict[float, list[float]] = {}
    for i, v in enumerate(venues):
        for price, size in books.get(v, ((), ()))[side]:
            sizes.setdefault(float(price), [0.0] * len(venues))[i] += float(size)
    return [[p, sum(s), s] for p, s in sorted(sizes.items(), reverse=best_first)]


def snapshot(symbol: str, books: Mapping[str, tuple[Levels, Levels]], ts_ns: int, *, seq: int = 1,
             flagged: Mapping[str, str] | None = None) -> dict:
    """A schema-valid book snapshot: `books` maps venue -> (bids, asks) as (price, size) pairs;
    `flagged` venues (venue -> reason) are listed as left out by ingest, with no levels."""
    flagged = dict(flagged or {})
    venues = [*books, *(v for v in flagged if v not in books)]
    live = {v: b for v, b in books.items() if v not in flagged}
    bids, asks = _rows(live, venues, 0, True), _rows(live, venues, 1, False)
    bb, ba = (bids[0][0], bids[0][1]) if bids else (None, None), (asks[0][0], asks[0][1]) if asks else (None, None)
    mid = (bb[0] + ba[0]) / 2 if bids and asks else None
    status = []
    for v in venues:
        b = live.get(v)
        status.append({"venue": v, "state": "live" if b else "resync", "live": v not in flagged,
                       "included": b is not None, "age_ms": 0.0 if b else None, "reason": flagged.get(v),
                       "quote": "USD", "rate": 1.0, "rate_source": "par",
                       "bid": max((p for p, _ in b[0]), default=None) if b else None,
                       "ask": min((p for p, _ in b[1]), default=None) if b else None})
    return {
        "v": schema.SCHEMA_VERSION, "kind": schema.BOOK, "symbol": symbol, "seq": seq, "ts": ts_ns,
        "source_ts": ts_ns, "venues": venues, "status": status,
        "ladder": {"bids": bids, "asks": asks},
        "buckets": {"size": 1.0, "bids": [], "asks": []},
        "features": {"best_bid": bb[0], "best_ask": ba[0], "bid_size": bb[1], "ask_size": ba[1], "mid": mid,
                     "spread": ba[0] - bb[0] if mid else None,
                     "spread_bps": (ba[0] - bb[0]) / mid * 1e4 if mid else None,
                     "weighted_mid": mid, "microprice": mid, "crossed": bool(mid and bb[0] > ba[0]),
                     "imbalance": {"1": 0.0}, "ofi": 0.0, "ofi_norm": 0.0, "ofi_steps": 0},
        "profile": {"bucket": 0.0, "session_start": None, "buy_volume": 0.0, "sell_volume": 0.0, "poc": None,
                    "va_low": None, "va_high": None, "levels": [], "late": 0, "rejected": 0},
        "tensor": np.zeros((2, 2, len(venues)), dtype=np.float32),
    }


def encoded(symbol: str, books: Mapping[str, tuple[Levels, Levels]], ts_ns: int, **kw) -> bytes:
    return schema.encode(snapshot(symbol, books, ts_ns, **kw))
