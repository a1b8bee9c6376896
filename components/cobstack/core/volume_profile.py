"""Session volume profile: traded volume per price bucket, buy/sell split, POC, value area.

A session is a fixed window of `session_seconds` starting at `anchor_s` (seconds after the
Unix epoch modulo the length; default: the UTC day). The profile empties when a trade or
the publish clock enters a later session; trades stamped in an earlier session arrive late
and are counted, not added. A trade at price p lands in the bucket labelled
floor(p / bucket) * bucket, which covers [label, label + bucket).

POC is the bucket with the most volume (the lowest price on a tie). The value area is the
standard one: start at the POC and repeatedly add the neighbouring traded bucket, above or
below, with more volume (both on a tie) until it holds `value_area` (70 %) of the session.
Buckets nobody traded in are skipped, so a gap never stops the expansion.

This object is mutable state with one owner (the symbol's pipeline); it does no I/O and
reads no clock: every time comes in as an argument.
"""

from __future__ import annotations

import math
from bisect import insort

import numpy as np

from .buckets import SNAP, labels

SIDES = ("buy", "sell")


class VolumeProfile:
    def __init__(self, bucket: float, session_seconds: int = 86400, anchor_s: int = 0,
                 value_area: float = 0.70):
        if not (bucket > 0 and session_seconds > 0 and 0 < value_area <= 1):
            raise ValueError(f"volume profile needs bucket > 0, session_seconds > 0 and "
                             f"0 < value_area <= 1; got {bucket}, {session_seconds}, {value_area}")
        self.bucket = bucket
        self.session_seconds = session_seconds
        self.anchor_s = anchor_s
        self.value_area = value_area
        self.session_start: int | None = None  # seconds
        self.late = 0  # trades from an earlier session, dropped
        self.rejected = 0  # trades with a bad price, size or side
        self._vol: dict[int, list[float]] = {}  # bucket index -> [buy, sell]
        self._keys: list[int] = []  # bucket indexes, ascending
        self._summary: dict | None = None  # cached until the next change
        self._summary_levels = 0  # the max_levels the cache was computed for

    def session_of(self, ts: float) -> int:
        n = math.floor((ts - self.anchor_s) / self.session_seconds)
        return n * self.session_seconds + self.anchor_s

    def _enter(self, ts: float) -> bool:
        """Move to ts's session if it is later; False when ts belongs to an earlier one."""
        start = self.session_of(ts)
        if self.session_start is None or start > self.session_start:
            self.session_start = start
            self._vol.clear()
            self._keys.clear()
            self._summary = None
        return start == self.session_start

    def roll(self, now_s: float) -> None:
        """Start a new session when the publish clock crossed a boundary, even with no trades."""
        self._enter(now_s)

    def reject(self) -> None:
        """Count a trade the caller could not even price (e.g. from an unknown venue)."""
        self.rejected += 1

    def add(self, price: float, size: float, side: str, ts: float, rate: float = 1.0) -> bool:
        """Add one trade; `rate` converts its price to the symbol's quote. False if dropped
        (counted in `rejected` or `late`)."""
        if not (all(type(x) in (float, int) for x in (price, size, ts))
                and price > 0 and size > 0 and side in SIDES
                and math.isfinite(price * rate) and math.isfinite(size) and math.isfinite(ts)):
            self.rejected += 1
            return False
        price *= rate
        if not self._enter(ts):
            self.late += 1
            return False
        idx = math.floor(price / self.bucket + SNAP)
        row = self._vol.get(idx)
        if row is None:
            row = self._vol[idx] = [0.0, 0.0]
            insort(self._keys, idx)
        row[side == "sell"] += size
        self._summary = None
        return True

    def summary(self, max_levels: int) -> dict:
        """POC, value area and up to `max_levels` [price, buy, sell] rows centred on the POC."""
        if self._summary is None or self._summary_levels != max_levels:
            self._summary, self._summary_levels = self._compute(max_levels), max_levels
        return {**self._summary, "late": self.late, "rejected": self.rejected}

    def _compute(self, max_levels: int) -> dict:
        keys = self._keys
        rows = [self._vol[k] for k in keys]
        totals = [b + s for b, s in rows]
        start_ns = None if self.session_start is None else self.session_start * 1_000_000_000
        out = {"bucket": self.bucket, "session_start": start_ns,
               "buy_volume": math.fsum(r[0] for r in rows),
               "sell_volume": math.fsum(r[1] for r in rows),
               "poc": None, "va_low": None, "va_high": None, "levels": []}
        if not keys:
            return out
        poc = max(range(len(keys)), key=totals.__getitem__)  # first maximum: lowest price
        lo, hi = self._value_area(totals, poc)
        first = max(0, min(poc - max_levels // 2, len(keys) - max_levels))
        shown = slice(first, first + max_levels)
        prices = labels(np.array(keys[shown] + [keys[poc], keys[lo], keys[hi]]),
                        self.bucket).tolist()
        out.update(poc=prices[-3], va_low=prices[-2], va_high=prices[-1],
                   levels=[[p, b, s] for p, (b, s) in zip(prices, rows[shown])])
        return out

    def _value_area(self, totals: list[float], poc: int) -> tuple[int, int]:
        """Positions (lo, hi) of the value area's outer buckets."""
        total = math.fsum(totals)
        target = self.value_area * total * (1 - 1e-12)  # 0.7 * 10 is 7.000000000000001
        lo = hi = poc
        acc = totals[poc]
        while acc < target:
            up = totals[hi + 1] if hi + 1 < len(totals) else -1.0
            down = totals[lo - 1] if lo > 0 else -1.0
            if up >= down:
                hi += 1
                acc += up
            if down >= up:
                lo -= 1
                acc += down
        return lo, hi
