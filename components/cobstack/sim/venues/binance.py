"""Binance spot and futures wire formats: diff depth streams batched per interval, aggTrade, REST depth.

Served paths (as on stream.binance.com / api.binance.com):
  ws   /stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade   combined: {"stream": s, "data": e}
  ws   /ws/btcusdt@depth@100ms/... and /ws                     raw events
  ws   {"method": "SUBSCRIBE"|"UNSUBSCRIBE"|"LIST_SUBSCRIPTIONS", "params": [...], "id": n}
  GET  /api/v3/depth?symbol=BTCUSDT&limit=1000  {"lastUpdateId", "bids", "asks"}
Streams per symbol: <sym>@depth@100ms, <sym>@depth (1000 ms), <sym>@aggTrade.

Every book change has an id; a depthUpdate carries U (first) and u (last) id of the changes
it batches with each changed level's final size, and a REST snapshot's lastUpdateId is the
id of the last change it contains, so the documented snapshot + diff sync holds exactly.

Futures (fstream.binance.com / fapi, dstream.binance.com / dapi) speak the same protocol with
their own REST path and limits, 100/250/500 ms depth streams, a transaction time T and `pu`:
the u of the previous event on the same stream. COIN-M (symbols like BTCUSD_PERP, with `ps`,
the pair) quotes sizes in contracts of a fixed USD value; the market's base-unit sizes are
converted per level, a pure function of (price, size), so snapshots and diffs agree.
"""

from __future__ import annotations

import copy
from decimal import ROUND_HALF_EVEN, Decimal

import orjson

from ...core.symbols import contract_value
from ..market import BookDelta, Trade
from .wire import BOOK, TRADE, Batch, Conn, Out, Wire, bump_size


class BinanceSpot(Wire):
    venue = "binance"
    ws_paths = ("/stream", "/ws", "/ws/{streams:.+}")
    rest_paths = ("/api/v3/depth",)
    depth_intervals = {"@depth@100ms": 0.1, "@depth": 1.0}
    rest_limits = range(1, 5001)  # legal depth `limit`s
    rest_limits_text = "1..5000"
    rest_default_limit = 100

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.streams: dict[str, str] = {}  # lowercased stream name -> stream name
        for native in self.books:
            for suffix in (*self.depth_intervals, "@aggTrade"):
                name = native.lower() + suffix
                self.streams[name.lower()] = name
        self.batches = {(native, suffix): Batch() for native in self.books for suffix in self.depth_intervals}
        self.due = dict.fromkeys(self.depth_intervals, 0.0)

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
                outs.append(Out(native.lower() + "@aggTrade", self._agg_trade(native, ev), TRADE))
            else:
                for suffix in self.depth_intervals:
                    self.batches[(native, suffix)].add(ev)
        return outs

    def _agg_trade(self, native: str, ev: Trade) -> dict:
        ms = int(ev.t * 1000)
        return {"e": "aggTrade", "E": ms, "s": native, "a": ev.trade_id, "p": ev.price,
                "q": self.qty(native, ev.price, ev.size), "f": ev.trade_id, "l": ev.trade_id, "T": ms,
                "m": not ev.taker_buy, "M": True}

    def qty(self, native: str, price: str, size: str) -> str:
        """A size as this market prints it (spot and USD-M: the market's own string)."""
        return size

    def _levels(self, native: str, levels) -> list[list[str]]:
        return [[p, self.qty(native, p, s)] for p, s in levels]

    def tick(self, t: float) -> list[Out]:
        outs = []
        for suffix, interval in self.depth_intervals.items():
            if t < self.due[suffix]:
                continue
            self.due[suffix] = (t // interval + 1) * interval
            for native in self.books:
                batch = self.batches[(native, suffix)]
                if not batch.first:
                    continue
                self.batches[(native, suffix)] = Batch()
                outs.append(Out(native.lower() + suffix, self._depth_event(native, suffix, batch, t), BOOK))
        return outs

    def _depth_event(self, native: str, suffix: str, batch: Batch, t: float) -> dict:
        return {"e": "depthUpdate", "E": int(t * 1000), "s": native, "U": batch.first, "u": batch.last,
                "b": self._levels(native, batch.bids.items()), "a": self._levels(native, batch.asks.items())}

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        native = query.get("symbol", "")
        if not native:
            return 400, {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                               "or malformed."}
        if native not in self.books:
            return 400, {"code": -1121, "msg": f"Invalid symbol {native!r} (simulated: {sorted(self.books)})."}
        limit = query.get("limit", str(self.rest_default_limit))
        if not limit.isdigit() or int(limit) not in self.rest_limits:
            return 400, {"code": -1100, "msg": f"Illegal value for parameter 'limit': {limit!r}; "
                                               f"legal: {self.rest_limits_text}."}
        book = self.books[native]
        n = int(limit)
        return 200, {"lastUpdateId": book.update_id, **self._snapshot_fields(native),
                     "bids": self._levels(native, ((p, s) for p, s, _ in book.top(True, n))),
                     "asks": self._levels(native, ((p, s) for p, s, _ in book.top(False, n)))}

    def _snapshot_fields(self, native: str) -> dict:
        return {}

    def corrupt_level(self, msg: dict, pick: int) -> dict | None:
        levels = len(msg["b"]) + len(msg["a"])
        if not levels:
            return None
        bad = copy.deepcopy(msg)
        i = pick % levels
        level = bad["b"][i] if i < len(bad["b"]) else bad["a"][i - len(bad["b"])]
        level[1] = bump_size(level[1])
        return bad


class BinanceUsdm(BinanceSpot):
    """USDⓈ-M futures: fstream paths are the spot ones; REST /fapi/v1/depth."""
    venue = "binance-usdm"
    rest_paths = ("/fapi/v1/depth",)
    depth_intervals = {"@depth@100ms": 0.1, "@depth": 0.25, "@depth@500ms": 0.5}
    rest_limits = (5, 10, 20, 50, 100, 500, 1000)
    rest_limits_text = "5, 10, 20, 50, 100, 500, 1000"
    rest_default_limit = 500

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.prev_u = dict.fromkeys(self.batches, 0)  # (native, stream suffix) -> last pushed u

    def _depth_event(self, native: str, suffix: str, batch: Batch, t: float) -> dict:
        ms = int(t * 1000)
        pu, self.prev_u[(native, suffix)] = self.prev_u[(native, suffix)], batch.last
        return {"e": "depthUpdate", "E": ms, "T": ms, "s": native, **self._pair(native), "U": batch.first,
                "u": batch.last, "pu": pu, "b": self._levels(native, batch.bids.items()),
                "a": self._levels(native, batch.asks.items())}

    def _agg_trade(self, native: str, ev: Trade) -> dict:
        trade = super()._agg_trade(native, ev)
        del trade["M"]  # futures aggTrade has no "best match" flag
        return trade

    def _pair(self, native: str) -> dict:
        return {}

    def _snapshot_fields(self, native: str) -> dict:
        ms = int(self.market.t * 1000)
        return {"E": ms, "T": ms}


class BinanceCoinm(BinanceUsdm):
    """COIN-M futures: REST /dapi/v1/depth; symbols BTCUSD_PERP with pair `ps`; sizes in contracts."""
    venue = "binance-coinm"
    rest_paths = ("/dapi/v1/depth",)
    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.face = {n: Decimal(str(contract_value(self.venue, b.symbol.split("-")[0])))
                     for n, b in self.books.items()}

    def qty(self, native: str, price: str, size: str) -> str:
        """Contracts worth `size` base units at `price`; a resting level is at least one."""
        base = Decimal(size)
        if not base:
            return "0"
        contracts = (base * Decimal(price) / self.face[native]).to_integral_value(ROUND_HALF_EVEN)
        return str(max(1, int(contracts)))

    def _pair(self, native: str) -> dict:
        return {"ps": native.split("_")[0]}

    def _snapshot_fields(self, native: str) -> dict:
        return {"symbol": native, "pair": native.split("_")[0], **super()._snapshot_fields(native)}
