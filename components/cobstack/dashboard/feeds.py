"""Feeds: ONE reader task per stream, rendering each update once into the hub.

A feed tails its stream with a StreamReader, decodes only the newest records of each batch
(state panels need only the latest snapshot: the rest is conflated before decoding), renders
its panels and publishes them. Browsers never cause a bus read. Bad records are counted and
skipped; a bus outage is logged once, retried with backoff, and shown as the feed's error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence

from ..bus import StreamReader
from ..bus.base import Bus, BusUnavailable, Entry, Gap, parse_id
from ..config import Settings
from ..core import schema
from ..core.schema import SchemaError, Snapshot
from ..streams import HEALTH_STREAM, book_stream, trades_stream
from ..venues.connect import Backoff
from . import views
from .hub import Hub
from .render import HEALTH, Renderer, panel_name

log = logging.getLogger("cobstack.dashboard")

BLOCK_MS = 500  # longest wait for new entries before checking for shutdown
PAGE = 500  # entries per XRANGE page when backfilling


def entry_time(entry_id: str) -> float:
    """Wall time (epoch s) the bus gave an entry: its id's milliseconds."""
    return parse_id(entry_id)[0] / 1000


class Feed:
    """Base of every feed: the read loop, counters and error state. Subclasses decode and
    `handle` records, and may `backfill` from history before tailing."""

    keep = 1  # newest records decoded per batch; older ones in the batch are conflated away

    def __init__(self, stream: str, decode: Callable[[bytes], object]):
        self.stream = stream
        self.decode = decode
        self.records = 0
        self.rejected = 0
        self.gaps = 0
        self.last_entry: float | None = None  # bus time of the newest entry seen
        self.error: str | None = None

    async def backfill(self, bus: Bus) -> str:
        """Load what the panels need from history; returns the cursor to tail from."""
        return "$"

    def handle(self, records: list[tuple[str, object]]) -> None:
        raise NotImplementedError

    def _decode(self, entries: Sequence[Entry]) -> list[tuple[str, object]]:
        out = []
        for e in entries:
            try:
                out.append((e.id, self.decode(e.data)))
            except SchemaError as err:
                self.rejected += 1
                if self.rejected == 1 or self.rejected % 1000 == 0:
                    log.warning("%s: skipped malformed record %s (%d so far): %s",
                                self.stream, e.id, self.rejected, err)
        return out

    async def run(self, bus: Bus) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        reader: StreamReader | None = None
        while True:
            try:
                if reader is None:
                    reader = StreamReader(bus, {self.stream: await self.backfill(bus)},
                                          block_ms=BLOCK_MS, count=max(self.keep, 100))
                batch = await reader.next_batch()
            except BusUnavailable as e:
                if self.error is None:
                    log.error("%s: bus unavailable, retrying: %s", self.stream, e)
                self.error = str(e)
                await asyncio.sleep(backoff.next())
                continue
            if self.error is not None:
                log.info("%s: bus is back", self.stream)
                self.error = None
                backoff.reset()
            entries = [item for item in batch if isinstance(item, Entry)]
            self.gaps += sum(isinstance(item, Gap) for item in batch)
            if not entries:
                continue
            self.records += len(entries)
            self.last_entry = entry_time(entries[-1].id)
            records = self._decode(entries[-self.keep:])
            if records:
                self.handle(records)


class BookFeed(Feed):
    """cob:book:{symbol} -> ladder, stats, venues, heatmap and profile panels."""

    HEATMAP_TAIL = 6  # newest heatmap columns each update carries (a browser that missed a few catches up)

    def __init__(self, settings: Settings, symbol: str, hub: Hub, renderer: Renderer):
        super().__init__(book_stream(symbol), schema.decode_snapshot)
        cfg = settings.dashboard
        self.symbol = symbol
        self.hub = hub
        self.renderer = renderer
        self.levels = cfg.ladder_levels
        self.profile_rows = cfg.profile_rows
        self.slot_s = cfg.heatmap_resolution_ms / 1000
        self.columns: deque[dict] = deque(maxlen=math.ceil(cfg.heatmap_seconds / self.slot_s))
        self.latest: Snapshot | None = None

    async def backfill(self, bus: Bus) -> str:
        """The heatmap's window from history: one snapshot per time slot, chosen by entry id
        (no decoding of the others), then the newest for the panels."""
        since_ms = int((time.time() - self.columns.maxlen * self.slot_s) * 1000)
        cursor, last_id = f"{since_ms}", None
        chosen: dict[int, Entry] = {}
        while True:
            page = await bus.range(self.stream, cursor, "+", count=PAGE)
            for e in page:
                chosen[math.floor(entry_time(e.id) / self.slot_s)] = e
            if len(page) < PAGE:
                break
            cursor = "(" + page[-1].id
        records = self._decode([chosen[k] for k in sorted(chosen)])
        for _, snap in records:
            self._add_column(snap)
        if records:
            last_id = records[-1][0]
            self.handle(records[-1:])
        return last_id or "$"

    def _add_column(self, snap: Snapshot) -> None:
        col = views.heatmap_column(snap, self.slot_s)
        if col is None:
            return
        if self.columns and self.columns[-1]["t"] == col["t"]:
            self.columns[-1] = col
        elif not self.columns or col["t"] > self.columns[-1]["t"]:
            self.columns.append(col)

    def handle(self, records: list[tuple[str, object]]) -> None:
        snap = records[-1][1]
        assert isinstance(snap, Snapshot)
        self.latest = snap
        self._add_column(snap)
        s, r, publish = self.symbol, self.renderer, self.hub.publish
        publish(panel_name("ladder", s), r.panel(panel_name("ladder", s), views.ladder_view(snap, self.levels)))
        publish(panel_name("stats", s), r.panel(panel_name("stats", s), views.stats_view(snap)))
        publish(panel_name("venues", s), r.panel(panel_name("venues", s), views.venues_view(snap)))
        publish(panel_name("profile", s), r.panel(panel_name("profile", s), views.profile_view(snap, self.profile_rows)))
        tail = list(self.columns)[-self.HEATMAP_TAIL:]
        publish(panel_name("heatmap", s), r.panel(panel_name("heatmap", s), views.heatmap_view(snap, tail)))

    def heatmap_page(self) -> str:
        """The heatmap fragment a freshly loaded page starts from: the whole window."""
        name = panel_name("heatmap", self.symbol)
        if self.latest is None:
            return self.renderer.panel(name, None)
        return self.renderer.panel(name, views.heatmap_view(self.latest, self.columns))


class TradesFeed(Feed):
    """cob:trades:{symbol} -> the trades tape (newest first)."""

    BACKFILL_S = 120  # how far back the tape looks when the dashboard starts

    def __init__(self, settings: Settings, symbol: str, hub: Hub, renderer: Renderer):
        super().__init__(trades_stream(symbol), schema.decode_trade)
        self.keep = settings.dashboard.trades_shown
        self.tape: deque = deque(maxlen=self.keep)
        self.venues = settings.venues
        self.panel = panel_name("trades", symbol)
        self.hub = hub
        self.renderer = renderer

    async def backfill(self, bus: Bus) -> str:
        since_ms = int((time.time() - self.BACKFILL_S) * 1000)
        cursor, last = f"{since_ms}", []
        while True:  # keep only the newest `keep` entries, whatever the trade rate
            page = await bus.range(self.stream, cursor, "+", count=PAGE)
            last = (last + page)[-self.keep:]
            if len(page) < PAGE:
                break
            cursor = "(" + page[-1].id
        records = self._decode(last)
        if records:
            self.handle(records)
        return last[-1].id if last else "$"

    def handle(self, records: list[tuple[str, object]]) -> None:
        self.tape.extend(rec for _, rec in records)
        self.hub.publish(self.panel, self.renderer.panel(
            self.panel, views.trades_view(reversed(self.tape), self.venues)))


class HealthFeed(Feed):
    """cob:health -> the venue health table."""

    def __init__(self, settings: Settings, hub: Hub, renderer: Renderer):
        super().__init__(HEALTH_STREAM, schema.decode_health)
        self.venues = settings.venues
        self.hub = hub
        self.renderer = renderer

    async def backfill(self, bus: Bus) -> str:
        entry = await bus.latest(self.stream)
        if entry is None:
            return "$"
        records = self._decode([entry])
        if records:
            self.handle(records)
        return entry.id

    def handle(self, records: list[tuple[str, object]]) -> None:
        self.hub.publish(HEALTH, self.renderer.panel(HEALTH, views.health_view(records[-1][1], self.venues)))
