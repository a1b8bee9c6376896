"""Bitstamp websocket v2 `diff_order_book_{pair}` + REST `/api/v2/order_book/{pair}/`.

Bitstamp's documented sync: subscribe to the diff channel, buffer its events, fetch the REST
order book, drop buffered diffs whose `microtimestamp` is <= the snapshot's, apply the rest.
Diffs carry no sequence id, so what can be checked is time order: once the first diff after
a snapshot is applied, each diff must be strictly newer than the last one; a repeated or
reordered diff is treated as a gap (resync by a new REST snapshot). A lost diff cannot be
detected from the feed; the crossed-book check catches the visible consequences.
Trades come from `live_trades_{pair}` (`type` 0 = buy, 1 = sell: the taker side).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import orjson

from ..core.book import L2Book
from .base import RestSyncAdapter

DIFF_PREFIX = "diff_order_book_"
TRADES_PREFIX = "live_trades_"
_TAKER = {0: "buy", 1: "sell"}


def _micros(value: object) -> int:
    """Bitstamp's microtimestamp: a decimal string of microseconds since the epoch."""
    if value.__class__ is not str or not value.isdigit():
        raise ValueError(f"microtimestamp {value!r} is not a decimal string")
    return int(value)


class BitstampAdapter(RestSyncAdapter):
    venue = "bitstamp"
    event_time = True
    live_ws_url = "wss://ws.bitstamp.net"
    live_rest_url = "https://www.bitstamp.net"
    rest_weight_per_minute = 800.0  # 8000 requests per 10 minutes

    def ws_url(self) -> str:
        return self.ws_base

    def subscribe_frames(self) -> list[str]:
        return [orjson.dumps({"event": "bts:subscribe", "data": {"channel": prefix + pair}}).decode()
                for pair in self.books for prefix in (DIFF_PREFIX, TRADES_PREFIX)]

    def snapshot_url(self, native: str) -> str:
        return f"{self.rest_base}/api/v2/order_book/{native}/"

    def instrument_from_url(self, url: str) -> str:
        parts = [p for p in urlsplit(url).path.split("/") if p]
        if len(parts) != 4 or parts[:3] != ["api", "v2", "order_book"]:
            raise ValueError(f"bitstamp: {url!r} is not an /api/v2/order_book/{{pair}}/ URL")
        return parts[3]

    def _frame(self, text: str | bytes, ts: float) -> None:
        msg = orjson.loads(text)
        event, channel = msg.get("event"), msg.get("channel")
        if event == "data" and channel.startswith(DIFF_PREFIX):
            native = channel[len(DIFF_PREFIX):]
            book = self._book_for(native, text)
            if book is None:
                return
            data = msg["data"]
            data["microtimestamp"] = _micros(data["microtimestamp"])
            self._diff(native, book, data, text)
        elif event == "trade" and channel.startswith(TRADES_PREFIX):
            t = msg["data"]
            self._trade(channel[len(TRADES_PREFIX):], t["price_str"], t["amount_str"],
                        _TAKER[t["type"]], _micros(t["microtimestamp"]) / 1e6)
        elif event == "bts:error":
            self.stats.reject("venue_error", text)
        else:
            self.stats.ignored += 1  # subscription acks, bts:request_reconnect (the shell's job)

    def _apply_diff(self, native: str, book: L2Book, diff: dict, sample: object) -> None:
        micros = diff["microtimestamp"]
        if micros <= book.seq:
            if native not in self._bridged:
                self.stats.stale_dropped += 1  # already contained in the snapshot
                return
            self.fault(native, "gap", sample)  # repeated or reordered diff
            return
        self._bridged.add(native)
        book.seq = micros
        book.ts = micros / 1e6
        self.dirty.add(native)
        if self._apply(native, book, diff["bids"], diff["asks"], sample):
            self.stats.updates += 1

    def _rest(self, url: str, text: str | bytes, ts: float, key: str | None) -> None:
        native = key or self.instrument_from_url(url)
        book = self._book_for(native, url)
        if book is None:
            return
        snap = orjson.loads(text)
        self._snapshot(native, book, _micros(snap["microtimestamp"]), snap["bids"], snap["asks"], text)
