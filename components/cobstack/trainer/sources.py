"""Where training snapshots come from. Every source yields (stream id, encoded snapshot)
exactly as ingest publishes them, so the dataset decodes one format with core/schema.py:

- `read_history`: the book stream itself (XRANGE pages), resumable from a stream id.
- `simulate`: the simulated market driven step by step through the same pure pipeline
  ingest runs (venue books -> SymbolPipeline -> schema.encode), minus sockets and clocks:
  thousands of snapshots a second, deterministic by seed.
- `replay_capture`: a recorded capture fed through the venue adapter, then the pipeline,
  publishing on the capture's own clock.
Synthetic ids (sim, capture) are "ms-seq" of the snapshot time, like a stream's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..bus.base import Bus
from ..capture import iter_capture
from ..core import schema
from ..core.book import L2Book
from ..core.consolidate import VenueView
from ..core.pipeline import PipelineConfig, SymbolPipeline
from ..core.symbols import venue_instrument
from ..replay import feed
from ..sim.market import BookDelta, Market, Trade as SimTrade
from ..venues.base import LIVE, Trade
from ..venues.registry import make_adapter

log = logging.getLogger("cobstack.trainer")

PAGE = 1000  # entries per XRANGE call


@dataclass(slots=True)
class HistoryPage:
    entries: list[tuple[str, bytes]]
    last_id: str | None  # resume after this id (exclusive); None when nothing was read


async def read_history(bus: Bus, stream: str, after: str | None = None, until: str = "+",
                       limit: int | None = None) -> HistoryPage:
    """Entries of `stream` after id `after` (exclusive; None = from the oldest retained)
    up to `until` (inclusive), at most `limit`, paged so no single call is large."""
    out: list[tuple[str, bytes]] = []
    start = "-" if after is None else f"({after}"
    while limit is None or len(out) < limit:
        want = PAGE if limit is None else min(PAGE, limit - len(out))
        page = await bus.range(stream, start, until, count=want)
        out.extend((e.id, e.data) for e in page)
        if len(page) < want:
            break
        start = f"({page[-1].id}"
    return HistoryPage(out, out[-1][0] if out else after)


def stream_id(t_s: float, seq: int = 0) -> str:
    return f"{int(t_s * 1000)}-{seq}"


def simulate(market: Market, symbol: str, snapshots: int, *, interval_s: float = 0.1,
             cfg: PipelineConfig = PipelineConfig()) -> Iterator[tuple[str, bytes]]:
    """`snapshots` encoded snapshots of `symbol`, one per `interval_s` of simulated time,
    from `market` (built by the caller, who picks its seed, venues and parameters)."""
    venues = market.venues
    pipe = SymbolPipeline(symbol, venues, cfg)
    books, quotes, natives = {}, {}, {}
    for v in venues:
        inst = venue_instrument(v, symbol)
        sim_book = market.book(v, symbol)
        book = L2Book(v, inst.native)
        book.load([(p, s) for p, s, _ in sim_book.top(True, len(sim_book.bids))],
                  [(p, s) for p, s, _ in sim_book.top(False, len(sim_book.asks))])
        book.ts = market.t
        books[v], quotes[v], natives[v] = book, inst.quote, inst.native
    trades: list[Trade] = []
    next_publish = market.t + interval_s
    seq = 0
    for _ in range(snapshots):
        while market.t < next_publish - 1e-9:
            for venue, events in market.step().items():
                book = books[venue]
                for ev in events:
                    if isinstance(ev, BookDelta):
                        for is_bid, price, size in ev.changes:
                            book.update(is_bid, price, size)
                        book.ts = ev.t
                    elif isinstance(ev, SimTrade):
                        trades.append(Trade(venue, natives[venue], float(ev.price), float(ev.size),
                                            "buy" if ev.taker_buy else "sell", ev.t))
        now = market.t
        views = [VenueView(v, books[v], quotes[v], True, now - books[v].ts) for v in venues]
        snap = pipe.snapshot(views, trades, int(now * 1e9))
        trades = []
        seq += 1
        yield stream_id(now, seq), schema.encode(snap)
        next_publish += interval_s


def replay_capture(path: str | Path, venue: str, native: str, *, interval_s: float = 0.1,
                   cfg: PipelineConfig = PipelineConfig()) -> Iterator[tuple[str, bytes]]:
    """Snapshots of one instrument of a capture, published at most every `interval_s` of
    capture time while its book changes (ingest's cadence). The adapter's effects (resync
    requests) cannot be answered by a capture, so a faulted book stays out, flagged."""
    adapter = make_adapter(venue, None)
    pipe: SymbolPipeline | None = None
    trades: list[Trade] = []
    last_publish = float("-inf")
    changed = False
    seq = 0
    for rec in iter_capture(path):
        feed(adapter, rec.kind, rec.url, rec.data, rec.t)
        adapter.outbox.clear()
        if native in adapter.dirty:
            changed = True
        adapter.dirty.clear()
        trades.extend(t for t in adapter.trades if t.instrument == native)
        adapter.trades.clear()
        book = adapter.books.get(native)
        if book is None or not changed or rec.t < last_publish + interval_s:
            continue
        if pipe is None:
            pipe = SymbolPipeline(adapter.instruments[native].symbol, [venue], cfg)
        live = adapter.state[native] == LIVE
        view = VenueView(venue, book, adapter.instruments[native].quote, live, 0.0,
                         "" if live else adapter.state[native])
        seq += 1
        yield stream_id(rec.t, seq), schema.encode(pipe.snapshot([view], trades, int(rec.t * 1e9)))
        trades, changed, last_publish = [], False, rec.t
    if native not in adapter.books:
        raise ValueError(f"{path}: no {venue} book for {native!r}; instruments in the capture: "
                         f"{', '.join(sorted(adapter.books)) or 'none'}")
