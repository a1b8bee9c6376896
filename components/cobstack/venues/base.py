"""The pure adapter contract every venue implements.

An adapter is a synchronous state machine for ONE connection to ONE venue. It is fed raw
text (websocket frames and REST bodies, exactly as they crossed the wire) and never does
I/O itself. What it wants done goes to `outbox` as effects, which the async shell
(`venues/connect.py`, or the capture replayer) executes:

    ("ws", text)        send this frame on the websocket (subscribe, resubscribe, pong)
    ("http", url, key)  GET this REST URL and hand the body back via on_rest(url, body, ts, key)

Per-instrument sync state (`state[native]`):
    "syncing"  waiting for a snapshot / first consistent message; book not usable
    "live"     book is consistent and published
    "resync"   a gap, checksum failure or crossed book was detected; book cleared and
               flagged until a fresh snapshot makes it consistent again

A fault in one instrument resyncs that instrument only. Nothing escapes `on_frame` or
`on_rest`: bad input is counted in `stats.rejected[kind]` with one sample per kind.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from ..core.book import BadLevel, L2Book
from ..core.symbols import Instrument, instrument

log = logging.getLogger("cobstack.venues")

SYNCING, LIVE, RESYNC = "syncing", "live", "resync"
SAMPLE_CHARS = 200


@dataclass(slots=True)
class Trade:
    venue: str
    instrument: str  # native
    price: float
    size: float
    side: str  # taker side: "buy" or "sell"
    ts: float  # venue time, seconds


@dataclass
class VenueStats:
    venue: str
    messages: int = 0  # frames + REST bodies fed in
    updates: int = 0  # book update messages applied
    snapshots: int = 0
    checksums_ok: int = 0
    checksum_failures: int = 0
    gaps: int = 0
    resyncs: int = 0
    crossed: int = 0
    stale_dropped: int = 0  # diffs older than the snapshot, dropped as the venue docs say
    rejected: Counter = field(default_factory=Counter)
    samples: dict = field(default_factory=dict)  # kind -> first truncated sample

    def reject(self, kind: str, sample: object) -> None:
        """Count a rejection; log the first of each kind with a truncated sample."""
        self.rejected[kind] += 1
        if kind not in self.samples:
            text = sample if isinstance(sample, str) else repr(sample)
            self.samples[kind] = text[:SAMPLE_CHARS]
            log.warning("%s: rejected %s (first of its kind; later ones are only counted): %s",
                        self.venue, kind, self.samples[kind])

    def as_dict(self) -> dict:
        return {
            "messages": self.messages, "updates": self.updates, "snapshots": self.snapshots,
            "checksums_ok": self.checksums_ok, "checksum_failures": self.checksum_failures,
            "gaps": self.gaps, "resyncs": self.resyncs, "crossed": self.crossed,
            "stale_dropped": self.stale_dropped, "rejected": dict(self.rejected),
        }


class Adapter:
    """Base class: book registry, sync state, counters, effects and the never-raise guard.

    Subclasses implement `_frame(text, ts)` and, where the venue has REST snapshots,
    `_rest(url, text, ts, key)`, plus the endpoint/subscription methods.
    """

    venue: ClassVar[str]
    live_ws_url: ClassVar[str] = ""  # the venue's public websocket endpoint
    live_rest_url: ClassVar[str] = ""  # the venue's public REST base (scheme + host)
    # REST budget in the venue's documented request-weight units (the shell's token bucket).
    rest_weight_per_minute: ClassVar[float] = 60.0
    snapshot_weight: ClassVar[float] = 1.0

    def __init__(self, instruments: list[str] | None = None, depth: int | None = None,
                 ws_url: str | None = None, rest_url: str | None = None):
        """instruments: native names to track; None tracks whatever the feed carries (replay).
        ws_url / rest_url: override the live endpoints (the simulated venues serve the same
        paths on loopback); adapters build full URLs with the venue's real paths on these."""
        self.ws_base = ws_url or self.live_ws_url
        self.rest_base = rest_url or self.live_rest_url
        self.depth = depth
        self.auto = instruments is None
        self.books: dict[str, L2Book] = {}
        self.state: dict[str, str] = {}
        self.instruments: dict[str, Instrument] = {}
        self.stats = VenueStats(self.venue)
        self.dirty: set[str] = set()  # instruments whose book changed since the shell drained it
        self.trades: list[Trade] = []  # drained by the shell
        self.outbox: list[tuple] = []  # effects, drained by the shell
        for native in instruments or ():
            self._track(native)

    # -- the shell's entry points (never raise) -------------------------------------------

    def on_frame(self, text: str | bytes, ts: float) -> None:
        self.stats.messages += 1
        try:
            self._frame(text, ts)
        except BadLevel as e:  # a level the subclass did not attribute to an instrument
            self.stats.reject(e.kind, text)
        except Exception as e:  # noqa: BLE001 - venue isolation: count, never crash ingest
            self.stats.reject(f"unparseable:{type(e).__name__}", text)

    def on_rest(self, url: str, text: str | bytes, ts: float, key: str | None = None) -> None:
        self.stats.messages += 1
        try:
            self._rest(url, text, ts, key)
        except BadLevel as e:
            self.stats.reject(e.kind, text)
        except Exception as e:  # noqa: BLE001
            self.stats.reject(f"unparseable_rest:{type(e).__name__}", text)

    # -- venue specifics -------------------------------------------------------------------

    def ws_url(self) -> str:
        raise NotImplementedError

    def subscribe_frames(self) -> list[str]:
        """Frames to send after the websocket opens (all tracked instruments)."""
        raise NotImplementedError

    def start(self) -> None:
        """Called by the shell after (re)connecting: reset every book and queue subscriptions."""
        for native in self.books:
            self._reset(native, SYNCING)
        self.outbox.extend(("ws", f) for f in self.subscribe_frames())

    def _frame(self, text: str | bytes, ts: float) -> None:
        raise NotImplementedError

    def _rest(self, url: str, text: str | bytes, ts: float, key: str | None) -> None:
        self.stats.reject("unexpected_rest", url)

    def _request_resync(self, native: str) -> None:
        """Queue what brings `native` back (a REST snapshot or a resubscribe)."""
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------

    def _track(self, native: str) -> L2Book | None:
        """The book for `native`, creating it when tracked or in auto mode; else None."""
        book = self.books.get(native)
        if book is None:
            if not self.auto:
                return None
            try:
                self.instruments[native] = instrument(self.venue, native)
            except ValueError:
                self.instruments[native] = Instrument(self.venue, native, native, "")
            book = self.books[native] = L2Book(self.venue, native, self.depth)
            self.state[native] = SYNCING
        return book

    def _reset(self, native: str, state: str) -> None:
        self.books[native].clear()
        self.state[native] = state
        self.dirty.add(native)

    def fault(self, native: str, kind: str, sample: object) -> None:
        """A consistency fault in one instrument: count it, flag it, resync it alone."""
        if kind == "gap":
            self.stats.gaps += 1
        elif kind == "checksum":
            self.stats.checksum_failures += 1
        elif kind == "crossed":
            self.stats.crossed += 1
        else:
            self.stats.reject(kind, sample)
        if self.state.get(native) != RESYNC:
            log.warning("%s %s: %s; resyncing this instrument only", self.venue, native, kind)
        self.stats.resyncs += 1
        self._reset(native, RESYNC)
        self._request_resync(native)

    def consistent(self, native: str) -> bool:
        return self.state.get(native) == LIVE

    def flagged(self) -> list[str]:
        return sorted(n for n, s in self.state.items() if s != LIVE)
