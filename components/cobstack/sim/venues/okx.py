"""OKX v5 public websocket wire format (ws.okx.com:8443/ws/v5/public): `books`, `trades`.

Served on /ws/v5/public:
  subscribe   {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}, ...]}
              -> {"event": "subscribe", "arg": {...}, "connId"} per arg, then for books a snapshot
  books       {"arg": {"channel": "books", "instId"}, "action": "snapshot"|"update", "data": [{
               "asks": [[px, sz, "0", orders], ...], "bids": [...], "ts": "<ms>",
               "checksum": <signed CRC32>, "prevSeqId": <int>, "seqId": <int>}]}
  trades      {"arg": {"channel": "trades", "instId"}, "data": [{"instId", "tradeId", "px", "sz",
               "side": the taker's, "ts", "count": "1"}]}
  unsubscribe like subscribe -> {"event": "unsubscribe", "arg": {...}, "connId"}
  errors      {"event": "error", "code": "60012"|"60018", "msg": ..., "connId"}
  "ping" -> "pong" (plain text)

Updates are pushed every 100 ms with each changed level's final size ("0" deletes). seqId
is the id of the last book change a message contains, prevSeqId the seqId of the channel's
previous message (-1 in a snapshot), so a snapshot sent between pushes already holds part of
the next update: applying final sizes again is harmless and the checksum, taken after the
update, agrees. The checksum is venues.checksums.okx over the top 25 levels. The sim has no
order granularity: every level counts one order.
"""

from __future__ import annotations

import copy

import orjson

from ...core.book import L2Book
from ...venues.checksums import okx as okx_checksum
from ..market import BookDelta, Trade, VenueBook
from .wire import BOOK, TRADE, Batch, Conn, Out, Wire, bump_size

BOOKS, TRADES = "books", "trades"
PUSH_S = 0.1
SNAPSHOT_DEPTH = 400
CHECKSUM_DEPTH = 25


def _levels(levels) -> list[list[str]]:
    return [[p, s, "0", "1"] for p, s in levels]


def checksum(book: VenueBook) -> int:
    """The OKX checksum of a market book as it stands."""
    top = L2Book("okx", book.native, CHECKSUM_DEPTH)
    top.load([lv[:2] for lv in book.top(True, CHECKSUM_DEPTH)], [lv[:2] for lv in book.top(False, CHECKSUM_DEPTH)])
    return okx_checksum(top)


class Okx(Wire):
    venue = "okx"
    ws_paths = ("/ws/v5/public",)

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.batches = {inst: Batch() for inst in self.books}
        self.seq = {inst: book.update_id for inst, book in self.books.items()}  # last pushed seqId
        self.due = 0.0

    def receive(self, conn: Conn, text: str) -> list[object]:
        if text == "ping":
            return ["pong"]
        conn_id = {"connId": f"{conn.id:08x}"}
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError:
            return [{"event": "error", "code": "60012", "msg": f"Invalid request: {text[:100]}", **conn_id}]
        op = req.get("op") if isinstance(req, dict) else None
        args = req.get("args") if isinstance(req, dict) else None
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            return [{"event": "error", "code": "60012", "msg": f"Invalid request: {text[:100]}", **conn_id}]
        replies: list[object] = []
        for arg in args:
            channel, inst = (arg.get("channel"), arg.get("instId")) if isinstance(arg, dict) else (None, None)
            if channel not in (BOOKS, TRADES) or inst not in self.books:
                replies.append({"event": "error", "code": "60018", **conn_id,
                                "msg": f"Wrong URL or channel:{channel},instId:{inst} doesn't exist"})
                continue
            key, echo = f"{channel}:{inst}", {"channel": channel, "instId": inst}
            replies.append({"event": op, "arg": echo, **conn_id})
            if op == "unsubscribe":
                conn.channels.discard(key)
            elif key not in conn.channels:
                conn.channels.add(key)
                if channel == BOOKS:
                    replies.append(self._snapshot(inst))
        return replies

    def _snapshot(self, inst: str) -> dict:
        book = self.books[inst]
        return {"arg": {"channel": BOOKS, "instId": inst}, "action": "snapshot", "data": [{
            "asks": _levels((p, s) for p, s, _ in book.top(False, SNAPSHOT_DEPTH)),
            "bids": _levels((p, s) for p, s, _ in book.top(True, SNAPSHOT_DEPTH)),
            "ts": str(int(self.market.t * 1000)), "checksum": checksum(book),
            "prevSeqId": -1, "seqId": self.seq[inst]}]}

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs = []
        for ev in events:
            inst = self.natives[ev.symbol]
            if isinstance(ev, BookDelta):
                self.batches[inst].add(ev)
                continue
            outs.append(Out(f"{TRADES}:{inst}", {"arg": {"channel": TRADES, "instId": inst}, "data": [{
                "instId": inst, "tradeId": str(ev.trade_id), "px": ev.price, "sz": ev.size,
                "side": "buy" if ev.taker_buy else "sell", "ts": str(int(ev.t * 1000)), "count": "1"}]}, TRADE))
        return outs

    def tick(self, t: float) -> list[Out]:
        if t < self.due:
            return []
        self.due = (t // PUSH_S + 1) * PUSH_S
        outs = []
        for inst, batch in self.batches.items():
            if not batch.first:
                continue
            self.batches[inst] = Batch()
            prev, self.seq[inst] = self.seq[inst], batch.last
            outs.append(Out(f"{BOOKS}:{inst}", {"arg": {"channel": BOOKS, "instId": inst}, "action": "update",
                                                "data": [{"asks": _levels(batch.asks.items()),
                                                          "bids": _levels(batch.bids.items()),
                                                          "ts": str(int(t * 1000)),
                                                          "checksum": checksum(self.books[inst]),
                                                          "prevSeqId": prev, "seqId": batch.last}]}, BOOK))
        return outs

    def corrupt_level(self, msg: dict, pick: int) -> dict | None:
        bad = copy.deepcopy(msg)
        levels = bad["data"][0]["bids"] + bad["data"][0]["asks"]
        if not levels:
            return None
        level = levels[pick % len(levels)]
        level[1] = bump_size(level[1])
        return bad

    def corrupt_checksum(self, msg: dict) -> dict:
        bad = copy.deepcopy(msg)
        data = bad["data"][0]
        data["checksum"] = (data["checksum"] + (1 << 31) + 1) % (1 << 32) - (1 << 31)  # stays signed 32-bit
        return bad
