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
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import ClassVar

from ..core.book import BadLevel, BookSide, L2Book, MAX_DIGITS, new_level, parse_level
from ..core.symbols import Instrument, instrument

log = logging.getLogger("cobstack.venues")

SYNCING, LIVE, RESYNC = "syncing", "live", "resync"
MAX_PRICE_CHARS = MAX_DIGITS + 1  # a price string this short cannot exceed MAX_DIGITS digits
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
    ignored: int = 0  # frames deliberately unused (tickers, klines, heartbeats, acks)
    reconciliations: int = 0  # live books compared with a REST snapshot at the same update id
    reconcile_skipped: int = 0  # reconciliations given up (snapshot too old, never came, ...)
    drift_events: int = 0  # reconciliations that found the live book different (then resynced)
    drifted_levels: int = 0  # levels that differed, over all drift events
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
            "stale_dropped": self.stale_dropped, "ignored": self.ignored,
            "reconciliations": self.reconciliations, "reconcile_skipped": self.reconcile_skipped,
            "drift_events": self.drift_events, "drifted_levels": self.drifted_levels,
            "rejected": dict(self.rejected),
        }


def _wire_level(lv: object) -> tuple[str, str]:
    """(price, size) strings of one wire level `[price, size, ...]`; BadLevel otherwise
    (a JSON number would parse, but venues send strings and checksums hash the strings)."""
    if lv.__class__ is not list or len(lv) < 2:
        raise BadLevel("malformed_level", repr(lv)[:SAMPLE_CHARS])
    p, s = lv[0], lv[1]
    if p.__class__ is not str or s.__class__ is not str:
        raise BadLevel("malformed_number", f"price={p!r} size={s!r}")
    return p, s


def set_level(side: BookSide, price_str: str, size_str: str) -> None:
    """Apply one level given as strings; BadLevel on anything else."""
    p, s = _wire_level([price_str, size_str])
    side.set(*parse_level(p, s), p, s)


def _level_list(levels: object) -> list:
    if levels.__class__ is not list:
        raise BadLevel("malformed_level", f"levels are {type(levels).__name__}, not a list")
    return levels


def apply_levels(side: BookSide, levels: list) -> None:
    """Apply wire levels `[[price, size, ...], ...]`; raise BadLevel on anything else."""
    setlevel = side.set
    for lv in _level_list(levels):
        p, s = _wire_level(lv)
        price, size = parse_level(p, s)
        setlevel(price, size, p, s)


def snapshot_side(is_bid: bool, levels: list) -> BookSide:
    """A whole side built from snapshot wire levels at once. Snapshots dominate replay cost
    (thousands of levels each), so the common case runs column-wise in C-level loops and
    checks the columns' bounds; anything unusual takes the per-level path, which names the
    exact fault."""
    side = BookSide(is_bid)
    try:
        ps = [lv[0] for lv in _level_list(levels)]
        ss = [lv[1] for lv in levels]
        prices, sizes = list(map(float, ps)), list(map(float, ss))
    except (TypeError, ValueError, IndexError, KeyError):
        return _snapshot_side_checked(is_bid, levels)
    # A NaN or infinity anywhere makes a sum non-finite (min/max would skip a NaN).
    if prices and not (_columns_are_strings(levels, ps, ss) and math.isfinite(sum(prices)) and math.isfinite(sum(sizes))
                       and min(prices) > 0.0 and min(sizes) > 0.0 and max(map(len, ps)) <= MAX_PRICE_CHARS):
        return _snapshot_side_checked(is_bid, levels)  # zero sizes, NaN, bounds: level by level
    side.levels = dict(zip(prices, map(new_level, zip(prices, sizes, ps, ss))))
    side.prices = sorted(side.levels)
    return side


def _columns_are_strings(levels: list, ps: list, ss: list) -> bool:
    """Every level a JSON array, every price and size a string (checked in C-level loops)."""
    return set(map(type, levels)) == {list} and set(map(type, ps)) == {str} and set(map(type, ss)) == {str}


def _snapshot_side_checked(is_bid: bool, levels: list) -> BookSide:
    side = BookSide(is_bid)
    book = side.levels
    for lv in _level_list(levels):
        p, s = _wire_level(lv)
        price, size = parse_level(p, s)
        if size:
            book[price] = new_level((price, size, p, s))
    side.prices = sorted(book)
    return side


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
    # True when book.ts is the venue's own event time (so receive - book.ts is the feed lag);
    # False when the venue's messages carry none and book.ts is the receive time.
    event_time: ClassVar[bool] = False
    # Text the shell sends every heartbeat interval, for venues that want an application-level
    # ping besides websocket pings (OKX "ping", Bybit {"op":"ping"}); their replies are ignored.
    app_ping: ClassVar[str | None] = None

    depths: ClassVar[tuple[int, ...]] = ()  # the book depths the venue offers; () = any

    def __init__(self, instruments: list[str] | None = None, depth: int | None = None,
                 ws_url: str | None = None, rest_url: str | None = None, trades: bool = True):
        """instruments: native names to track; None tracks whatever the feed carries (replay).
        ws_url / rest_url: override the live endpoints (the simulated venues serve the same
        paths on loopback); adapters build full URLs with the venue's real paths on these.
        trades: also subscribe to the venue's trades (for the volume profile)."""
        if depth is not None and self.depths and depth not in self.depths:
            raise ValueError(f"{self.venue}: book depth {depth} is not one the venue offers; "
                             f"use one of {self.depths}")
        self.want_trades = trades
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
            self._new_book(native)

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

    def reconcile_requests(self, now: float, limit: int | None = None) -> list[tuple[str, str, str]]:
        """("http", url, key) fetches of periodic reconciliations due at `now` (at most
        `limit`), for venues whose stream can drift unseen; the shell fetches them within
        the REST budget and hands each body to on_rest with its key. None by default."""
        return []

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
        if book is None and self.auto:
            book = self._new_book(native)
        return book

    def _new_book(self, native: str) -> L2Book:
        try:
            self.instruments[native] = instrument(self.venue, native)
        except ValueError:
            self.instruments[native] = Instrument(self.venue, native, native, "")
        book = self.books[native] = L2Book(self.venue, native, self.depth)
        self.state[native] = SYNCING
        return book

    def _book_for(self, native: object, sample: object) -> L2Book | None:
        """The book a message names, created in auto mode; None (counted as
        `unknown_instrument`) for an instrument not tracked or a name that is not a string."""
        book = self.books.get(native) if native.__class__ is str else None
        if book is None and native.__class__ is str:
            book = self._track(native)
        if book is None:
            self.stats.reject("unknown_instrument", sample)
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
        elif kind == "drift":
            self.stats.drift_events += 1
        else:
            self.stats.reject(kind, sample)
        if self.state.get(native) != RESYNC:
            log.warning("%s %s: %s; resyncing this instrument only", self.venue, native, kind)
        self.stats.resyncs += 1
        self._reset(native, RESYNC)
        self._request_resync(native)

    def _apply(self, native: str, book: L2Book, bids: list, asks: list, sample: object) -> bool:
        """Apply an update's levels; on bad input count its kind and resync this instrument
        (a book that missed part of an update cannot be trusted). False if it faulted."""
        try:
            apply_levels(book.bids, bids)
            apply_levels(book.asks, asks)
        except BadLevel as e:
            self.fault(native, e.kind, sample)
            return False
        return self._uncrossed(native, book, sample)

    def _load(self, native: str, book: L2Book, bids: list, asks: list, sample: object) -> bool:
        """Replace `book` with a snapshot (all-or-nothing) and mark it live. False if it faulted."""
        try:
            bids, asks = snapshot_side(True, bids), snapshot_side(False, asks)
        except BadLevel as e:
            self.fault(native, e.kind, sample)
            return False
        book.bids, book.asks = bids, asks
        book.truncate()
        self.stats.snapshots += 1
        self.state[native] = LIVE
        self.dirty.add(native)
        return self._uncrossed(native, book, sample)

    def _uncrossed(self, native: str, book: L2Book, sample: object) -> bool:
        if book.is_crossed():
            self.fault(native, "crossed", sample)
            return False
        return True

    def _trade(self, native: str, price_str: str, size_str: str, side: str, ts: float) -> None:
        """Record one validated trade (taker side); raises BadLevel on bad numbers."""
        if not (self.auto or native in self.books):
            self.stats.reject("unknown_instrument", native)
            return
        if price_str.__class__ is not str or size_str.__class__ is not str or not math.isfinite(ts):
            raise BadLevel("malformed_trade", f"price={price_str!r} size={size_str!r} ts={ts!r}")
        price, size = parse_level(price_str, size_str)
        self.trades.append(Trade(self.venue, native, float(price), float(size), side, ts))

    def consistent(self, native: str) -> bool:
        return self.state.get(native) == LIVE

    def flagged(self) -> list[str]:
        return sorted(n for n, s in self.state.items() if s != LIVE)


class RestSyncAdapter(Adapter):
    """Venues whose book is a REST snapshot plus websocket diffs (Binance, Bitstamp), synced
    as their docs prescribe: buffer diffs while no snapshot is loaded, fetch one, drop the
    diffs it already contains, then apply the rest in order.

    Subclasses give `snapshot_url(native)`, `instrument_from_url(url)` and `_apply_diff`, which
    only ever sees diffs for a LIVE book: `book.seq` is the last applied id and `native in
    self._bridged` once the first diff after the snapshot was accepted. A diff that breaks
    the sequence goes back through `_diff` after `fault()` so the next snapshot can use it.
    """

    max_buffer: ClassVar[int] = 2000  # diffs kept per instrument while waiting for a snapshot

    def __init__(self, *args, **kwargs):
        self._buffers: dict[str, deque] = {}
        self._pending: set[str] = set()  # snapshot requested, not yet received
        self._bridged: set[str] = set()
        super().__init__(*args, **kwargs)

    def snapshot_url(self, native: str) -> str:
        raise NotImplementedError

    def instrument_from_url(self, url: str) -> str:
        """The native instrument a snapshot URL is for (replay passes no key)."""
        raise NotImplementedError

    def _apply_diff(self, native: str, book: L2Book, diff: dict, sample: object) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._buffers.clear()
        self._pending.clear()
        self._bridged.clear()
        super().start()

    def _diff(self, native: str, book: L2Book, diff: dict, sample: object) -> None:
        if self.state[native] == LIVE:
            self._apply_diff(native, book, diff, sample)
            return
        buf = self._buffers.get(native)
        if buf is None:
            buf = self._buffers[native] = deque(maxlen=self.max_buffer)
        buf.append((diff, sample))
        self._request_resync(native)

    def _request_resync(self, native: str) -> None:
        self._bridged.discard(native)
        if native not in self._pending:
            self._pending.add(native)
            self.outbox.append(("http", self.snapshot_url(native), native))

    def _snapshot(self, native: str, book: L2Book, seq: int, bids: list, asks: list,
                  sample: object) -> None:
        """Load a snapshot valid at `seq`, then replay the buffered diffs through `_diff`."""
        self._pending.discard(native)
        if self.state[native] == LIVE and book.seq is not None and seq <= book.seq:
            self.stats.stale_dropped += 1  # older than the live book: nothing to learn from it
            return
        if not self._load(native, book, bids, asks, sample):
            return
        book.seq = seq
        self._bridged.discard(native)
        for diff, diff_sample in self._buffers.pop(native, ()):
            self._diff(native, book, diff, diff_sample)
