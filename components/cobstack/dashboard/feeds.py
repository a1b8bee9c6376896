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


async def one_per_slot(bus: Bus, stream: str, since_s: float, slot_s: float) -> list[Entry]:
    """The newest entry of each `slot_s` time slot over the last `since_s` seconds, chosen by
    entry id (the others are never decoded), oldest first."""
    chosen: dict[int, Entry] = {}
    cursor = f"{int((time.time() - since_s) * 1000)}"
    while True:
        page = await bus.range(stream, cursor, "+", count=PAGE)
        for e in page:
            chosen[math.floor(entry_time(e.id) / slot_s)] = e
        if len(page) < PAGE:
            return [chosen[k] for k in sorted(chosen)]
        cursor = "(" + page[-1].id


class SlotSeries:
    """A time series with at most one point per `slot_s` slot (a newer point in the same
    slot replaces it), the newest `n` slots kept. Points are (slot start, value)."""

    def __init__(self, slot_s: float, n: int):
        self.slot_s = slot_s
        self.points: deque[tuple[float, object]] = deque(maxlen=n)

    def add(self, t_s: float, value: object) -> None:
        t = round(math.floor(t_s / self.slot_s) * self.slot_s, 6)
        if self.points and self.points[-1][0] == t:
            self.points[-1] = (t, value)
        elif not self.points or t > self.points[-1][0]:
            self.points.append((t, value))

    @property
    def window_s(self) -> float:
        return self.slot_s * self.points.maxlen


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
        self.render_errors = 0
        self.last_entry: float | None = None  # bus time of the newest entry seen
        self.error: str | None = None

    async def backfill(self, bus: Bus) -> str:
        """Load what the panels need from history; returns the cursor to tail from."""
        return "$"

    def handle(self, records: list[tuple[str, object]]) -> None:
        raise NotImplementedError

    def resume_after(self, entries: list[Entry]) -> str:
        """Show `entries` (history), then tail from the last of them."""
        records = self._decode(entries)
        if records:
            self._show(records)
        return entries[-1].id if entries else "$"

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
                self._show(records)

    def _show(self, records: list[tuple[str, object]]) -> None:
        """handle(), with a failure to render counted and logged instead of ending the feed:
        the panels keep their last good state and the next record is tried."""
        try:
            self.handle(records)
        except Exception:  # noqa: BLE001 - a bug on one record must not blind the dashboard
            self.render_errors += 1
            if self.render_errors == 1 or self.render_errors % 1000 == 0:
                log.exception("%s: cannot render record %s (%d so far)", self.stream, records[-1][0],
                              self.render_errors)


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
        slot_s = cfg.heatmap_resolution_ms / 1000
        self.columns = SlotSeries(slot_s, math.ceil(cfg.heatmap_seconds / slot_s))
        self.latest: Snapshot | None = None

    async def backfill(self, bus: Bus) -> str:
        """The heatmap's window from history, one snapshot per column; the newest fills the panels."""
        entries = await one_per_slot(bus, self.stream, self.columns.window_s, self.columns.slot_s)
        records = self._decode(entries)
        for _, snap in records[:-1]:
            self._add_column(snap)
        if records:
            self._show(records[-1:])
        return entries[-1].id if entries else "$"

    def _add_column(self, snap: Snapshot) -> None:
        col = views.heatmap_column(snap, self.columns.slot_s)
        if col is not None:
            self.columns.add(col["t"], col)

    def handle(self, records: list[tuple[str, object]]) -> None:
        snap = records[-1][1]
        self.latest = snap
        self._add_column(snap)
        s, r, publish = self.symbol, self.renderer, self.hub.publish
        publish(panel_name("ladder", s), r.panel(panel_name("ladder", s), views.ladder_view(snap, self.levels)))
        publish(panel_name("stats", s), r.panel(panel_name("stats", s), views.stats_view(snap)))
        publish(panel_name("venues", s), r.panel(panel_name("venues", s), views.venues_view(snap)))
        publish(panel_name("profile", s), r.panel(panel_name("profile", s), views.profile_view(snap, self.profile_rows)))
        tail = [col for _, col in list(self.columns.points)[-self.HEATMAP_TAIL:]]
        publish(panel_name("heatmap", s), r.panel(panel_name("heatmap", s), views.heatmap_view(snap, tail)))

    def heatmap_page(self) -> str:
        """The heatmap fragment a freshly loaded page starts from: the whole window."""
        name = panel_name("heatmap", self.symbol)
        if self.latest is None:
            return self.renderer.panel(name, None)
        return self.renderer.panel(name, views.heatmap_view(self.latest, [c for _, c in self.columns.points]))


async def newest(bus: Bus, stream: str, since_s: float, keep: int) -> list[Entry]:
    """The newest `keep` entries of the last `since_s` seconds, paging forward (the bus has
    no reverse range), so memory stays bounded whatever the stream's rate."""
    cursor, out = f"{int((time.time() - since_s) * 1000)}", []
    while True:
        page = await bus.range(stream, cursor, "+", count=PAGE)
        out = (out + page)[-keep:]
        if len(page) < PAGE:
            return out
        cursor = "(" + page[-1].id


class TapeFeed(Feed):
    """The newest `keep` records of a stream, newest first, rendered into one panel by
    `view(records)`: the trades tape, orders, fills, risk events, signals."""

    def __init__(self, stream: str, decode: Callable[[bytes], object], panel: str, keep: int,
                 view: Callable[[list], dict], hub: Hub, renderer: Renderer, backfill_s: float):
        super().__init__(stream, decode)
        self.keep = keep
        self.tape: deque = deque(maxlen=keep)
        self.panel, self.view, self.hub, self.renderer = panel, view, hub, renderer
        self.backfill_s = backfill_s

    async def backfill(self, bus: Bus) -> str:
        return self.resume_after(await newest(bus, self.stream, self.backfill_s, self.keep))

    def handle(self, records: list[tuple[str, object]]) -> None:
        self.tape.extend(rec for _, rec in records)
        self.hub.publish(self.panel, self.renderer.panel(self.panel, self.view(list(reversed(self.tape)))))


class HealthFeed(Feed):
    """cob:health -> the venue health table."""

    def __init__(self, settings: Settings, hub: Hub, renderer: Renderer):
        super().__init__(HEALTH_STREAM, schema.decode_health)
        self.venues = settings.venues
        self.hub = hub
        self.renderer = renderer

    async def backfill(self, bus: Bus) -> str:
        entry = await bus.latest(self.stream)
        return self.resume_after([entry] if entry else [])

    def handle(self, records: list[tuple[str, object]]) -> None:
        self.hub.publish(HEALTH, self.renderer.panel(HEALTH, views.health_view(records[-1][1], self.venues)))


def expecting(decode: Callable[[bytes], object], cls: type) -> Callable[[bytes], object]:
    """`decode`, rejecting a record of another kind than the stream carries."""
    def check(data: bytes) -> object:
        rec = decode(data)
        if not isinstance(rec, cls):
            raise SchemaError(f"expected a {cls.__name__}, got a {type(rec).__name__}")
        return rec
    return check


class LatestByKeyFeed(Feed):
    """The newest record per key (e.g. the position of each symbol), rendered into one panel."""

    BACKFILL_S = 7 * 86_400
    BACKFILL_KEEP = 5_000

    def __init__(self, stream: str, decode: Callable[[bytes], object], key: Callable[[object], str],
                 panel: str, view: Callable[[dict], dict], hub: Hub, renderer: Renderer):
        super().__init__(stream, decode)
        self.keep = 1_000
        self.latest: dict[str, object] = {}
        self.key, self.panel, self.view, self.hub, self.renderer = key, panel, view, hub, renderer

    async def backfill(self, bus: Bus) -> str:
        return self.resume_after(await newest(bus, self.stream, self.BACKFILL_S, self.BACKFILL_KEEP))

    def handle(self, records: list[tuple[str, object]]) -> None:
        for _, rec in records:
            self.latest[self.key(rec)] = rec
        self.hub.publish(self.panel, self.renderer.panel(self.panel, self.view(self.latest)))


class CurveFeed(Feed):
    """A stream of account snapshots (about one a second): the newest one as a panel with
    the curve of `value(record)` over the last `window_s`, one point per time slot."""

    POINTS = 600

    def __init__(self, stream: str, decode: Callable[[bytes], object], value: Callable[[object], float],
                 panel: str, view: Callable[[object, list], dict], window_s: float, hub: Hub, renderer: Renderer):
        super().__init__(stream, decode)
        self.series = SlotSeries(window_s / self.POINTS, self.POINTS)
        self.value, self.panel, self.view, self.hub, self.renderer = value, panel, view, hub, renderer

    async def backfill(self, bus: Bus) -> str:
        entries = await one_per_slot(bus, self.stream, self.series.window_s, self.series.slot_s)
        records = self._decode(entries)
        for _, rec in records[:-1]:
            self.series.add(rec.ts / 1e9, self.value(rec))
        if records:
            self._show(records[-1:])
        return entries[-1].id if entries else "$"

    def handle(self, records: list[tuple[str, object]]) -> None:
        rec = records[-1][1]
        self.series.add(rec.ts / 1e9, self.value(rec))
        self.hub.publish(self.panel, self.renderer.panel(self.panel, self.view(rec, list(self.series.points))))


class TrainFeed(Feed):
    """cob:train:metrics -> the training panel: status, loss curves, fold scores, RL result.
    A run that starts collecting again starts new curves."""

    POINTS = 2_000
    BACKFILL_S = 7 * 86_400

    def __init__(self, stream: str, decode: Callable[[bytes], object], panel: str, hub: Hub, renderer: Renderer):
        super().__init__(stream, decode)
        self.keep = 1_000  # every progress record is a point of the curve
        self.panel, self.hub, self.renderer = panel, hub, renderer
        self.last: dict | None = None
        self.loss: deque[tuple[float, float]] = deque(maxlen=self.POINTS)
        self.val: deque[tuple[float, float]] = deque(maxlen=self.POINTS)
        self.folds: list[dict] = []
        self.rl: dict | None = None
        self.steps = 0  # steps per fold, from the newest progress record

    async def backfill(self, bus: Bus) -> str:
        return self.resume_after(await newest(bus, self.stream, self.BACKFILL_S, 5 * self.keep))

    def handle(self, records: list[tuple[str, object]]) -> None:
        for _, rec in records:
            kind = rec["kind"]
            if kind == "collecting":
                self.loss.clear()
                self.val.clear()
                self.folds.clear()
                self.rl = None
            elif kind == "progress":
                self.steps = rec["steps"]
                self.loss.append((rec["fold"] * self.steps + rec["step"], rec["loss"]))
            elif kind == "validation":
                self.val.append((rec["fold"] * self.steps + rec["step"], rec["val_loss"]))
            elif kind == "fold":
                self.folds.append(rec)
            elif kind == "rl":
                self.rl = rec
            self.last = rec
        self.hub.publish(self.panel, self.renderer.panel(self.panel, views.train_view(
            self.last, list(self.loss), list(self.val), self.folds, self.rl)))
