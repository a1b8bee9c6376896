"""Bitstamp websocket v2 wire format (ws.bitstamp.net) and REST order book (www.bitstamp.net).

Served paths:
  ws   /   {"event": "bts:subscribe", "data": {"channel": "diff_order_book_btcusd"}}
           -> {"event": "bts:subscription_succeeded", "channel": ..., "data": {}}
           channels per pair: diff_order_book_<pair>, live_trades_<pair>; bts:unsubscribe alike;
           {"event": "bts:heartbeat"} -> {"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}
  diff     {"data": {"timestamp", "microtimestamp", "bids": [[p, s], ...], "asks": [...]},
            "channel": "diff_order_book_btcusd", "event": "data"}   (s "0.00000000" deletes)
  trade    {"data": {"id", "timestamp", "amount", "amount_str", "price", "price_str", "type": 0 buy
            | 1 sell (the taker), "microtimestamp", "buy_order_id", "sell_order_id"},
            "channel": "live_trades_btcusd", "event": "trade"}
  GET  /api/v2/order_book/<pair>/   {"timestamp", "microtimestamp", "bids", "asks"}

Diffs carry no sequence number, only a microtimestamp: one diff per pair per market step
with that step's final sizes, so each diff is strictly newer than the last and a REST book's
microtimestamp (the last step it contains) tells a client exactly which diffs to drop.
"""

from __future__ import annotations

import copy

import orjson

from ..market import BookDelta, Trade
from .wire import BOOK, TRADE, Batch, Conn, Out, Wire, bump_size

DIFF, TRADES = "diff_order_book_", "live_trades_"
BOOK_PATH = "/api/v2/order_book/"


def _micros(t: float) -> int:
    return round(t * 1_000_000)


def _error(message: str) -> dict:
    return {"event": "bts:error", "channel": "", "data": {"code": None, "message": message}}


class Bitstamp(Wire):
    venue = "bitstamp"
    ws_paths = ("/",)
    rest_paths = (BOOK_PATH + "{pair}", BOOK_PATH + "{pair}/")

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.channels = {prefix + pair for pair in self.books for prefix in (DIFF, TRADES)}

    def receive(self, conn: Conn, text: str) -> list[object]:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [_error("Bad message format: invalid JSON.")]
        event = req.get("event") if isinstance(req, dict) else None
        if event == "bts:heartbeat":
            return [{"event": "bts:heartbeat", "channel": "", "data": {"status": "success"}}]
        if event not in ("bts:subscribe", "bts:unsubscribe"):
            return [_error(f"Unsupported event {event!r}.")]
        data = req.get("data")
        channel = data.get("channel") if isinstance(data, dict) else None
        if channel not in self.channels:
            return [_error(f"Bad subscription string: {channel!r} (simulated: {', '.join(sorted(self.channels))}).")]
        if event == "bts:subscribe":
            conn.channels.add(channel)
            return [{"event": "bts:subscription_succeeded", "channel": channel, "data": {}}]
        conn.channels.discard(channel)
        return [{"event": "bts:unsubscription_succeeded", "channel": channel, "data": {}}]

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs, diffs = [], {}
        for ev in events:
            pair = self.natives[ev.symbol]
            if isinstance(ev, BookDelta):
                diffs.setdefault(pair, Batch()).add(ev)
                continue
            micros = _micros(ev.t)
            outs.append(Out(TRADES + pair, {"data": {
                "id": ev.trade_id, "timestamp": str(micros // 1_000_000), "amount": float(ev.size),
                "amount_str": ev.size, "price": float(ev.price), "price_str": ev.price,
                "type": 0 if ev.taker_buy else 1, "microtimestamp": str(micros),
                "buy_order_id": 2 * ev.trade_id, "sell_order_id": 2 * ev.trade_id + 1},
                "channel": TRADES + pair, "event": "trade"}, TRADE))
        micros = _micros(self.market.t)
        for pair, batch in diffs.items():
            outs.append(Out(DIFF + pair, {"data": {
                "timestamp": str(micros // 1_000_000), "microtimestamp": str(micros),
                "bids": [[p, s] for p, s in batch.bids.items()], "asks": [[p, s] for p, s in batch.asks.items()]},
                "channel": DIFF + pair, "event": "data"}, BOOK))
        return outs

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        pair = path[len(BOOK_PATH):].strip("/")
        if pair not in self.books:
            return 404, {"status": "error", "reason": f"Currency pair {pair!r} not found "
                                                      f"(simulated: {', '.join(sorted(self.books))})."}
        book, micros = self.books[pair], _micros(self.market.t)
        return 200, {"timestamp": str(micros // 1_000_000), "microtimestamp": str(micros),
                     "bids": [[p, s] for p, s, _ in book.top(True, len(book.bids))],
                     "asks": [[p, s] for p, s, _ in book.top(False, len(book.asks))]}

    def corrupt_level(self, msg: dict, pick: int) -> dict:
        bad = copy.deepcopy(msg)
        levels = bad["data"]["bids"] + bad["data"]["asks"]
        level = levels[pick % len(levels)]
        level[1] = bump_size(level[1])
        return bad
