"""Ingest: the single writer of the consolidated-book streams.

One connection per venue (multiplexing every symbol), one pure pipeline per symbol, one
publisher that coalesces changes to at most one snapshot per symbol per interval and writes
every due snapshot and trade in ONE pipelined bus call. Venue faults stay inside their
connection; a bus outage keeps the books and retries, it never loses state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass

from ..bus.base import Bus, BusUnavailable
from ..config import Settings
from ..core import schema
from ..core.consolidate import VenueView
from ..core.pipeline import PipelineConfig, SymbolPipeline
from ..core.symbols import contract_value, venue_instrument
from ..venues.base import Adapter
from ..venues.connect import Backoff, VenueConnection
from ..venues.registry import make_adapter
from ..streams import HEALTH_STREAM, book_stream, trades_stream

log = logging.getLogger("cobstack.ingest")

TRADE_BUFFER = 100_000  # trades kept while the bus is down (oldest dropped, and counted, beyond)


@dataclass(frozen=True, slots=True)
class Route:
    venue: str
    native: str
    symbol: str
    quote: str


class Ingest:
    def __init__(self, settings: Settings, bus: Bus,
                 endpoints: dict[str, tuple[str, str]] | None = None):
        """endpoints: venue -> (ws_url, rest_url) overrides (the simulated venues)."""
        self.settings = settings
        self.bus = bus
        cfg = settings.ingest
        self.interval = cfg.publish_interval_ms / 1000
        self.routes: dict[tuple[str, str], Route] = {}
        self.adapters: dict[str, Adapter] = {}
        self.connections: dict[str, VenueConnection] = {}
        # quote -> (venue, native) of the book that prices it in USD (quote_policy "rate")
        self.rate_refs = {q: tuple(ref.split(":", 1)) for q, ref in cfg.rate_references.items()
                          if cfg.quote_policy == "rate" and ref.split(":", 1)[0] in settings.venues}
        for venue in settings.venues:
            natives = []
            for symbol in settings.symbols:
                inst = venue_instrument(venue, symbol)
                self.routes[(venue, inst.native)] = Route(venue, inst.native, symbol, inst.quote)
                natives.append(inst.native)
            natives += [n for v, n in self.rate_refs.values() if v == venue and n not in natives]
            ws_url, rest_url = (endpoints or {}).get(venue, (None, None))
            adapter = make_adapter(venue, natives, ws_url=ws_url, rest_url=rest_url)
            self.adapters[venue] = adapter
            self.connections[venue] = VenueConnection(adapter, self._on_frame_done)
        self.pipelines = {
            s: SymbolPipeline(s, list(settings.venues), pipeline_config(settings, s))
            for s in settings.symbols
        }
        self.last_change: dict[tuple[str, str], float] = {}
        # symbol -> receive time of its newest unpublished change (None: only a periodic refresh)
        self.pending: dict[str, float | None] = {}
        self.published_at: dict[str, float] = {s: 0.0 for s in settings.symbols}  # wall clock
        self.trades: dict[str, list] = {s: [] for s in settings.symbols}
        self.trade_backlog: deque = deque(maxlen=TRADE_BUFFER)
        self.trades_dropped = 0
        self.published: dict[str, int] = {s: 0 for s in settings.symbols}
        self.bus_up = True
        self.bus_message = ""
        self.failures: dict[str, str] = {}  # ingest task -> why it died (never expected)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    # -- hot path: called after every frame, synchronous, O(changes) ---------------------------

    def _on_frame_done(self, adapter: Adapter, recv_ts: float) -> None:
        venue = adapter.venue
        if adapter.dirty:
            routes = self.routes
            venue_ts = 0.0
            for native in adapter.dirty:
                self.last_change[(venue, native)] = recv_ts
                route = routes.get((venue, native))
                if route is None:
                    continue
                symbol = route.symbol
                first = symbol not in self.pending
                self.pending[symbol] = recv_ts
                if first or recv_ts >= self.published_at[symbol] + self.interval:
                    # due now (the first change after the interval), or the publisher must
                    # learn of a pending change to flush it by two intervals
                    self._wake.set()
                venue_ts = max(venue_ts, adapter.books[native].ts)
            if adapter.event_time and venue_ts:
                self.connections[venue].health.lag_ms = round((recv_ts - venue_ts) * 1000, 1)
            adapter.dirty.clear()
        if adapter.trades:
            for trade in adapter.trades:
                route = self.routes.get((venue, trade.instrument))
                if route is not None:
                    self.trades[route.symbol].append(trade)
            adapter.trades.clear()

    # -- publishing --------------------------------------------------------------------------

    def _view(self, venue: str, native: str, base: str, quote: str, now: float) -> VenueView | None:
        adapter = self.adapters[venue]
        book = adapter.books.get(native)
        if book is None:
            return None
        live = adapter.consistent(native) and self.connections[venue].health.state == "live"
        return VenueView(venue, book, quote, live, now - self.last_change.get((venue, native), 0.0),
                         contract_value=contract_value(venue, base))

    def views(self, symbol: str, now: float) -> list[VenueView]:
        views = (self._view(v, i.native, i.base, i.quote, now)
                 for v, i in ((v, venue_instrument(v, symbol)) for v in self.adapters))
        return [view for view in views if view is not None]

    def reference_views(self, now: float) -> dict[str, VenueView]:
        """The USD reference book of each stablecoin quote (quote_policy "rate")."""
        views = {q: self._view(venue, native, q, "USD", now) for q, (venue, native) in self.rate_refs.items()}
        return {q: view for q, view in views.items() if view is not None}

    def build_batch(self, symbols: list[str], now: float) -> list[tuple[str, bytes]]:
        """Snapshots for `symbols` plus their trades, encoded, in stream order."""
        items: list[tuple[str, bytes]] = []
        now_ns = int(now * 1e9)
        for symbol in symbols:
            trades, self.trades[symbol] = self.trades[symbol], []
            recv = self.pending.pop(symbol, None)
            snap = self.pipelines[symbol].snapshot(self.views(symbol, now), trades, now_ns,
                                                   rate_refs=self.reference_views(now),
                                                   recv_ns=None if recv is None else int(recv * 1e9))
            items.append((book_stream(symbol), schema.encode(snap, check=False)))  # readers check
            for t in trades:
                if len(self.trade_backlog) == TRADE_BUFFER:
                    self.trades_dropped += 1
                quote = self.routes[(t.venue, t.instrument)].quote
                self.trade_backlog.append((trades_stream(symbol), schema.encode(schema.trade_record(symbol, t, quote))))
        return items

    def _due(self, now: float) -> tuple[list[str], float | None]:
        """Symbols to publish now, and when the next one falls due if none is.

        A symbol publishes at the first change that arrives at least one interval after its
        last snapshot (so the frame that triggers a snapshot is in it, milliseconds old), and
        at the latest two intervals after it (so the last changes of a quiet spell still go
        out). Either way: at most one snapshot per symbol per interval."""
        due, next_at = [], None
        for symbol, recv in self.pending.items():
            opens = self.published_at[symbol] + self.interval
            if (recv if recv is not None else now) >= opens or now >= opens + self.interval:
                due.append(symbol)
            else:
                next_at = min(next_at or opens + self.interval, opens + self.interval)
        return due, next_at

    async def _publisher(self) -> None:
        maxlen = self.settings.ingest.stream_maxlen
        backoff = Backoff(base=0.2, cap=10.0)
        while not self._stopping.is_set():
            now = time.time()
            due, next_at = self._due(now)
            if not due:
                self._wake.clear()
                timeout = None if next_at is None else max(0.0, next_at - now)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                continue
            recv = {symbol: self.pending[symbol] for symbol in due}
            items = self.build_batch(due, now)
            trades = list(self.trade_backlog)
            try:
                await self.bus.publish_many(items + trades, maxlen=maxlen)
            except BusUnavailable as e:
                for symbol in due:  # state, not events: the next snapshot supersedes this one
                    self.pending.setdefault(symbol, recv[symbol])
                self._bus_down(str(e))
                await asyncio.sleep(backoff.next())
                continue
            for _ in trades:
                self.trade_backlog.popleft()
            for symbol in due:
                self.published[symbol] += 1
                self.published_at[symbol] = now
            if not self.bus_up:
                log.info("bus is back: publishing resumed")
            self.bus_up, self.bus_message = True, ""
            backoff.reset()

    def _bus_down(self, message: str) -> None:
        if self.bus_up:
            log.error("bus unavailable, books kept and publishing retried: %s", message)
        self.bus_up, self.bus_message = False, message

    async def _ticker(self) -> None:
        """Republish every symbol at least once a second so staleness and venue drop-outs
        show up even when nothing changes, and publish the health record."""
        while not self._stopping.is_set():
            await asyncio.sleep(1.0)
            now = time.time()
            for symbol in self.settings.symbols:
                self.pending.setdefault(symbol, None)
            self._wake.set()
            try:
                await self.bus.publish(HEALTH_STREAM, schema.encode(self.health(now)), maxlen=10_000)
            except BusUnavailable as e:
                self._bus_down(str(e))

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(c.run(), name=f"venue:{v}") for v, c in self.connections.items()]
        self._tasks.append(asyncio.create_task(self._publisher(), name="publisher"))
        self._tasks.append(asyncio.create_task(self._ticker(), name="health"))
        for task in self._tasks:
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        """An ingest task must only end at stop; one that dies is a bug to shout about, and
        readiness fails so Kubernetes restarts the pod."""
        if task.cancelled() or self._stopping.is_set():
            return
        error = task.exception()
        self.failures[task.get_name()] = f"{type(error).__name__}: {error}" if error else "ended unexpectedly"
        log.error("ingest task %s died: %s; ingest is no longer ready", task.get_name(),
                  self.failures[task.get_name()], exc_info=error)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        await asyncio.gather(*(c.stop() for c in self.connections.values()), return_exceptions=True)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- observability -----------------------------------------------------------------------

    def health(self, now: float) -> dict:
        """The health record (schema `health`), published on the health stream and served
        on /healthz: per venue connection state and message, sync states, counters."""
        venues = []
        for venue, adapter in self.adapters.items():
            h = self.connections[venue].health
            row = schema.venue_health(
                venue, h.state, {n: adapter.state[n] for n in adapter.books}, adapter.stats.as_dict(),
                h.lag_ms if h.last_msg_ts and adapter.event_time else None,
                round((now - h.last_msg_ts) * 1000) if h.last_msg_ts else None, h.message)
            venues.append(row)
        return schema.health_record(int(now * 1e9), venues, "ok" if self.bus_up else "down",
                                    self.bus_message)

    def summary(self) -> dict:
        h = self.health(time.time())
        return {
            "snapshots_published": dict(self.published),
            "venues_healthy": sorted(v["venue"] for v in h["venues"] if v["state"] == "live"),
            "messages": {v["venue"]: v["messages"] for v in h["venues"]},
            "resyncs": {v["venue"]: v["resyncs"] for v in h["venues"]},
            "checksum_failures": {v["venue"]: v["checksum_failures"] for v in h["venues"]},
            "rejected": {v["venue"]: v["rejected"] for v in h["venues"] if v["rejected"]},
            "bus": {**h["bus"], "trade_backlog": len(self.trade_backlog), "trades_dropped": self.trades_dropped},
        }


def pipeline_config(settings: Settings, symbol: str) -> PipelineConfig:
    cfg = settings.ingest
    return PipelineConfig(
        bucket_size=settings.bucket_size(symbol),
        depth=cfg.venue_depth,
        ladder_levels=cfg.ladder_levels,
        buckets_per_side=cfg.buckets_per_side,
        imbalance_levels=tuple(cfg.imbalance_levels),
        stale_after_s=cfg.stale_after_ms / 1000,
        quote_policy=cfg.quote_policy,
        session_seconds=cfg.session_seconds,
    )
