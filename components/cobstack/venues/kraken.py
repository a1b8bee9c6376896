"""Kraken websocket API v2: `instrument`, `book` (L2 with CRC32 checksums) and `trade` channels.

Wire format (docs.kraken.com, Spot WebSocket v2):
    instrument {"channel": "instrument", "type": "snapshot"|"update",
                "data": {"assets": [...], "pairs": [{"symbol": "BTC/USD", "price_precision": 1,
                                                     "qty_precision": 8, ...}]}}
    book       {"channel": "book", "type": "snapshot"|"update",
                "data": [{"symbol": "BTC/USD", "bids": [{"price": 45283.5, "qty": 0.1}, ...],
                          "asks": [...], "checksum": <uint32>, "timestamp": "<RFC 3339>"}]}
    trade      {"channel": "trade", "type": "update", "data": [{"symbol", "side": taker side,
                "price", "qty", "ord_type", "trade_id", "timestamp"}]}
    acks       {"method": "subscribe", "result": {"channel": "book", "depth": 10, "symbol": ...},
                "success": true, ...}; errors carry "success": false and "error"

Book maintenance follows Kraken's v2 checksum guide: apply every level (qty 0 deletes),
truncate to the subscribed depth, then verify `checksum` (snapshots carry one too) against CRC32
of the top 10 asks then bids, each level as price and qty digits without the point and leading
zeros. A mismatch resyncs that symbol alone by unsubscribe + subscribe.

Exact decimals: v2 sends prices and quantities as JSON numbers written with the pair's full
precision (45281.0, 0.10000000), so the checksum needs those digits back. orjson parses them
to floats; each is formatted with the pair's `price_precision` / `qty_precision` from the
`instrument` channel, and that text is the level's string (and exact Decimal). This is exact
while the value has no more decimals than the precision and stays below 2**51 / 10**precision:
the float is then nearer to the wire number than to any other number with that many decimals.
A value outside that (float(text) != value, or too large) makes the whole frame be re-parsed
with Decimal numbers; a number with more decimals than its pair's precision is rejected.

A book message for a symbol whose precision is not known yet is dropped and the symbol stays
"syncing"; when its precision arrives, the book is resubscribed to get a snapshot.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import orjson

from ..core.book import BadLevel, L2Book
from .base import LIVE, SYNCING, Adapter, apply_levels
from .checksums import kraken as kraken_checksum
from .kraken_v1 import DEFAULT_DEPTH, DEPTHS

_TAKER = {"buy": "buy", "sell": "sell"}


class _Inexact(Exception):
    """A float whose formatted text may not be the number on the wire (use Decimal parsing)."""


# Largest magnitude at which a float formatted to p decimals is certainly the wire number.
_EXACT_BELOW = [2.0 ** 51 / 10 ** p for p in range(19)]


def format_number(value: object, precision: int) -> str:
    """The wire text of a v2 price or quantity given its precision (see the module docstring)."""
    cls = value.__class__
    if cls is float:
        text = f"{value:.{precision}f}"
        if not (abs(value) < _EXACT_BELOW[precision] and float(text) == value):
            raise _Inexact
        return text
    if cls is int:
        return f"{value}.{'0' * precision}" if precision else str(value)
    if cls is Decimal:
        text = f"{value:.{precision}f}"
        if Decimal(text) != value:
            raise BadLevel("precision_mismatch", f"{value} has more than {precision} decimals")
        return text
    raise BadLevel("malformed_number", repr(value)[:200])


def _levels(entries: object, price_prec: int, qty_prec: int) -> list[list[str]]:
    if entries.__class__ is not list:
        raise BadLevel("malformed_level", f"levels are {type(entries).__name__}, not a list")
    out = []
    for e in entries:
        if e.__class__ is not dict or "price" not in e or "qty" not in e:
            raise BadLevel("malformed_level", repr(e)[:200])
        out.append([format_number(e["price"], price_prec), format_number(e["qty"], qty_prec)])
    return out


def _number_text(value: object) -> str:
    """A trade price or size as text (trades are kept as floats; no precision needed)."""
    if value.__class__ not in (float, int, Decimal):
        raise BadLevel("malformed_trade", repr(value)[:200])
    return str(value)


class KrakenAdapter(Adapter):
    venue = "kraken"
    live_ws_url = "wss://ws.kraken.com"
    live_rest_url = "https://api.kraken.com"
    depths = DEPTHS
    # Public REST is about 1 request per second per IP (not used: the ws snapshot suffices).
    rest_weight_per_minute = 60.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.precision: dict[str, tuple[int, int]] = {}  # symbol -> (price, qty) decimals
        self._acked_depth: dict[str, int] = {}  # symbol -> depth its book subscription was acked at
        self._awaiting_precision: set[str] = set()  # book data dropped for want of a precision

    # -- endpoints and subscriptions ------------------------------------------------------

    def ws_url(self) -> str:
        return f"{self.ws_base}/v2"

    def _book_op(self, method: str, symbols: list[str]) -> str:
        params = {"channel": "book", "symbol": symbols, "depth": self.depth or DEFAULT_DEPTH}
        if method == "subscribe":
            params["snapshot"] = True
        return orjson.dumps({"method": method, "params": params}).decode()

    def subscribe_frames(self) -> list[str]:
        symbols = list(self.books)
        if not symbols:
            return []
        # Precisions first: book numbers cannot be checksummed without them.
        frames = [orjson.dumps({"method": "subscribe", "params": {"channel": "instrument"}}).decode(),
                  self._book_op("subscribe", symbols)]
        if self.want_trades:
            frames.append(orjson.dumps({"method": "subscribe", "params": {
                "channel": "trade", "symbol": symbols, "snapshot": False}}).decode())
        return frames

    def _request_resync(self, native: str) -> None:
        self.outbox.append(("ws", self._book_op("unsubscribe", [native])))
        self.outbox.append(("ws", self._book_op("subscribe", [native])))

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        try:
            self._message(orjson.loads(text), text, ts)
        except _Inexact:  # nothing was applied yet: levels are all formatted before any is applied
            self._message(json.loads(text, parse_float=Decimal), text, ts)

    def _message(self, msg: dict, text: str | bytes, ts: float) -> None:
        channel = msg.get("channel")
        if channel == "book":
            self._books(msg["type"], msg["data"], text, ts)
        elif channel == "instrument":
            self._instruments(msg["data"]["pairs"], text)
        elif channel == "trade":
            for t in msg["data"]:
                self._trade(t["symbol"], _number_text(t["price"]), _number_text(t["qty"]),
                            _TAKER[t["side"]], datetime.fromisoformat(t["timestamp"]).timestamp())
        elif "method" in msg:
            if msg.get("success") is False:
                self.stats.reject("subscription_error", text)
                return
            result = msg.get("result")
            if msg["method"] == "subscribe" and result.__class__ is dict and result.get("channel") == "book":
                depth, symbol = result.get("depth"), result.get("symbol")
                if depth in DEPTHS and symbol.__class__ is str:
                    self._acked_depth[symbol] = depth
            self.stats.ignored += 1  # acks, pong
        else:
            self.stats.ignored += 1  # heartbeat, status, ticker

    def _instruments(self, pairs: list, text: str | bytes) -> None:
        if pairs.__class__ is not list:
            self.stats.reject("malformed_instrument", text)
            return
        for pair in pairs:
            symbol, pp, qp = pair["symbol"], pair["price_precision"], pair["qty_precision"]
            if not (pp.__class__ is int and qp.__class__ is int and 0 <= pp < 19 and 0 <= qp < 19):
                self.stats.reject("malformed_instrument", pair)
                continue
            old = self.precision.get(symbol)
            self.precision[symbol] = (pp, qp)
            if symbol in self._awaiting_precision or (old is not None and old != (pp, qp)
                                                       and symbol in self.books):
                # The book's strings are in the old (or no) precision: start it over.
                self._awaiting_precision.discard(symbol)
                self._reset(symbol, SYNCING)
                self._request_resync(symbol)
        self.stats.ignored += 1  # reference data, not a book message

    def _books(self, kind: object, entries: object, text: str | bytes, ts: float) -> None:
        if kind not in ("snapshot", "update") or entries.__class__ is not list or not entries:
            self.stats.reject("unparseable:shape", text)
            return
        parsed = []  # format every level first, so an _Inexact retry finds nothing applied
        for e in entries:
            symbol = e["symbol"]
            book = self._book_for(symbol, text)
            if book is None:
                continue
            prec = self.precision.get(symbol)
            if prec is None:
                self._awaiting_precision.add(symbol)
                self.stats.stale_dropped += 1
                continue
            try:
                levels = _levels(e["bids"], *prec), _levels(e["asks"], *prec)
            except BadLevel as err:
                self.fault(symbol, err.kind, text)
                continue
            parsed.append((symbol, book, levels, e.get("checksum")))
        for symbol, book, (bids, asks), checksum in parsed:
            if kind == "snapshot":
                self._snapshot(symbol, book, bids, asks, checksum, text, ts)
            elif self.state[symbol] != LIVE:
                self.stats.stale_dropped += 1  # superseded by the snapshot the resubscribe brings
            else:
                self._update(symbol, book, bids, asks, checksum, text, ts)

    def _snapshot(self, symbol: str, book: L2Book, bids: list, asks: list, checksum: object,
                  text: str | bytes, ts: float) -> None:
        if book.max_depth is None:  # auto mode: keep the depth the book was subscribed at
            book.max_depth = self._acked_depth.get(symbol) or self.depth or DEFAULT_DEPTH
        if self._load(symbol, book, bids, asks, text):
            book.ts = ts
            self._verify(symbol, book, checksum, text)

    def _update(self, symbol: str, book: L2Book, bids: list, asks: list, checksum: object,
                text: str | bytes, ts: float) -> None:
        try:
            apply_levels(book.bids, bids)
            apply_levels(book.asks, asks)
        except BadLevel as e:
            self.fault(symbol, e.kind, text)
            return
        book.truncate()  # Kraken sends no deletes for levels pushed out of the subscribed depth
        book.ts = ts
        self.dirty.add(symbol)
        if self._verify(symbol, book, checksum, text) and self._uncrossed(symbol, book, text):
            self.stats.updates += 1

    def _verify(self, symbol: str, book: L2Book, checksum: object, text: str | bytes) -> bool:
        if checksum.__class__ is not int or checksum != kraken_checksum(book):
            self.fault(symbol, "checksum", text)
            return False
        self.stats.checksums_ok += 1
        return True
