"""Binance spot wire format: diff depth streams batched per interval, aggTrade, REST depth.

Served paths (as on stream.binance.com / api.binance.com):
  ws   /stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade   combined: {"stream": s, "data": e}
  ws   /ws/btcusdt@depth@100ms/... and /ws                     raw events
  ws   {"method": "SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS", "params": [...], "id": n}
  GET  /api/v3/depth?symbol=BTCUSDT&limit=1000  {"lastUpdateId", "bids", "asks"}
Streams per symbol: <sym>@depth@100ms, <sym>@depth (1000 ms), <sym>@aggTrade.

Every book change has an id; a depthUpdate carries U (first) and u (last) id of the changes
it batches with each changed level's final size, and a REST snapshot's lastUpdateId is the
id of the last change it contains, so the documented snapshot + diff sync holds exactly.
"""

from __future__ import annotations

import copy

import orjson

from ..market import BookDelta, Trade
from .wire import BOOK, TRADE, Conn, Out, Wire, bump_size

DEPTH_INTERVALS = {"@depth@100ms": 0.1, "@depth": 1.0}


class _Batch:
    """Book changes accumulated for one depth stream until its next push."""

    __slots__ = ("first", "last", "bids", "asks")

    def __init__(self):
        self.first = self.last = 0
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def add(self, delta: BookDelta) -> None:
        if not self.first:
            self.first = delta.first_id
        self.last = delta.last_id
        for is_bid, price, size in delta.changes:
            (self.bids if is_bid else self.asks)[price] = size


class BinanceSpot(Wire):
    venue = "binance"
    ws_paths = ("/stream", "/ws", "/ws/{streams:.+}")
    rest_paths = ("/api/v3/depth",)

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.streams: dict[str, str] = {}  # lowercased stream name -> stream name
        for native in self.books:
            for suffix in (*DEPTH_INTERVALS, "@aggTrade"):
                name = native.lower() + suffix
                self.streams[name.lower()] = name
        self.batches = {(native, suffix): _Batch() for native in self.books for suffix in DEPTH_INTERVALS}
        self.due = dict.fromkeys(DEPTH_INTERVALS, 0.0)

    # -- client side ---------------------------------------------------------------------------

    def open(self, conn: Conn) -> list[object]:
        if conn.path == "/stream":
            conn.form = "combined"
            names = conn.query.get("streams", "")
        else:
            names = conn.path[len("/ws/"):] if conn.path.startswith("/ws/") else ""
        wanted = [n for n in names.split("/") if n]
        unknown = [n for n in wanted if n.lower() not in self.streams]
        conn.channels.update(self.streams[n.lower()] for n in wanted if n.lower() in self.streams)
        if unknown:
            return [{"error": {"code": 2, "msg": f"Invalid request: unknown stream(s) {unknown}"}}]
        return []

    def receive(self, conn: Conn, text: str) -> list[object]:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            return [{"error": {"code": 3, "msg": f"Invalid JSON: {e}"}}]
        if not isinstance(req, dict) or "id" not in req:
            return [{"error": {"code": 2, "msg": "Invalid request: a request needs 'method' and 'id'"},
                     "id": req.get("id") if isinstance(req, dict) else None}]
        method, params, rid = req.get("method"), req.get("params", []), req["id"]
        if method == "LIST_SUBSCRIPTIONS":
            return [{"result": sorted(conn.channels), "id": rid}]
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            return [{"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": rid}]
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            return [{"error": {"code": 1, "msg": "Invalid value type: params must be a list of stream names"},
                     "id": rid}]
        unknown = [p for p in params if p.lower() not in self.streams]
        if unknown:
            return [{"error": {"code": 2, "msg": f"Invalid request: unknown stream(s) {unknown}"}, "id": rid}]
        names = {self.streams[p.lower()] for p in params}
        if method == "SUBSCRIBE":
            conn.channels |= names
        else:
            conn.channels -= names
        return [{"result": None, "id": rid}]

    def encode(self, form: str, key: str, msg: object) -> str:
        return orjson.dumps({"stream": key, "data": msg} if form == "combined" else msg).decode()

    # -- market side ---------------------------------------------------------------------------

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs = []
        for ev in events:
            native = self.natives[ev.symbol]
            if isinstance(ev, Trade):
                ms = int(ev.t * 1000)
                outs.append(Out(native.lower() + "@aggTrade", {
                    "e": "aggTrade", "E": ms, "s": native, "a": ev.trade_id, "p": ev.price, "q": ev.size,
                    "f": ev.trade_id, "l": ev.trade_id, "T": ms, "m": not ev.taker_buy, "M": True}, TRADE))
            else:
                for suffix in DEPTH_INTERVALS:
                    self.batches[(native, suffix)].add(ev)
        return outs

    def tick(self, t: float) -> list[Out]:
        outs = []
        for suffix, interval in DEPTH_INTERVALS.items():
            if t < self.due[suffix]:
                continue
            self.due[suffix] = (t // interval + 1) * interval
            for native in self.books:
                batch = self.batches[(native, suffix)]
                if not batch.first:
                    continue
                self.batches[(native, suffix)] = _Batch()
                outs.append(Out(native.lower() + suffix, {
                    "e": "depthUpdate", "E": int(t * 1000), "s": native, "U": batch.first, "u": batch.last,
                    "b": [[p, s] for p, s in batch.bids.items()],
                    "a": [[p, s] for p, s in batch.asks.items()]}, BOOK))
        return outs

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        native = query.get("symbol", "")
        if not native:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                               "or malformed."}
        if native not in self.books:
            return 400, {"code": -1121, "msg": f"Invalid symbol {native!r} (simulated: {sorted(self.books)})."}
        limit = query.get("limit", "100")
        if not limit.isdigit() or not 1 <= int(limit) <= 5000:
            return 400, {"code": -1100, "msg": f"Illegal value for parameter 'limit': {limit!r}; "
                                               "legal range is 1..5000."}
        book = self.books[native]
        n = int(limit)
        return 200, {"lastUpdateId": book.update_id,
                     "bids": [[p, s] for p, s, _ in book.top(True, n)],
                     "asks": [[p, s] for p, s, _ in book.top(False, n)]}

    def corrupt_level(self, msg: dict, pick: int) -> dict | None:
        levels = len(msg["b"]) + len(msg["a"])
        if not levels:
            return None
        bad = copy.deepcopy(msg)
        i = pick % levels
        level = bad["b"][i] if i < len(bad["b"]) else bad["a"][i - len(bad["b"])]
        level[1] = bump_size(level[1])
        return bad
