"""Kraken websocket API v1: `book` (L2 with CRC32 checksums) and `trade` channels.

Wire format (docs.kraken.com, Spot websockets v1):
    snapshot  [channelID, {"as": [[p, v, ts], ...], "bs": [...]}, "book-<depth>", "XBT/USD"]
    update    [channelID, {"a": [[p, v, ts(, "r")], ...](, "c": "crc")}, "book-<depth>", pair]
              or both sides as two dicts: [channelID, {"a": [...]}, {"b": [...], "c": ...}, ...]
    trade     [channelID, [[p, v, time, "b"|"s", "m"|"l", misc], ...], "trade", pair]
The pair and channel name ride on every data frame, so no channelID map is needed.

Book maintenance follows Kraken's checksum guide: apply every level of a message (volume 0
deletes; "r" republish entries are ordinary inserts of levels that re-entered the subscribed
depth), truncate to the subscribed depth, then verify `c` against CRC32 of the top 10 asks
and bids. Every message carrying `c` is verified; a mismatch resyncs that pair alone by
unsubscribe + subscribe on the same connection.
"""

from __future__ import annotations

import orjson

from ..core.book import BadLevel, L2Book
from .base import LIVE, Adapter, apply_levels
from .checksums import kraken as kraken_checksum

DEPTHS = (10, 25, 100, 500, 1000)
DEFAULT_DEPTH = 1000
_TAKER = {"b": "buy", "s": "sell"}


class KrakenV1Adapter(Adapter):
    venue = "kraken-v1"
    depths = DEPTHS
    live_ws_url = "wss://ws.kraken.com"

    # -- endpoints and subscriptions ------------------------------------------------------

    def ws_url(self) -> str:
        return self.ws_base

    def _book_sub(self, event: str, pairs: list[str]) -> str:
        depth = self.depth or DEFAULT_DEPTH
        return orjson.dumps({"event": event, "pair": pairs,
                             "subscription": {"name": "book", "depth": depth}}).decode()

    def subscribe_frames(self) -> list[str]:
        pairs = list(self.books)
        if not pairs:
            return []
        frames = [self._book_sub("subscribe", pairs)]
        if self.want_trades:
            frames.append(orjson.dumps({"event": "subscribe", "pair": pairs,
                                        "subscription": {"name": "trade"}}).decode())
        return frames

    def _request_resync(self, native: str) -> None:
        # Resubscribing makes Kraken send a fresh snapshot; the connection stays up.
        self.outbox.append(("ws", self._book_sub("unsubscribe", [native])))
        self.outbox.append(("ws", self._book_sub("subscribe", [native])))

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        msg = orjson.loads(text)
        if msg.__class__ is list and len(msg) >= 4:
            channel = msg[-2]
            if channel.__class__ is str:
                if channel.startswith("book-"):
                    self._book(msg, channel, text, ts)
                    return
                if channel == "trade":
                    self._trades(msg[-1], msg[1], text)
                    return
                self.stats.ignored += 1  # ticker, spread, ohlc
                return
        elif msg.__class__ is dict:
            event = msg.get("event")
            if event == "subscriptionStatus" and msg.get("status") == "error":
                self.stats.reject("subscription_error", text)
            elif event == "error":
                self.stats.reject("venue_error", text)
            else:
                self.stats.ignored += 1  # heartbeat, systemStatus, subscription acks
            return
        self.stats.reject("unparseable:shape", text)

    def _book(self, msg: list, channel: str, text: str | bytes, ts: float) -> None:
        pair = msg[-1]
        book = self._book_for(pair, text)
        if book is None:
            return
        first = msg[1]
        if first.__class__ is dict and ("as" in first or "bs" in first):
            self._snapshot(pair, book, channel, first, text, ts)
            return
        if self.state[pair] != LIVE:
            self.stats.stale_dropped += 1  # superseded by the snapshot the resubscribe brings
            return
        checksum = None
        try:
            for part in msg[1:-2]:
                if part.__class__ is not dict:
                    raise BadLevel("malformed_level", f"book part is {type(part).__name__}, not an object")
                if "a" in part:
                    apply_levels(book.asks, part["a"])
                if "b" in part:
                    apply_levels(book.bids, part["b"])
                if "c" in part:
                    checksum = part["c"]
        except BadLevel as e:
            self.fault(pair, e.kind, text)
            return
        book.truncate()  # Kraken sends no deletes for levels pushed out of the subscribed depth
        book.ts = ts
        self.dirty.add(pair)
        if checksum is not None:
            if checksum.__class__ is not str or not checksum.isdigit() or int(checksum) != kraken_checksum(book):
                self.fault(pair, "checksum", text)
                return
            self.stats.checksums_ok += 1
        if self._uncrossed(pair, book, text):
            self.stats.updates += 1

    def _snapshot(self, pair: str, book: L2Book, channel: str, body: dict, text: str | bytes,
                  ts: float) -> None:
        if book.max_depth is None:  # auto mode: keep the depth the feed was subscribed at
            depth = channel[5:]
            book.max_depth = int(depth) if depth.isdigit() else self.depth or DEFAULT_DEPTH
        if self._load(pair, book, body.get("bs", []), body.get("as", []), text):
            book.ts = ts

    def _trades(self, pair: object, trades: object, text: str | bytes) -> None:
        if pair.__class__ is not str or trades.__class__ is not list:
            self.stats.reject("unparseable:trade", text)
            return
        if not trades:
            self.stats.ignored += 1
            return
        for t in trades:
            self._trade(pair, t[0], t[1], _TAKER[t[3]], float(t[2]))
