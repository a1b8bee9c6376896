"""Kraken websocket v1 wire format (ws.kraken.com): book with CRC32 checksums, trade.

Served on the websocket root path `/`:
  on connect   {"connectionID": n, "event": "systemStatus", "status": "online", "version": "1.9.0"}
  subscribe    {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}}
               -> {"channelID", "channelName": "book-10", "event": "subscriptionStatus", "pair",
                   "status": "subscribed", "subscription": {"depth": 10, "name": "book"}}
               -> snapshot [id, {"as": [[p, v, ts], ...], "bs": [...]}, "book-10", "XBT/USD"]
  updates      [id, {"a": [[p, v, ts(, "r")], ...]}, {"b": [...], "c": "crc32"}, "book-10", "XBT/USD"]
               (one side only: [id, {"b": [...], "c": ...}, "book-10", pair])
  trade        [id, [[p, v, ts, "b"|"s", "m", ""], ...], "trade", "XBT/USD"]
  unsubscribe, ping -> pong (reqid echoed), {"event": "heartbeat"} after 1 s without data.

The book semantics are Kraken's documented ones: the client applies an update's levels,
then truncates to its subscribed depth (no delete is sent for a level pushed out of scope);
a level that comes back into scope because one above it was removed is republished with
the "r" flag; "c" is the CRC32 (venues.checksums.kraken) of the book truncated to depth.
"""

from __future__ import annotations

import copy

import orjson

from ...core.book import L2Book
from ...venues.checksums import kraken as kraken_checksum
from ..market import BookDelta, Trade, VenueBook
from .wire import BOOK, TRADE, Conn, Out, Wire, bump_size

DEPTHS = (10, 25, 100, 500, 1000)


def _ts(t: float) -> str:
    return f"{t:.6f}"


class _Mirror:
    """The venue's full book for one pair, replayed delta by delta. The market is already
    at the end of its step when the wire sees the step's deltas, so each update frame must
    be computed from this replay, not from the market."""

    def __init__(self, book: VenueBook):
        self.native = book.native
        self.book = L2Book("kraken-v1", book.native)
        self.times: dict[tuple[bool, str], str] = {}
        for is_bid in (True, False):
            for p, s, t in book.top(is_bid, len(book.side(is_bid))):
                self.book.update(is_bid, p, s)
                self.times[(is_bid, p)] = _ts(t)

    def apply(self, delta: BookDelta) -> None:
        ts = _ts(delta.t)
        for is_bid, p, s in delta.changes:
            self.book.update(is_bid, p, s)
            self.times[(is_bid, p)] = ts


class _BookChannel:
    """The depth-limited book every subscriber of one (pair, depth) channel holds."""

    def __init__(self, chan_id: int, mirror: _Mirror, depth: int):
        self.chan_id, self.mirror, self.depth = chan_id, mirror, depth
        self.name = f"book-{depth}"
        self.view = L2Book("kraken-v1", mirror.native, depth)
        for is_bid in (True, False):
            for lv in mirror.book.side(is_bid).top(depth):
                self.view.update(is_bid, lv.price_str, lv.size_str)

    def snapshot(self) -> list:
        times = self.mirror.times
        levels = {key: [[lv.price_str, lv.size_str, times[(is_bid, lv.price_str)]]
                        for lv in self.view.side(is_bid).top(self.depth)]
                  for key, is_bid in (("as", False), ("bs", True))}
        return [self.chan_id, levels, self.name, self.mirror.native]

    def update(self, delta: BookDelta) -> list | None:
        """The update frame that takes subscribers' books from the view to the mirror's new
        top `depth` (call after the mirror applied `delta`), or None when out of scope."""
        parts = []
        for key, is_bid in (("a", False), ("b", True)):
            final = {p: s for b, p, s in delta.changes if b == is_bid}
            if final and self._in_scope(is_bid, final):
                levels = self._diff(is_bid, final, _ts(delta.t))
                if levels:
                    parts.append({key: levels})
        if not parts:
            return None
        parts[-1]["c"] = str(kraken_checksum(self.view))
        return [self.chan_id, *parts, self.name, self.mirror.native]

    def _in_scope(self, is_bid: bool, final: dict[str, str]) -> bool:
        side = self.view.side(is_bid)
        if len(side) < self.depth:
            return True
        worst = side.prices[0] if is_bid else side.prices[-1]
        return any((float(p) >= worst) if is_bid else (float(p) <= worst) for p in final)

    def _diff(self, is_bid: bool, final: dict[str, str], ts: str) -> list[list[str]]:
        side = self.view.side(is_bid)
        new = self.mirror.book.side(is_bid).top(self.depth)
        levels, kept = [], set()
        for lv in new:
            kept.add(lv.price)
            old = side.get(lv.price)
            if old is None or old.size_str != lv.size_str:
                # In scope without having changed now: it moved up because a better level went.
                levels.append([lv.price_str, lv.size_str, ts] if lv.price_str in final
                              else [lv.price_str, lv.size_str, self.mirror.times[(is_bid, lv.price_str)], "r"])
        for old in side.top(self.depth):
            if old.price not in kept and old.price_str in final and not float(final[old.price_str]):
                levels.append([old.price_str, final[old.price_str], ts])
        for level in levels:  # the client's own algorithm: apply, then truncate to depth
            self.view.update(is_bid, level[0], level[1])
        self.view.truncate()
        return levels


class KrakenV1(Wire):
    venue = "kraken-v1"
    ws_paths = ("/",)
    heartbeat_s = 1.0

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.channel_ids: dict[str, int] = {}  # channel key -> channelID
        self.mirrors = {n: _Mirror(book) for n, book in self.books.items()}
        # Created on first subscribe and kept (at most one per depth and pair): cheaper than
        # tracking subscriber counts, and a resubscribe gets a snapshot consistent with it.
        self.book_channels: dict[str, list[_BookChannel]] = {n: [] for n in self.books}

    def _chan_id(self, key: str) -> int:
        return self.channel_ids.setdefault(key, 336 + len(self.channel_ids))

    def open(self, conn: Conn) -> list[object]:
        return [{"connectionID": 10_000_000 + conn.id, "event": "systemStatus", "status": "online",
                 "version": "1.9.0"}]

    def heartbeat(self) -> object:
        return {"event": "heartbeat"}

    def receive(self, conn: Conn, text: str) -> list[object]:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [{"errorMessage": "Malformed request", "event": "error"}]
        if not isinstance(req, dict):
            return [{"errorMessage": "Malformed request", "event": "error"}]
        reqid = {"reqid": req["reqid"]} if "reqid" in req else {}
        event = req.get("event")
        if event == "ping":
            return [{"event": "pong", **reqid}]
        if event not in ("subscribe", "unsubscribe"):
            return [{"errorMessage": f"Unsupported event {event!r}", "event": "error", **reqid}]
        sub, pairs = req.get("subscription"), req.get("pair")
        if not isinstance(sub, dict) or not isinstance(pairs, list) or not pairs:
            return [{"errorMessage": "Malformed request: need 'pair' (a list) and 'subscription'",
                     "event": "error", **reqid}]
        return [m for pair in pairs for m in self._subscription(conn, event, pair, sub, reqid)]

    def _subscription(self, conn: Conn, event: str, pair: object, sub: dict, reqid: dict) -> list[object]:
        name, depth = sub.get("name"), sub.get("depth", 10)
        status = {"event": "subscriptionStatus", "pair": pair, **reqid}
        if pair not in self.books:
            return [{**status, "status": "error", "subscription": sub,
                     "errorMessage": f"Currency pair not supported {pair}"}]
        if name == "book" and depth in DEPTHS:
            channel_name, echo = f"book-{depth}", {"depth": depth, "name": "book"}
        elif name == "trade":
            channel_name, echo = "trade", {"name": "trade"}
        else:
            return [{**status, "status": "error", "subscription": sub, "errorMessage":
                     "Subscription depth not supported" if name == "book" else "Subscription name invalid"}]
        key = f"{channel_name}:{pair}"
        ok = {**status, "channelID": self._chan_id(key), "channelName": channel_name, "subscription": echo}
        if event == "unsubscribe":
            if key not in conn.channels:
                return [{**status, "status": "error", "subscription": sub, "errorMessage": "Subscription Not Found"}]
            conn.channels.discard(key)
            return [{**ok, "status": "unsubscribed"}]
        if key in conn.channels:
            return [{**status, "status": "error", "subscription": sub, "errorMessage": "Already subscribed"}]
        conn.channels.add(key)
        if name == "trade":
            return [{**ok, "status": "subscribed"}]
        return [{**ok, "status": "subscribed"}, self._book_channel(pair, depth).snapshot()]

    def _book_channel(self, pair: str, depth: int) -> _BookChannel:
        for ch in self.book_channels[pair]:
            if ch.depth == depth:
                return ch
        ch = _BookChannel(self._chan_id(f"book-{depth}:{pair}"), self.mirrors[pair], depth)
        self.book_channels[pair].append(ch)
        return ch

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs = []
        for ev in events:
            pair = self.natives[ev.symbol]
            if isinstance(ev, Trade):
                key = f"trade:{pair}"
                side = "b" if ev.taker_buy else "s"
                outs.append(Out(key, [self._chan_id(key), [[ev.price, ev.size, _ts(ev.t), side, "m", ""]],
                                      "trade", pair], TRADE))
                continue
            self.mirrors[pair].apply(ev)
            for ch in self.book_channels[pair]:
                msg = ch.update(ev)
                if msg is not None:
                    outs.append(Out(f"{ch.name}:{pair}", msg, BOOK))
        return outs

    def corrupt_level(self, msg: list, pick: int) -> list:
        bad = copy.deepcopy(msg)
        levels = [lv for part in bad[1:-2] for k in ("a", "b") for lv in part.get(k, ())]
        level = levels[pick % len(levels)]
        level[1] = bump_size(level[1])
        return bad

    def corrupt_checksum(self, msg: list) -> list:
        bad = copy.deepcopy(msg)
        bad[-3]["c"] = str((int(bad[-3]["c"]) + 1) % 2**32)
        return bad
