"""Bybit v5 public spot websocket wire format (stream.bybit.com/v5/public/spot).

Served on /v5/public/spot:
  subscribe  {"op": "subscribe", "args": ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT"], "req_id"}
             -> {"success": true, "ret_msg": "subscribe", "conn_id", "req_id", "op": "subscribe"},
             then an orderbook snapshot per new orderbook topic
  orderbook  {"topic": "orderbook.50.BTCUSDT", "type": "snapshot"|"delta", "ts": <ms>,
              "data": {"s", "b": [[p, s], ...], "a": [...], "u": <update id>, "seq": <cross seq>},
              "cts": <ms>}
  trade      {"topic": "publicTrade.BTCUSDT", "type": "snapshot", "ts", "data": [{"T", "s",
              "S": "Buy"|"Sell" (the taker), "v", "p", "i", "BT": false}]}
  unsubscribe like subscribe; {"op": "ping", "req_id"} -> {"success": true, "ret_msg": "pong", ...}

An orderbook.N topic is the top N levels: a delta carries what takes the previous top N to the
new one, new and changed levels with their size and levels that left the top N with size "0",
so a client never truncates. Pushed every 20 ms for 50 levels, 200 ms for 200 and 1000, when
the top changed; `u` counts pushes per topic (u=1 would announce a service restart, so it starts
higher) and `seq` is the last book change id.
"""

from __future__ import annotations

import copy

import orjson

from ..market import BookDelta, Trade, VenueBook
from .wire import BOOK, TRADE, Conn, Out, Wire, bump_size

PUSH_S = {50: 0.02, 200: 0.2, 1000: 0.2}  # documented spot push interval per depth
FIRST_U = 1000


class _Topic:
    """The top `depth` levels of one symbol as subscribers of its orderbook topic hold them."""

    def __init__(self, book: VenueBook, depth: int):
        self.book, self.depth = book, depth
        self.name = f"orderbook.{depth}.{book.native}"
        self.u = FIRST_U
        self.due = 0.0
        self.bids, self.asks = self._top(True), self._top(False)

    def _top(self, is_bid: bool) -> dict[str, str]:
        return {p: s for p, s, _ in self.book.top(is_bid, self.depth)}

    def message(self, kind: str, bids, asks, t: float) -> dict:
        ms = int(t * 1000)
        return {"topic": self.name, "type": kind, "ts": ms, "data": {
            "s": self.book.native, "b": bids, "a": asks, "u": self.u, "seq": self.book.update_id}, "cts": ms}

    def snapshot(self, t: float) -> dict:
        return self.message("snapshot", [[p, s] for p, s in self.bids.items()],
                            [[p, s] for p, s in self.asks.items()], t)

    def delta(self, t: float) -> dict | None:
        """The delta from the held top to the market's top now, or None if unchanged or not due."""
        if t < self.due:
            return None
        interval = PUSH_S[self.depth]
        self.due = (t // interval + 1) * interval
        new_bids, new_asks = self._top(True), self._top(False)
        bids, asks = _diff(self.bids, new_bids), _diff(self.asks, new_asks)
        self.bids, self.asks = new_bids, new_asks
        if not bids and not asks:
            return None
        self.u += 1
        return self.message("delta", bids, asks, t)


def _diff(old: dict[str, str], new: dict[str, str]) -> list[list[str]]:
    return [[p, s] for p, s in new.items() if old.get(p) != s] + [[p, "0"] for p in old if p not in new]


class Bybit(Wire):
    venue = "bybit"
    ws_paths = ("/v5/public/spot",)

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        # Created on first subscribe and kept, like a venue's topic: cheaper than counting subscribers.
        self.topics: dict[str, _Topic] = {}

    def receive(self, conn: Conn, text: str) -> list[object]:
        reply = {"success": True, "ret_msg": "", "conn_id": f"sim-{conn.id}", "req_id": "", "op": ""}
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [{**reply, "success": False, "ret_msg": f"Invalid request: {text[:100]}"}]
        if not isinstance(req, dict):
            return [{**reply, "success": False, "ret_msg": "Invalid request: not a JSON object"}]
        op = req.get("op")
        reply.update(op=op, req_id=req.get("req_id", ""))
        if op == "ping":
            return [{**reply, "ret_msg": "pong"}]
        args = req.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            return [{**reply, "success": False, "ret_msg": f"Invalid request: op {op!r} with args {args!r}"}]
        bad = [a for a in args if not self._known(a)]
        if bad:
            return [{**reply, "success": False, "ret_msg": f"Invalid symbol :{bad}"}]
        replies: list[object] = [{**reply, "ret_msg": op}]
        for topic in args:
            if op == "unsubscribe":
                conn.channels.discard(topic)
            elif topic not in conn.channels:
                conn.channels.add(topic)
                if topic.startswith("orderbook."):
                    replies.append(self._topic(topic).snapshot(self.market.t))
        return replies

    def _known(self, topic: object) -> bool:
        parts = topic.split(".") if isinstance(topic, str) else []
        if len(parts) == 2 and parts[0] == "publicTrade":
            return parts[1] in self.books
        return (len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit()
                and int(parts[1]) in PUSH_S and parts[2] in self.books)

    def _topic(self, name: str) -> _Topic:
        topic = self.topics.get(name)
        if topic is None:
            _, depth, native = name.split(".")
            topic = self.topics[name] = _Topic(self.books[native], int(depth))
        return topic

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs = []
        for ev in events:
            if isinstance(ev, Trade):
                native, ms = self.natives[ev.symbol], int(ev.t * 1000)
                outs.append(Out(f"publicTrade.{native}", {"topic": f"publicTrade.{native}", "type": "snapshot",
                                                          "ts": ms, "data": [{
                    "T": ms, "s": native, "S": "Buy" if ev.taker_buy else "Sell", "v": ev.size, "p": ev.price,
                    "i": str(ev.trade_id), "BT": False}]}, TRADE))
        return outs

    def tick(self, t: float) -> list[Out]:
        outs = []
        for name, topic in self.topics.items():
            msg = topic.delta(t)
            if msg is not None:
                outs.append(Out(name, msg, BOOK))
        return outs

    def corrupt_level(self, msg: dict, pick: int) -> dict | None:
        bad = copy.deepcopy(msg)
        levels = bad["data"]["b"] + bad["data"]["a"]
        if not levels:
            return None
        level = levels[pick % len(levels)]
        level[1] = bump_size(level[1])
        return bad
