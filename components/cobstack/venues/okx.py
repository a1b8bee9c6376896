"""OKX v5 public websocket: `books` (400-level snapshot, then incremental updates) and `trades`.

Wire format (okx.com/docs-v5, "Order book channel", "Trades channel"):
    books   {"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": "snapshot"|"update",
             "data": [{"asks": [[px, sz, "0", orders], ...], "bids": [...], "ts": "<ms>",
                       "checksum": <int32>, "prevSeqId": <int>, "seqId": <int>}]}
    trades  {"arg": {"channel": "trades", ...}, "data": [{"instId", "tradeId", "px", "sz",
             "side": taker side, "ts": "<ms>"}]}
    events  {"event": "subscribe"|"unsubscribe"|"error"|"notice", ...}
    "pong"  the plain-text answer to our application-level "ping"

Sync, as documented: a snapshot (prevSeqId -1) replaces the book; every update's prevSeqId must
equal the seqId of the message before it. That single rule also covers both documented
exceptions: a keep-alive update without levels repeats its seqId (seqId == prevSeqId), and
after a maintenance reset seqId is smaller than prevSeqId. Anything else is a gap, resynced by
unsubscribe + subscribe of that instId (OKX then sends a fresh snapshot) on the same connection.

Checksum: after every message, CRC32 of the top 25 levels interleaved bid:ask as the venue's
own strings, signed 32-bit (checksums.okx). OKX deprecated the field: from 2026-06-23 it is
always 0 in production and "must no longer be used" (OKX announcement "Order Book Channels
Checksum Field Deprecation"), so 0 means "not sent" and only seqId continuity is checked then.
The book is kept to the channel's 400 levels (OKX does not delete levels that leave its window).
"""

from __future__ import annotations

import orjson

from ..core.book import L2Book
from .base import LIVE, Adapter
from .checksums import okx as okx_checksum

BOOK_CHANNEL, TRADE_CHANNEL = "books", "trades"
BOOK_DEPTH = 400  # the `books` channel's documented depth
PING, PONG = "ping", "pong"
_TAKER = {"buy": "buy", "sell": "sell"}


class OkxAdapter(Adapter):
    venue = "okx"
    live_ws_url = "wss://ws.okx.com:8443"
    live_rest_url = "https://www.okx.com"
    # GET /api/v5/market/books: 40 requests per 2 s per IP (not used: the ws snapshot suffices).
    rest_weight_per_minute = 1200.0
    app_ping = PING  # OKX drops a connection after 30 s without traffic; send "ping" within that

    def __init__(self, instruments: list[str] | None = None, depth: int | None = None,
                 ws_url: str | None = None, rest_url: str | None = None, trades: bool = True):
        if depth is not None and not 0 < depth <= BOOK_DEPTH:
            raise ValueError(f"okx: depth {depth} is outside the books channel's 1..{BOOK_DEPTH} levels")
        super().__init__(instruments, depth or BOOK_DEPTH, ws_url, rest_url, trades)

    # -- endpoints and subscriptions ------------------------------------------------------

    def ws_url(self) -> str:
        return f"{self.ws_base}/ws/v5/public"

    @staticmethod
    def _op(op: str, channels: list[str], natives: list[str]) -> str:
        args = [{"channel": c, "instId": n} for n in natives for c in channels]
        return orjson.dumps({"op": op, "args": args}).decode()

    def subscribe_frames(self) -> list[str]:
        natives = list(self.books)
        if not natives:
            return []
        channels = [BOOK_CHANNEL, TRADE_CHANNEL] if self.want_trades else [BOOK_CHANNEL]
        return [self._op("subscribe", channels, natives)]

    def _request_resync(self, native: str) -> None:
        self.outbox.append(("ws", self._op("unsubscribe", [BOOK_CHANNEL], [native])))
        self.outbox.append(("ws", self._op("subscribe", [BOOK_CHANNEL], [native])))

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        if text == PONG or text == b"pong":
            self.stats.ignored += 1
            return
        msg = orjson.loads(text)
        arg = msg.get("arg")
        channel = arg.get("channel") if arg.__class__ is dict else None
        if "event" in msg:
            if msg["event"] == "error":
                self.stats.reject("venue_error", text)
            else:
                self.stats.ignored += 1  # subscribe/unsubscribe acks, notices
        elif channel == BOOK_CHANNEL:
            native = arg["instId"]
            book = self._book_for(native, text)
            if book is None:
                return
            action = msg["action"]
            if action not in ("snapshot", "update"):
                self.stats.reject("unknown_action", text)
                return
            entries = msg["data"]
            if entries.__class__ is not list or not entries:
                self.stats.reject("malformed_data", text)
                return
            for data in entries:
                self._book(native, book, action == "snapshot", data, text, ts)
        elif channel == TRADE_CHANNEL:
            for t in msg["data"]:
                self._trade(t["instId"], t["px"], t["sz"], _TAKER[t["side"]], int(t["ts"]) / 1000.0)
        else:
            self.stats.ignored += 1  # tickers and other channels

    def _book(self, native: str, book: L2Book, snapshot: bool, data: dict, text: str | bytes,
              ts: float) -> None:
        seq, prev = data["seqId"], data["prevSeqId"]
        if seq.__class__ is not int or prev.__class__ is not int:
            self.fault(native, "malformed_update_id", text)
            return
        if snapshot:
            if not self._load(native, book, data["bids"], data["asks"], text):
                return
        else:
            if self.state[native] != LIVE:
                self.stats.stale_dropped += 1  # superseded by the snapshot the resubscribe brings
                return
            if prev != book.seq:
                self.fault(native, "gap", text)
                return
            if not self._apply(native, book, data["bids"], data["asks"], text):
                return
            book.truncate()
        book.seq = seq
        book.ts = ts
        self.dirty.add(native)
        checksum = data.get("checksum")
        if checksum.__class__ is not int:
            self.fault(native, "malformed_checksum", text)
            return
        if checksum:  # 0: the deprecated field, not sent (see the module docstring)
            if checksum != okx_checksum(book):
                self.fault(native, "checksum", text)
                return
            self.stats.checksums_ok += 1
        if not snapshot:
            self.stats.updates += 1
