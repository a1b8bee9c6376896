"""One symbol's publish step: venue views and trades in, a snapshot dict out.

Ingest owns one SymbolPipeline per canonical symbol and calls `snapshot` at every publish
(and, optionally, `observe` on every book change for a finer order-flow imbalance). The
pipeline is pure apart from the small state it must carry between publishes: the snapshot
counter, the OFI baseline, the session volume profile and each venue's last rate. Time
only comes in as arguments. The returned dict is exactly what `schema.encode` takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from .buckets import bucket_side, default_size, nice_size
from .consolidate import (PAR, QUOTE_POLICIES, FloatMemo, Member, Side, VenueView, assess, gather, ladder,
                          touch)
from .features import OFIState, imbalance, model_tensor, ofi_flush, ofi_step, top_features
from .schema import BOOK, SCHEMA_VERSION, TradeLike
from .volume_profile import VolumeProfile


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    bucket_size: float | None = None  # None: BTC 10, ETH 1, others ~1 bp of the first price
    depth: int = 200  # most levels read per venue and side
    ladder_levels: int = 20  # consolidated ladder rows per side
    buckets_per_side: int = 20
    tensor_buckets: int | None = None  # K: the model tensor has 2K rows; None: buckets_per_side
    imbalance_levels: tuple[int, ...] = (1, 5, 10)
    stale_after_s: float = 5.0
    quote_policy: str = PAR  # "par" or "rate"
    rate_band: float = 0.05  # a reference rate outside 1 +- band is not believed
    session_seconds: int = 86400
    session_anchor_s: int = 0  # sessions start at anchor + k * session_seconds (UTC epoch s)
    value_area: float = 0.70
    profile_levels: int = 100  # most volume-profile rows published (centred on the POC)

    @property
    def k(self) -> int:
        """Model tensor buckets per side."""
        return self.tensor_buckets or self.buckets_per_side

    def __post_init__(self) -> None:
        problems = []
        if self.bucket_size is not None and not self.bucket_size > 0:
            problems.append(f"bucket_size must be > 0 or None, got {self.bucket_size}")
        for name in ("depth", "ladder_levels", "buckets_per_side", "session_seconds",
                     "profile_levels"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.imbalance_levels or not all(
                1 <= n <= self.ladder_levels for n in self.imbalance_levels):
            problems.append(f"imbalance_levels must be between 1 and ladder_levels "
                            f"({self.ladder_levels}), got {self.imbalance_levels}")
        if self.tensor_buckets is not None and self.tensor_buckets < 1:
            problems.append(f"tensor_buckets must be >= 1 or None, got {self.tensor_buckets}")
        if self.depth < self.ladder_levels:
            problems.append(f"depth ({self.depth}) must be >= ladder_levels ({self.ladder_levels})")
        if self.quote_policy not in QUOTE_POLICIES:
            problems.append(f"quote_policy must be one of {QUOTE_POLICIES}, got {self.quote_policy!r}")
        if not self.stale_after_s > 0:
            problems.append(f"stale_after_s must be > 0, got {self.stale_after_s}")
        if not 0 < self.value_area <= 1:
            problems.append(f"value_area must be in (0, 1], got {self.value_area}")
        if problems:
            raise ValueError("PipelineConfig: " + "; ".join(problems))


def _rows(prices: Iterable[float], sizes: np.ndarray, totals: list[float]) -> list[list]:
    return [[float(p), t, s] for p, t, s in zip(prices, totals, sizes.tolist())]


def _reach(members: Sequence[Member], is_bid: bool, span: float | None) -> float | None:
    """The farthest USD price the buckets can need on one side (None: read `depth` levels)."""
    bests = [m.bid if is_bid else m.ask for m in members]
    bests = [b for b in bests if b is not None]
    if span is None or not bests:
        return None
    return max(bests) - span if is_bid else min(bests) + span


class SymbolPipeline:
    def __init__(self, symbol: str, venues: Sequence[str], cfg: PipelineConfig = PipelineConfig()):
        if not venues or len(set(venues)) != len(venues):
            raise ValueError(f"{symbol}: venues must be a non-empty list without repeats, "
                             f"got {list(venues)}")
        self.symbol = symbol
        self.venues = tuple(venues)
        self.cfg = cfg
        self.seq = 0
        self.ofi = OFIState()
        self.rates: dict[str, float] = {}  # each venue's last rate, to price its trades
        self._memo = FloatMemo()  # level string -> float, see consolidate.gather
        self.bucket_size: float | None = None
        self.profile: VolumeProfile | None = None
        size = cfg.bucket_size or default_size(symbol)
        if size:
            self._fix_bucket(size)

    def _fix_bucket(self, size: float) -> None:
        """Set the grid once; it never moves afterwards, so consumers see stable buckets."""
        cfg = self.cfg
        self.bucket_size = size
        self.profile = VolumeProfile(size, cfg.session_seconds, cfg.session_anchor_s,
                                     cfg.value_area)

    def _assess(self, views: Sequence[VenueView],
                rate_refs: Mapping[str, VenueView] | None) -> tuple[list[Member], list[dict]]:
        cfg = self.cfg
        return assess(views, self.venues, cfg.quote_policy, rate_refs or {}, cfg.stale_after_s,
                      cfg.rate_band)

    def observe(self, views: Sequence[VenueView],
                rate_refs: Mapping[str, VenueView] | None = None) -> None:
        """Account one top-of-book observation between publishes (order-flow imbalance)."""
        members, _ = self._assess(views, rate_refs)
        self.ofi = ofi_step(self.ofi, touch(members), tuple(m.index for m in members))

    def snapshot(self, views: Sequence[VenueView], trades: Iterable[TradeLike], now_ns: int,
                 rate_refs: Mapping[str, VenueView] | None = None,
                 recv_ns: int | None = None) -> dict:
        """The snapshot for this publish. Trades: those since the last call. rate_refs: quote
        ("USDT", "USDC") -> view of its USD reference book, for quote_policy "rate".
        recv_ns: when ingest received the newest venue frame in it (for latency)."""
        cfg, n_venues = self.cfg, len(self.venues)
        members, status = self._assess(views, rate_refs)
        for row in status:
            if row["quote"] is not None:
                self.rates[row["venue"]] = row["rate"]
        top = touch(members)
        trades = list(trades)
        if self.bucket_size is None:
            prices = [(top.bid + top.ask) / 2] if top else [
                t.price * self.rates.get(t.venue, 1.0) for t in trades
                if type(t.price) in (float, int)]
            price = next((p for p in prices if p > 0 and math.isfinite(p)), None)
            if price is not None:
                self._fix_bucket(nice_size(price))
        size = self.bucket_size

        n_buckets = max(cfg.buckets_per_side, cfg.k)
        span = (n_buckets + 1) * size if size else None
        sides: dict[bool, Side] = {
            is_bid: gather(members, is_bid, cfg.depth, cfg.ladder_levels,
                           _reach(members, is_bid, span), self._memo) for is_bid in (True, False)}
        lad = {is_bid: ladder(sides[is_bid], cfg.ladder_levels, n_venues, is_bid)
               for is_bid in (True, False)}
        empty = ([], np.zeros((n_buckets, n_venues)))
        bkt = {is_bid: bucket_side(sides[is_bid], size, n_buckets, n_venues, is_bid) if size
               else empty for is_bid in (True, False)}

        totals = {is_bid: lad[is_bid][1].sum(axis=1).tolist() for is_bid in (True, False)}
        features = top_features(top)
        features["imbalance"] = imbalance(totals[True], totals[False], cfg.imbalance_levels)
        self.ofi, ofi = ofi_flush(ofi_step(self.ofi, top, tuple(m.index for m in members)))
        features.update(ofi)

        profile = self._profile(trades, now_ns)
        source_ts = max((m.view.book.ts for m in members), default=0.0)
        self.seq += 1
        nb = cfg.buckets_per_side
        return {
            "v": SCHEMA_VERSION, "kind": BOOK, "symbol": self.symbol, "seq": self.seq,
            "ts": now_ns, "source_ts": round(source_ts * 1e9) if source_ts > 0 else None,
            "recv_ts": recv_ns,
            "venues": list(self.venues), "status": status,
            "ladder": {"bids": _rows(*lad[True], totals[True]),
                       "asks": _rows(*lad[False], totals[False])},
            "buckets": {"size": size or 0.0,
                        "bids": _rows(bkt[True][0], bkt[True][1][:nb],
                                      bkt[True][1][:nb].sum(axis=1).tolist()),
                        "asks": _rows(bkt[False][0], bkt[False][1][:nb],
                                      bkt[False][1][:nb].sum(axis=1).tolist())},
            "features": features,
            "profile": profile,
            "tensor": model_tensor(bkt[True][1], bkt[False][1], cfg.k),
        }

    def _profile(self, trades: list[TradeLike], now_ns: int) -> dict:
        vp = self.profile
        if vp is None:  # no price seen yet, so no grid to put volume on
            return {"bucket": 0.0, "session_start": None, "buy_volume": 0.0, "sell_volume": 0.0,
                    "poc": None, "va_low": None, "va_high": None, "levels": [], "late": 0,
                    "rejected": 0}
        for t in trades:
            rate = self.rates.get(t.venue)
            if rate is None:
                vp.reject()
            else:
                vp.add(t.price, t.size, t.side, t.ts, rate)
        vp.roll(now_ns / 1e9)
        return vp.summary(self.cfg.profile_levels)
