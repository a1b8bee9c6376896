"""Replay a capture through a venue adapter and say whether the books stayed consistent.

ws_recv frames go to `on_frame`, http bodies to `on_rest` (the adapter derives the instrument
from the URL, as the live shell would have keyed the request); ws_open / ws_send records are
what the recording client did and are informational. The adapter's effects (resubscribes,
snapshot requests) are discarded: a capture cannot answer them, so an instrument that faults
stays flagged, which is exactly what the summary must show.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .capture import iter_capture
from .venues.base import LIVE, Adapter, VenueStats
from .venues.registry import make_adapter

TOP_LEVELS = 5


@dataclass
class ReplaySummary:
    venue: str
    path: str
    stats: VenueStats
    trades: int
    instruments: dict[str, dict] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        """No checksum failure, gap or crossed book, and every book with data ended live."""
        s = self.stats
        return (s.checksum_failures == 0 and s.gaps == 0 and s.crossed == 0
                and all(i["consistent"] for i in self.instruments.values()))

    def as_dict(self) -> dict:
        """JSON-serialisable; counter names are VenueStats' own (one vocabulary everywhere)."""
        return {"venue": self.venue, "file": self.path, "consistent": self.consistent,
                **self.stats.as_dict(), "trades": self.trades, "flagged": self.flagged(),
                "instruments": self.instruments}

    def flagged(self) -> list[str]:
        return [n for n, i in self.instruments.items() if not i["consistent"]]


def feed(adapter: Adapter, kind: str, url: str, data: str, t: float) -> None:
    """Hand one capture record to the adapter."""
    if kind == "ws_recv":
        adapter.on_frame(data, t)
    elif kind == "http":
        adapter.on_rest(url, data, t, None)


def _levels(side) -> list[list[str]]:
    return [[lv.price_str, lv.size_str] for lv in side.top(TOP_LEVELS)]


def summarize(adapter: Adapter, path: str, trades: int) -> ReplaySummary:
    summary = ReplaySummary(adapter.venue, path, adapter.stats, trades)
    for native in sorted(adapter.books):
        book, state = adapter.books[native], adapter.state[native]
        summary.instruments[native] = {
            "state": state, "consistent": state == LIVE,
            "bids": _levels(book.bids), "asks": _levels(book.asks),
        }
    return summary


def replay(path: str | Path, venue: str, *, depth: int | None = None) -> ReplaySummary:
    """Feed the whole capture at `path` through a fresh `venue` adapter (auto instruments)."""
    adapter = make_adapter(venue, None, depth=depth)
    trades = 0
    for rec in iter_capture(path):
        feed(adapter, rec.kind, rec.url, rec.data, rec.t)
        adapter.outbox.clear()
        adapter.dirty.clear()
        trades += len(adapter.trades)
        adapter.trades.clear()
    return summarize(adapter, str(path), trades)


def bench_throughput(path: str | Path, venue: str, repeat: int = 10) -> dict:
    """Replay throughput on this core: the capture's lines are loaded into memory once, then
    decoding each line and its frame and applying it (checksums verified) is timed, `repeat`
    times over with a fresh adapter each pass."""
    lines = [line for line in Path(path).read_bytes().splitlines() if line.strip()]
    msgs = checksums = 0
    loads = orjson.loads
    elapsed = 0.0
    for _ in range(repeat):
        adapter = make_adapter(venue, None)
        on_frame, on_rest = adapter.on_frame, adapter.on_rest
        start = time.perf_counter()
        for line in lines:
            rec = loads(line)
            kind = rec["kind"]
            if kind == "ws_recv":
                on_frame(rec["data"], rec["t"])
            elif kind == "http":
                on_rest(rec["url"], rec["data"], rec["t"], None)
        elapsed += time.perf_counter() - start
        msgs += adapter.stats.messages
        checksums += adapter.stats.checksums_ok
    return {"msgs": msgs, "seconds": elapsed,
            "msgs_per_s": msgs / elapsed if elapsed else 0.0, "checksums": checksums}
