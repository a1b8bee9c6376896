"""Binance spot, USDⓈ-M and COIN-M futures: `<sym>@depth@100ms` diffs + REST depth snapshots.

One sync procedure, three documented variants ("How to manage a local order book correctly"):

    spot          drop diffs with u <= lastUpdateId; the first applied diff has
                  U <= lastUpdateId+1 <= u; afterwards each diff's U == previous u + 1
    usdm / coinm  drop diffs with u < lastUpdateId; the first applied diff has
                  U <= lastUpdateId <= u; afterwards each diff's pu == previous u

Both are "first diff brackets lastUpdateId + offset" with offset 1 (spot) or 0 (futures),
so the markets differ only in a small `Market` record. Any break is a gap: the instrument is
cleared and a new snapshot requested, while later diffs are buffered for it.

The diff streams and the REST snapshot (limit=1000) are depth-limited differently: diffs
touch levels beyond the snapshot's 1000, so levels deep in the book may be stale or missing,
and a diff whose sizes are wrong keeps its ids intact: only a REST snapshot shows either.
So every LIVE instrument is periodically reconciled (`reconcile_requests`, fetched by the
shell under the same REST budget, answered with key `reconcile:<native>`). A snapshot is
never at the live book's id (diffs cover id ranges), so it becomes a SHADOW book that is
brought forward with the same diffs, by the same sync rule, until both are at one update
id; then their top levels must be identical. Any difference is drift: counted, reported,
and that instrument alone resyncs.
"""

from __future__ import annotations

import logging
from bisect import bisect_left, bisect_right
from dataclasses import asdict, dataclass, field
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import orjson

from ..core.book import BookSide, L2Book, Level
from .base import LIVE, RestSyncAdapter, apply_levels, snapshot_side

log = logging.getLogger("cobstack.venues")


@dataclass(frozen=True, slots=True)
class Market:
    venue: str
    ws: str
    rest: str
    depth_path: str
    offset: int  # the first applied diff must satisfy U <= lastUpdateId + offset <= u
    prev_field: str | None  # futures chain diffs by "pu"; spot by U == previous u + 1
    weight_per_minute: float  # documented REST request-weight budget
    snapshot_weight: float  # weight of depth?limit=1000


SPOT = Market("binance", "wss://stream.binance.com:9443", "https://api.binance.com",
              "/api/v3/depth", 1, None, 6000.0, 50.0)
USDM = Market("binance-usdm", "wss://fstream.binance.com", "https://fapi.binance.com",
              "/fapi/v1/depth", 0, "pu", 2400.0, 20.0)
COINM = Market("binance-coinm", "wss://dstream.binance.com", "https://dapi.binance.com",
               "/dapi/v1/depth", 0, "pu", 2400.0, 20.0)
SNAPSHOT_LIMIT = 1000
TRADE_EVENTS = ("aggTrade", "trade")
RECONCILE_KEY = "reconcile:"  # on_rest key prefix of a reconciliation; a resync's key is the bare native
STALE, FIRST, GAP = "stale", "first", "gap"


def bridge(snapshot_id: int, first: int, last: int, offset: int) -> str:
    """Where the diff [first, last] stands against a snapshot at `snapshot_id` while no diff
    has been applied on top of it: STALE (contained in the snapshot; drop it), FIRST (the one
    to apply first) or GAP (the diffs between the snapshot and this one are missing)."""
    if last < snapshot_id + offset:
        return STALE
    if first > snapshot_id + offset:
        return GAP
    return FIRST


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    """The outcome of one reconciliation of a live book against a REST snapshot (pure data)."""
    instrument: str
    ts: float  # receive time of the snapshot (of the request when none came)
    outcome: str  # in_sync | drift | skipped
    detail: str  # why it was skipped, or the first differing level
    update_id: int | None  # the id both books were compared at (the live book's when skipped)
    snapshot_update_id: int | None  # the snapshot's lastUpdateId
    levels_compared: int  # per side, counted on the snapshot's side
    drifted_levels: int  # levels whose size differs (or that only one book has) in that band
    live_depth: tuple[int, int]  # levels the live book holds (bids, asks): the stream is depth-limited
    snapshot_depth: tuple[int, int]  # levels the snapshot held

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class _Shadow:
    """A reconciliation in flight for one instrument."""
    requested: float
    since: int | None  # the live book's last update id when the snapshot was requested
    diffs: list = field(default_factory=list)  # applied to the live book since, until the snapshot came
    book: L2Book | None = None  # the snapshot, brought forward by the same diffs as the live book
    bridged: bool = False  # a diff has been applied on top of the snapshot (or none was needed)
    snapshot_id: int | None = None
    snapshot_depth: tuple[int, int] = (0, 0)
    ts: float = 0.0  # receive time of the snapshot


def side_drift(live: BookSide, venue: BookSide, n: int) -> list[tuple[Level | None, Level | None]]:
    """(live level, venue level) pairs that differ within the band of the venue's best `n`
    levels, best first; a level only one book has pairs with None. Sizes compare as decimals,
    so "1.0" and "1.00" agree. Beyond the venue's n-th price there is nothing to compare
    against; a venue side of fewer than n levels is the whole side, so every live level counts."""
    theirs = venue.top(n)
    prices = live.prices
    if len(theirs) < n:
        band = prices
    elif live.is_bid:
        band = prices[bisect_left(prices, theirs[-1].price):]
    else:
        band = prices[:bisect_right(prices, theirs[-1].price)]
    mine = live.levels
    venue_levels = {lv.price: lv for lv in theirs}
    out = []
    for p in sorted(venue_levels.keys() | set(band), reverse=live.is_bid):
        a, b = mine.get(p), venue_levels.get(p)
        if a is None or b is None or a.size != b.size:
            out.append((a, b))
    return out


class BinanceAdapter(RestSyncAdapter):
    market = SPOT
    venue = SPOT.venue
    event_time = True
    live_ws_url = SPOT.ws
    live_rest_url = SPOT.rest
    rest_weight_per_minute = SPOT.weight_per_minute
    snapshot_weight = SPOT.snapshot_weight
    reconcile_interval_s: ClassVar[float] = 60.0  # per instrument; each costs one snapshot's weight
    reconcile_top: ClassVar[int] = 50  # levels per side that must match the venue's

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        m = cls.market
        cls.venue, cls.live_ws_url, cls.live_rest_url = m.venue, m.ws, m.rest
        cls.rest_weight_per_minute, cls.snapshot_weight = m.weight_per_minute, m.snapshot_weight

    def __init__(self, *args, reconcile_s: float | None = None, reconcile_levels: int | None = None,
                 **kwargs):
        """reconcile_s: seconds between reconciliations of one instrument (default
        `reconcile_interval_s`); reconcile_levels: levels per side compared (`reconcile_top`)."""
        self.reconcile_s = reconcile_s or self.reconcile_interval_s
        self.reconcile_levels = reconcile_levels or self.reconcile_top
        self.reconciliations: dict[str, ReconcileReport] = {}  # the last one per instrument
        self._reconcile_due: dict[str, float] = {}
        self._shadows: dict[str, _Shadow] = {}
        super().__init__(*args, **kwargs)

    # -- endpoints ------------------------------------------------------------------------

    def ws_url(self) -> str:
        if not self.books:
            raise ValueError(f"{self.venue}: no instruments to stream; pass instruments=[...]")
        streams = []
        for native in self.books:
            s = native.lower()
            streams += (f"{s}@depth@100ms", f"{s}@aggTrade")
        return f"{self.ws_base}/stream?streams={'/'.join(streams)}"

    def subscribe_frames(self) -> list[str]:
        return []  # the combined-stream URL is the subscription

    def snapshot_url(self, native: str) -> str:
        return f"{self.rest_base}{self.market.depth_path}?symbol={native}&limit={SNAPSHOT_LIMIT}"

    def instrument_from_url(self, url: str) -> str:
        symbols = parse_qs(urlsplit(url).query).get("symbol")
        if not symbols:
            raise ValueError(f"{self.venue}: no symbol= in snapshot URL {url!r}")
        return symbols[0]

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        msg = orjson.loads(text)
        data = msg.get("data", msg)  # combined stream wraps the payload; a raw stream does not
        event = data.get("e")
        if event == "depthUpdate":
            native = data["s"]
            book = self._book_for(native, text)
            if book is None:
                return
            self._diff(native, book, data, text)
        elif event in TRADE_EVENTS:
            # m: the buyer is the maker, so the taker sold.
            self._trade(data["s"], data["p"], data["q"], "sell" if data["m"] else "buy",
                        data["T"] / 1000.0)
        else:
            self.stats.ignored += 1  # bookTicker, kline, subscription replies

    def _apply_diff(self, native: str, book: L2Book, diff: dict, sample: object) -> None:
        first, last = diff["U"], diff["u"]
        if first.__class__ is not int or last.__class__ is not int:
            self.stats.reject("malformed_update_id", sample)
            return
        if native in self._bridged:
            prev = diff[self.market.prev_field] if self.market.prev_field else first - 1
            if prev != book.seq:
                self.fault(native, "gap", sample)
                self._diff(native, book, diff, sample)  # may bridge the next snapshot
                return
        else:
            where = bridge(book.seq, first, last, self.market.offset)
            if where == STALE:
                self.stats.stale_dropped += 1  # already contained in the snapshot
                return
            if where == GAP:
                self.fault(native, "gap", sample)  # snapshot older than the buffered diffs
                self._diff(native, book, diff, sample)
                return
        self._bridged.add(native)
        book.seq = last
        event_ms = diff.get("E")
        if event_ms.__class__ is int:
            book.ts = event_ms / 1000.0
        self.dirty.add(native)
        if self._apply(native, book, diff["b"], diff["a"], sample):
            self.stats.updates += 1
            if native in self._shadows:
                self._shadow_diff(native, book, diff, sample)

    def _rest(self, url: str, text: str | bytes, ts: float, key: str | None) -> None:
        reconciling = key is not None and key.startswith(RECONCILE_KEY)
        native = key[len(RECONCILE_KEY):] if reconciling else key or self.instrument_from_url(url)
        book = self._book_for(native, url)
        if book is None:
            return
        shadow = self._shadows.pop(native, None) if reconciling else None
        snap = orjson.loads(text)
        seq = snap["lastUpdateId"]
        if seq.__class__ is not int:
            self.stats.reject("malformed_update_id", text)
            return
        if not reconciling:
            self._snapshot(native, book, seq, snap["bids"], snap["asks"], text)
        elif shadow is None or self.state[native] != LIVE:
            self._skip(native, ts, "the instrument resynced (or its reconciliation was abandoned) "
                       "before the snapshot came", seq)
        else:
            self._reconcile(native, book, shadow, seq, snap, ts, text)

    # -- reconciliation -------------------------------------------------------------------

    def reconcile_requests(self, now: float, limit: int | None = None) -> list[tuple[str, str, str]]:
        """("http", url, key) fetches of the reconciliations due at `now`, at most `limit`,
        most overdue first. Only LIVE instruments are reconciled; one that (re)turns live is
        first due a staggered fraction of the interval later, so a cold start of many
        instruments does not ask for all their snapshots at once. A reconciliation still
        waiting for its snapshot when the next is due is given up (counted as skipped)."""
        due, n = self._reconcile_due, len(self.books)
        ready = []
        for i, native in enumerate(self.books):
            if self.state[native] != LIVE:
                due.pop(native, None)
                continue
            at = due.get(native)
            if at is None:
                due[native] = now + self.reconcile_s * (i + 1) / n
            elif at <= now:
                ready.append((at, native))
        ready.sort()
        out = []
        for _, native in ready[:limit]:
            if self._shadows.pop(native, None) is not None:
                self._skip(native, now, f"no usable snapshot within {self.reconcile_s:g}s")
            due[native] = now + self.reconcile_s
            self._shadows[native] = _Shadow(now, self.books[native].seq)
            out.append(("http", self.snapshot_url(native), RECONCILE_KEY + native))
        return out

    def _reconcile(self, native: str, book: L2Book, sh: _Shadow, seq: int, snap: dict, ts: float,
                   sample: object) -> None:
        """A reconciliation snapshot arrived: build the shadow book, bring it forward with the
        diffs the live book applied meanwhile, and compare once both are at one update id
        (now, or on a later diff when the snapshot is ahead of the stream)."""
        if sh.since is None or seq < sh.since:
            self._skip(native, ts, f"snapshot lastUpdateId {seq} is older than the live book "
                       f"was when it was requested ({sh.since})", seq)
            return
        shadow = L2Book(book.venue, native, book.max_depth)
        shadow.bids, shadow.asks = snapshot_side(True, snap["bids"]), snapshot_side(False, snap["asks"])
        shadow.seq = seq
        sh.snapshot_depth = (len(shadow.bids), len(shadow.asks))
        shadow.truncate()
        sh.book, sh.snapshot_id, sh.ts = shadow, seq, ts
        sh.bridged = seq == sh.since  # taken exactly where the live book was: no diff to bridge
        diffs, sh.diffs = sh.diffs, []
        for diff in diffs:
            if not self._advance(native, book, sh, diff):
                return
        self._shadows[native] = sh
        if shadow.seq == book.seq:
            self._compare(native, book, sh, sample)

    def _shadow_diff(self, native: str, book: L2Book, diff: dict, sample: object) -> None:
        """A diff the live book just applied, for the reconciliation in flight."""
        sh = self._shadows[native]
        if sh.book is None:  # the snapshot is not here yet: keep the diff for it
            if len(sh.diffs) >= self.max_buffer:
                del self._shadows[native]
                self._skip(native, sh.requested, f"the snapshot took longer than {self.max_buffer} diffs")
            else:
                sh.diffs.append(diff)
        elif self._advance(native, book, sh, diff) and sh.book.seq == book.seq:
            self._compare(native, book, sh, sample)

    def _advance(self, native: str, book: L2Book, sh: _Shadow, diff: dict) -> bool:
        """Apply one of the live book's diffs to the shadow by the documented sync rule (the
        live book validated its levels and continuity already). False if it cannot bridge."""
        shadow = sh.book
        if not sh.bridged:
            where = bridge(shadow.seq, diff["U"], diff["u"], self.market.offset)
            if where == STALE:
                return True
            if where == GAP:
                self._shadows.pop(native, None)
                self._skip(native, sh.ts, f"no diff bridges snapshot lastUpdateId {sh.snapshot_id} "
                           f"(next diff starts at {diff['U']})", sh.snapshot_id)
                return False
            sh.bridged = True
        apply_levels(shadow.bids, diff["b"])
        apply_levels(shadow.asks, diff["a"])
        shadow.seq = diff["u"]
        return True

    def _compare(self, native: str, book: L2Book, sh: _Shadow, sample: object) -> None:
        """Live book and shadow are at the same update id: their top levels must be equal."""
        del self._shadows[native]
        n = self.reconcile_levels
        drift = [("bid", *d) for d in side_drift(book.bids, sh.book.bids, n)]
        drift += [("ask", *d) for d in side_drift(book.asks, sh.book.asks, n)]
        self.stats.reconciliations += 1
        detail = ""
        if drift:
            side, mine, theirs = drift[0]
            level = mine or theirs
            detail = (f"first at {side} {level.price_str}: live size "
                      f"{mine.size_str if mine else 'absent'}, venue size {theirs.size_str if theirs else 'absent'}")
        self.reconciliations[native] = ReconcileReport(
            native, sh.ts, "drift" if drift else "in_sync", detail, book.seq, sh.snapshot_id, n,
            len(drift), (len(book.bids), len(book.asks)), sh.snapshot_depth)
        if drift:
            self.stats.drifted_levels += len(drift)
            log.warning("%s %s: live book drifted from the REST snapshot at update id %s: %d of the "
                        "top %d levels per side differ, %s; resyncing this instrument",
                        self.venue, native, book.seq, len(drift), n, detail)
            self.fault(native, "drift", sample)

    def _skip(self, native: str, ts: float, reason: str, snapshot_id: int | None = None) -> None:
        self.stats.reconcile_skipped += 1
        book = self.books[native]
        self.reconciliations[native] = ReconcileReport(
            native, ts, "skipped", reason, book.seq, snapshot_id, 0, 0,
            (len(book.bids), len(book.asks)), (0, 0))
        log.info("%s %s: reconciliation skipped: %s", self.venue, native, reason)

    def _reset(self, native: str, state: str) -> None:
        # A book being resynced is not reconciled: the fresh snapshot replaces it anyway.
        self._shadows.pop(native, None)
        self._reconcile_due.pop(native, None)
        super()._reset(native, state)


class BinanceUsdmAdapter(BinanceAdapter):
    market = USDM


class BinanceCoinmAdapter(BinanceAdapter):
    market = COINM
