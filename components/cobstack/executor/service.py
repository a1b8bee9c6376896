"""`cobstack execute`: signals in through a consumer group, paper orders and fills out.

Exactly once, across crashes and restarts: the executor reads signals and control commands
with XREADGROUP, decides (engine.py, pure), and then writes everything the batch produced,
its whole ledger and the acknowledgement of its inputs in ONE atomic step (Bus.commit, a Lua
script on Redis). A crash before that step leaves the inputs pending and the state as it was:
the restarted executor takes them back (its own by name, a dead consumer's by XAUTOCLAIM)
and decides again. A crash after it leaves nothing to redo. Inputs the state already
recorded as done are only acknowledged, never decided twice (after a consumer group was
lost and re-created). The commit is conditional on the state version, so a second executor
on the same account cannot interleave its decisions: its commit fails and it reloads.

Book snapshots are not inputs: only the newest one per symbol matters, so a plain reader
keeps `markets` current beside the group reader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence

from ..bus import Bus, BusUnavailable, Entry, NoSuchGroup, StateConflict, StreamReader
from ..bus.base import parse_id
from ..config import Settings
from ..core.schema import SchemaError, decode_snapshot
from ..streams import EXEC_CONTROL_STREAM, EXEC_STATE_KEY, SIGNALS_STREAM, book_stream
from . import records
from .engine import Engine, next_due
from .ledger import Ledger
from .live import refuse_live
from .routing import Market, market

log = logging.getLogger("cobstack.executor")

GROUP = "executor"
INPUTS = [EXEC_CONTROL_STREAM, SIGNALS_STREAM]  # control first: it wins a tie in publish time
MAX_WAIT_MS = 250  # longest blocking read: bounds how late `stop` and the clock are noticed


async def serve(settings: Settings, bus: Bus, stop: asyncio.Event) -> None:
    if settings.executor.mode == "live":
        raise refuse_live()
    await Executor(settings, bus).run(stop)


class Executor:
    def __init__(self, settings: Settings, bus: Bus, clock: Callable[[], int] = time.time_ns) -> None:
        self.cfg = settings.executor
        self.symbols = list(settings.symbols)
        self.bus = bus
        self.clock = clock
        self.engine = Engine(self.cfg, self.symbols)
        self.markets: dict[str, Market] = {}
        self.ledger = Ledger.fresh(self.cfg.starting_cash)
        self.version = 0
        self.next_pnl = 0
        self.next_claim = 0
        self.stats = {"commits": 0, "redelivered_done": 0, "bad_snapshots": 0, "conflicts": 0, "outages": 0}

    async def run(self, stop: asyncio.Event) -> None:
        books = asyncio.create_task(self._tail_books(stop), name="executor-books")
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    await self._recover()
                    await self._loop(stop)
                    backoff = 0.1
                except BusUnavailable as e:
                    self.stats["outages"] += 1
                    log.warning("executor paused: %s; retrying in %.1f s from the last committed state", e, backoff)
                    await _sleep(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                except NoSuchGroup as e:  # Redis restarted without persistence, or the group was deleted
                    log.warning("executor consumer group lost (%s); re-creating it after the last committed input", e)
                except StateConflict as e:
                    self.stats["conflicts"] += 1
                    log.error("executor state changed under us (%s): is a second executor running on %s? only one "
                              "may; reloading the committed state", e, EXEC_STATE_KEY)
        finally:
            books.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await books

    # --- the exactly-once loop --------------------------------------------------------------

    async def _recover(self) -> None:
        """Reload the committed state, make sure the group exists, then finish what a previous
        run (or this one, before an error) had read but not committed."""
        self.version, blob = await self.bus.load_state(EXEC_STATE_KEY)
        self.ledger = Ledger.from_bytes(blob) if blob else Ledger.fresh(self.cfg.starting_cash)
        await self._load_books()  # inputs taken back below are decided on the current books
        for stream in INPUTS:
            # a new group starts at "$": signals from before the executor's first start are history
            await self.bus.ensure_group(stream, GROUP, self.ledger.cursor.get(stream, "$"))
        log.info("executor at state v%d: cash %.2f, %d positions, %d orders in flight, halted=%s killed=%s",
                 self.version, self.ledger.cash, len(self.ledger.positions), len(self.ledger.inflight),
                 self.ledger.halted, self.ledger.killed)
        taken_back = 0
        for stream in INPUTS:
            while entries := await self.bus.pending_for(stream, GROUP, self.cfg.consumer, self.cfg.batch):
                taken_back += len(entries)
                await self._step(entries)
        if taken_back:
            log.info("executor took back %d inputs read but not committed before a restart", taken_back)
        await self._claim()

    async def _claim(self) -> None:
        """Take over inputs left pending by a consumer that died (XAUTOCLAIM after claim_idle_ms)."""
        for stream in INPUTS:
            while entries := await self.bus.autoclaim(stream, GROUP, self.cfg.consumer, self.cfg.claim_idle_ms,
                                                      self.cfg.batch):
                await self._step(entries)
        self.next_claim = self.clock() + self.cfg.claim_idle_ms * 500_000  # twice per idle period

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            entries = await self.bus.read_group(GROUP, self.cfg.consumer, INPUTS, self._wait_ms(), self.cfg.batch)
            await self._step(entries)
            if self.clock() >= self.next_claim:
                await self._claim()

    def _wait_ms(self) -> int | None:
        """Block until the next child order is due or the next mark, at most MAX_WAIT_MS;
        None (do not block) when one is due already."""
        due = min(x for x in (next_due(self.ledger), self.next_pnl) if x is not None)
        ms = math.ceil((due - self.clock()) / 1e6)
        return None if ms <= 0 else min(ms, MAX_WAIT_MS)

    async def _step(self, entries: Sequence[Entry]) -> None:
        """Decide on `entries` (in order), fill what is due, mark if it is time; commit it all."""
        now = self.clock()
        ledger, engine = self.ledger, self.engine
        by_stream: dict[str, list[str]] = {}
        unique = []
        for e in entries:
            ids = by_stream.setdefault(e.stream, [])
            if e.id not in ids:
                ids.append(e.id)
                unique.append(e)
        # Only an id at or below the stream's cursor (the newest committed) can have been done:
        # the state we extend is the latest (commits are conditional on its version).
        done = {s: await self.bus.done(EXEC_STATE_KEY, s, [i for i in ids if self._seen(s, i)])
                for s, ids in by_stream.items()}
        out = []
        # in publish order across streams (ids are publish times): a halt sent before a signal stops
        # it; the sort is stable and read_group lists control first, so a same-ms halt goes first too
        for e in sorted(unique, key=lambda e: parse_id(e.id)):
            if e.id in done[e.stream]:
                self.stats["redelivered_done"] += 1
                continue
            if not self._seen(e.stream, e.id):
                ledger.cursor[e.stream] = e.id
            if e.stream == SIGNALS_STREAM:
                out += engine.on_signal(ledger, e.id, e.data, self.markets, now)
            else:
                out += engine.on_control(ledger, e.id, e.data, self.markets, now)
        out += engine.fill_due(ledger, self.markets, now)
        if now >= self.next_pnl:
            out += engine.mark(ledger, self.markets, now)
            self.next_pnl = now + self.cfg.pnl_interval_ms * 1_000_000
        if not by_stream and not out:
            return
        await self.bus.commit(EXEC_STATE_KEY, self.version, ledger.to_bytes(), group=GROUP, acks=by_stream,
                              items=[(stream, records.encode(rec)) for stream, rec in out],
                              maxlen=self.cfg.stream_maxlen)
        self.version += 1
        self.stats["commits"] += 1

    def _seen(self, stream: str, entry_id: str) -> bool:
        last = self.ledger.cursor.get(stream)
        return last is not None and parse_id(entry_id) <= parse_id(last)

    # --- books ------------------------------------------------------------------------------

    async def _tail_books(self, stop: asyncio.Event) -> None:
        """Keep `markets` at each symbol's newest snapshot (older ones in a batch are skipped)."""
        reader: StreamReader | None = None
        while not stop.is_set():
            try:
                if reader is None:
                    reader = StreamReader(self.bus, await self._load_books(), block_ms=MAX_WAIT_MS)
                newest_per_stream = {e.stream: e for e in await reader.next_batch() if isinstance(e, Entry)}
                for e in newest_per_stream.values():
                    self._on_book(e)
            except BusUnavailable as e:
                log.warning("executor book reader: %s; retrying in 0.5 s", e)
                await _sleep(stop, 0.5)

    async def _load_books(self) -> dict[str, str]:
        """Each symbol's newest snapshot into `markets`; returns the book streams' cursors."""
        cursors = {}
        for symbol in self.symbols:
            newest = await self.bus.latest(book_stream(symbol))
            if newest is not None:
                self._on_book(newest)
            cursors[book_stream(symbol)] = newest.id if newest else "0"
        return cursors

    def _on_book(self, e: Entry) -> None:
        try:
            snap = decode_snapshot(e.data)
        except SchemaError as err:
            self.stats["bad_snapshots"] += 1
            log.warning("executor ignores snapshot %s on %s: %s", e.id, e.stream, err)
            return
        self.markets[snap.symbol] = market(snap, self.engine.fees, self.engine.default_fee, self.cfg.stale_book_ms)


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
