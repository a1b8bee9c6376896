"""Bybit v5 public spot websocket: `orderbook.{depth}.{symbol}` and `publicTrade.{symbol}`.

Wire format (bybit-exchange.github.io/docs/v5/websocket/public/orderbook, .../trade):
    book   {"topic": "orderbook.200.BTCUSDT", "type": "snapshot"|"delta", "ts": <ms>,
            "data": {"s": "BTCUSDT", "b": [[px, sz], ...], "a": [[px, sz], ...],
                     "u": <update id>, "seq": <cross sequence>}, "cts": <ms>}
    trade  {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts": <ms>,
            "data": [{"T": <ms>, "s", "S": "Buy"|"Sell" (taker), "v": size, "p": price, ...}]}
    op     {"success": bool, "ret_msg": "pong"|"subscribe"|<error>, "op": ..., "conn_id": ...}

Sync, as documented: a snapshot replaces the book, and so does a message with u == 1 (Bybit
restarted its service); every delta must carry u == previous u + 1, otherwise updates were lost
and that symbol is resubscribed (Bybit then sends a fresh snapshot) on the same connection.
Size "0" deletes a level. Bybit publishes no checksum, so the crossed-book check is the only
other consistency test. `seq` is an internal cross sequence and is not used for continuity.
"""

from __future__ import annotations

import orjson

from ..core.book import L2Book
from .base import LIVE, Adapter

DEPTHS = (1, 50, 200)  # spot depths Bybit documents for orderbook.{depth}.{symbol}
DEFAULT_DEPTH = 200
MAX_ARGS = 10  # spot accepts at most 10 topics per subscribe request
_TAKER = {"Buy": "buy", "Sell": "sell"}


class BybitAdapter(Adapter):
    venue = "bybit"
    live_ws_url = "wss://stream.bybit.com"
    live_rest_url = "https://api.bybit.com"
    depths = DEPTHS
    # REST: 600 requests per 5 s per IP across endpoints (not used: the ws snapshot suffices).
    rest_weight_per_minute = 7200.0
    app_ping = '{"op":"ping"}'  # Bybit recommends a ping every 20 s to keep the connection

    # -- endpoints and subscriptions ------------------------------------------------------

    def ws_url(self) -> str:
        return f"{self.ws_base}/v5/public/spot"

    def _book_topic(self, native: str) -> str:
        return f"orderbook.{self.depth or DEFAULT_DEPTH}.{native}"

    @staticmethod
    def _ops(op: str, topics: list[str]) -> list[str]:
        return [orjson.dumps({"op": op, "args": topics[i:i + MAX_ARGS]}).decode()
                for i in range(0, len(topics), MAX_ARGS)]

    def subscribe_frames(self) -> list[str]:
        topics = [self._book_topic(n) for n in self.books]
        if self.want_trades:
            topics += [f"publicTrade.{n}" for n in self.books]
        return self._ops("subscribe", topics)

    def _request_resync(self, native: str) -> None:
        topic = [self._book_topic(native)]
        self.outbox.extend(("ws", f) for f in self._ops("unsubscribe", topic) + self._ops("subscribe", topic))

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        msg = orjson.loads(text)
        topic = msg.get("topic")
        if topic.__class__ is not str:
            if msg.get("success") is False:
                self.stats.reject("venue_error", text)
            else:
                self.stats.ignored += 1  # pong, subscribe acks
        elif topic.startswith("orderbook."):
            self._book(topic, msg["type"], msg["data"], text, ts)
        elif topic.startswith("publicTrade."):
            for t in msg["data"]:
                self._trade(t["s"], t["p"], t["v"], _TAKER[t["S"]], t["T"] / 1000.0)
        else:
            self.stats.ignored += 1  # tickers, klines

    def _book(self, topic: str, kind: object, data: dict, text: str | bytes, ts: float) -> None:
        native = data["s"]
        book = self._book_for(native, text)
        if book is None:
            return
        update_id = data["u"]
        if update_id.__class__ is not int:
            self.fault(native, "malformed_update_id", text)
            return
        if kind == "snapshot" or update_id == 1:
            if book.max_depth is None:  # auto mode: keep the depth the topic was subscribed at
                depth = topic.split(".")[1]
                book.max_depth = int(depth) if depth.isdigit() else DEFAULT_DEPTH
            if self._load(native, book, data["b"], data["a"], text):
                book.seq, book.ts = update_id, ts
            return
        if kind != "delta":
            self.stats.reject("unknown_type", text)
            return
        if self.state[native] != LIVE:
            self.stats.stale_dropped += 1  # superseded by the snapshot the resubscribe brings
            return
        if update_id != book.seq + 1:
            self.fault(native, "gap", text)
            return
        book.seq, book.ts = update_id, ts
        self.dirty.add(native)
        if self._apply(native, book, data["b"], data["a"], text):
            book.truncate()
            self.stats.updates += 1
