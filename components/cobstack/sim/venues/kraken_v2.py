"""Kraken websocket v2 wire format (ws.kraken.com/v2): instrument, book with CRC32, trade.

Served on /v2 (requests {"method": ..., "params": {...}, "req_id": n}):
  on connect   {"channel": "status", "type": "update", "data": [{"api_version": "v2", "system": "online", ...}]}
  instrument   {"method": "subscribe", "params": {"channel": "instrument"}}
               -> {"channel": "instrument", "type": "snapshot", "data": {"assets": [...], "pairs": [
                   {"symbol": "BTC/USD", "price_precision": 1, "qty_precision": 8, "price_increment", ...}]}}
  book         {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}}
               -> {"method": "subscribe", "result": {"channel": "book", "depth", "snapshot": true, "symbol"},
                   "success": true, "time_in", "time_out"} per symbol, then
               {"channel": "book", "type": "snapshot"|"update", "data": [{"symbol", "bids": [{"price", "qty"}],
                "asks": [...], "checksum": <CRC32>, "timestamp" (updates)}]}
  trade        {"channel": "trade", "type": "update", "data": [{"symbol", "side" (the taker's), "price",
                "qty", "ord_type", "trade_id", "timestamp"}]}
  unsubscribe, {"method": "ping"} -> {"method": "pong", ...}; {"channel": "heartbeat"} after 1 s idle.

Prices and quantities are JSON numbers printed with the instrument's full precision
(45283.5, 0.10000000), as Kraken sends them. The book rules are v1's (kraken_v1: the client
truncates to its depth, a level that comes back into scope is republished) and so is the
checksum: venues.checksums.kraken over the levels formatted with the instrument's precisions,
which is what the market's strings for this venue are. Unlike v1, snapshots carry one too.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import orjson

from ...venues.checksums import kraken as kraken_checksum
from ..market import BookDelta, Trade, VenueBook
from .kraken_v1 import _BookChannel, _Mirror
from .wire import BOOK, TRADE, Conn, Out, Wire, bump_size

DEPTHS = (10, 25, 100, 500, 1000)


class Num(str):
    """A decimal string sent as a bare JSON number with every printed digit (0.10000000)."""


def _number(obj: object) -> orjson.Fragment:
    if isinstance(obj, Num):
        return orjson.Fragment(obj.encode())
    raise TypeError(f"cannot encode {type(obj).__name__} in a kraken v2 frame")


def dumps(msg: object) -> str:
    return orjson.dumps(msg, default=_number, option=orjson.OPT_PASSTHROUGH_SUBCLASS).decode()


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _levels(levels) -> list[dict]:
    return [{"price": Num(lv[0]), "qty": Num(lv[1])} for lv in levels]


class _Book(_BookChannel):
    """One (symbol, depth) book channel in v2 frames."""

    def snapshot_v2(self) -> dict:
        return {"channel": "book", "type": "snapshot", "data": [{
            "symbol": self.mirror.native,
            "bids": _levels((lv.price_str, lv.size_str) for lv in self.view.bids.top(self.depth)),
            "asks": _levels((lv.price_str, lv.size_str) for lv in self.view.asks.top(self.depth)),
            "checksum": kraken_checksum(self.view)}]}

    def update_v2(self, delta: BookDelta) -> dict | None:
        """The update taking subscribers from the view to the mirror's new top (call after the
        mirror applied `delta`), or None when it is out of scope."""
        sides = {}
        for key, is_bid in (("bids", True), ("asks", False)):
            final = {p: s for b, p, s in delta.changes if b == is_bid}
            sides[key] = self._diff(is_bid, final, "") if final and self._in_scope(is_bid, final) else []
        if not sides["bids"] and not sides["asks"]:
            return None
        return {"channel": "book", "type": "update", "data": [{
            "symbol": self.mirror.native, "bids": _levels(sides["bids"]), "asks": _levels(sides["asks"]),
            "checksum": kraken_checksum(self.view), "timestamp": rfc3339(delta.t)}]}


def _pair(book: VenueBook) -> dict:
    base, quote = book.native.split("/")
    tick, lot = book.price_str(1), book.size_str(1)
    return {"symbol": book.native, "base": base, "quote": quote, "status": "online",
            "price_precision": book.price_dp, "price_increment": Num(tick), "tick_size": Num(tick),
            "qty_precision": book.spec.size_dp, "qty_increment": Num(lot), "qty_min": Num(lot),
            "cost_precision": 5, "cost_min": Num("0.5"), "marginable": False, "has_index": True}


class KrakenV2(Wire):
    venue = "kraken"
    ws_paths = ("/v2",)
    heartbeat_s = 1.0

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.mirrors = {n: _Mirror(book) for n, book in self.books.items()}
        # Created on first subscribe and kept (one per depth and symbol), as in kraken_v1.
        self.book_channels: dict[str, list[_Book]] = {n: [] for n in self.books}

    def open(self, conn: Conn) -> list[object]:
        return [{"channel": "status", "type": "update", "data": [{
            "version": "2.0.0", "system": "online", "api_version": "v2", "connection_id": 10_000_000 + conn.id}]}]

    def heartbeat(self) -> object:
        return {"channel": "heartbeat"}

    def encode(self, form: str, key: str, msg: object) -> str:
        return dumps(msg)

    def receive(self, conn: Conn, text: str) -> list[object]:
        t = rfc3339(self.market.t)
        stamp = {"time_in": t, "time_out": t}
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [{"error": "Malformed request", "success": False, **stamp}]
        if not isinstance(req, dict):
            return [{"error": "Malformed request", "success": False, **stamp}]
        method = req.get("method")
        ack = {"method": method, **({"req_id": req["req_id"]} if "req_id" in req else {}), **stamp}
        if method == "ping":
            return [{**ack, "method": "pong"}]
        params = req.get("params")
        if method not in ("subscribe", "unsubscribe") or not isinstance(params, dict):
            return [{**ack, "success": False, "error": f"Unsupported method {method!r} or missing params"}]
        channel = params.get("channel")
        if channel == "instrument":
            return self._instrument(conn, method, ack)
        if channel not in ("book", "trade"):
            return [{**ack, "success": False, "error": f"Channel {channel!r} not supported"}]
        depth = params.get("depth", 10)
        if channel == "book" and depth not in DEPTHS:
            return [{**ack, "success": False, "error": f"Invalid depth {depth!r}; one of {DEPTHS}"}]
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols:
            return [{**ack, "success": False, "error": "Missing symbol (a list of pairs)"}]
        replies: list[object] = []
        for symbol in symbols:
            replies += self._subscription(conn, method, channel, symbol, depth, ack)
        return replies

    def _instrument(self, conn: Conn, method: str, ack: dict) -> list[object]:
        result = {**ack, "success": True, "result": {"channel": "instrument", "snapshot": True}}
        if method == "unsubscribe":
            return [result]
        assets = sorted({a for n in self.books for a in n.split("/")})
        return [result, dumps({"channel": "instrument", "type": "snapshot", "data": {
            "assets": [{"id": a, "status": "enabled", "precision": 10, "precision_display": 5,
                        "borrowable": False, "collateral_value": Num("1.0"), "margin_rate": Num("0.0")}
                       for a in assets],
            "pairs": [_pair(book) for book in self.books.values()]}})]

    def _subscription(self, conn: Conn, method: str, channel: str, symbol: object, depth: int,
                      ack: dict) -> list[object]:
        if symbol not in self.books:
            return [{**ack, "success": False, "symbol": symbol, "error": f"Currency pair not supported {symbol}"}]
        key = f"book-{depth}:{symbol}" if channel == "book" else f"trade:{symbol}"
        result = {"channel": channel, "symbol": symbol, **({"depth": depth} if channel == "book" else {}),
                  "snapshot": channel == "book"}
        if method == "unsubscribe":
            if key not in conn.channels:
                return [{**ack, "success": False, "symbol": symbol, "error": "Subscription Not Found"}]
            conn.channels.discard(key)
            return [{**ack, "success": True, "result": result}]
        if key in conn.channels:
            return [{**ack, "success": False, "symbol": symbol, "error": "Already subscribed"}]
        conn.channels.add(key)
        replies: list[object] = [{**ack, "success": True, "result": result}]
        if channel == "book":
            replies.append(dumps(self._book_channel(symbol, depth).snapshot_v2()))
        return replies

    def _book_channel(self, symbol: str, depth: int) -> _Book:
        for ch in self.book_channels[symbol]:
            if ch.depth == depth:
                return ch
        ch = _Book(0, self.mirrors[symbol], depth)
        self.book_channels[symbol].append(ch)
        return ch

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs = []
        for ev in events:
            symbol = self.natives[ev.symbol]
            if isinstance(ev, Trade):
                outs.append(Out(f"trade:{symbol}", {"channel": "trade", "type": "update", "data": [{
                    "symbol": symbol, "side": "buy" if ev.taker_buy else "sell", "price": Num(ev.price),
                    "qty": Num(ev.size), "ord_type": "market", "trade_id": ev.trade_id,
                    "timestamp": rfc3339(ev.t)}]}, TRADE))
                continue
            self.mirrors[symbol].apply(ev)
            for ch in self.book_channels[symbol]:
                msg = ch.update_v2(ev)
                if msg is not None:
                    outs.append(Out(f"book-{ch.depth}:{symbol}", msg, BOOK))
        return outs

    def corrupt_level(self, msg: dict, pick: int) -> dict:
        bad = copy.deepcopy(msg)
        levels = bad["data"][0]["bids"] + bad["data"][0]["asks"]
        level = levels[pick % len(levels)]
        level["qty"] = Num(bump_size(level["qty"]))
        return bad

    def corrupt_checksum(self, msg: dict) -> dict:
        bad = copy.deepcopy(msg)
        bad["data"][0]["checksum"] = (bad["data"][0]["checksum"] + 1) % 2**32
        return bad
