"""Coinbase Exchange websocket feed: `level2` / `level2_batch` books and `matches` trades.

    snapshot   {"type": "snapshot", "product_id", "bids": [[p, s]], "asks": [[p, s]]}
    l2update   {"type": "l2update", "product_id", "changes": [["buy"|"sell", p, s]], "time"}
    match      {"type": "match"|"last_match", "side": maker side, "price", "size", "time"}

The Advanced Trade feed's `level2` channel (messages on channel "l2_data", events of type
"snapshot"/"update" with `updates: [{side: bid|offer, price_level, new_quantity}]`) is parsed
too; subscriptions are sent in the Exchange feed's format.

Limits of what can be checked: level2 carries no sequence numbers, so a lost, repeated or
reordered l2update (sizes are absolute) cannot be detected from the feed itself. The adapter
enforces snapshot-before-update and the crossed-book check after every message; a fault
resyncs that product by unsubscribe + subscribe, which makes Coinbase send a new snapshot.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from ..core.book import BadLevel, L2Book
from .base import LIVE, Adapter, set_level

L2_TYPES = ("snapshot", "l2update")
TRADE_TYPES = ("match", "last_match")
_BID = {"buy": True, "sell": False, "bid": True, "offer": False}


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def _event_time(when: object, fallback: float) -> float:
    """The update's venue time; the receive time when it has none we can read (the book
    data stays good, only the feed-lag figure loses this sample)."""
    try:
        return _seconds(when)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return fallback


class CoinbaseAdapter(Adapter):
    venue = "coinbase"
    event_time = True
    live_ws_url = "wss://ws-feed.exchange.coinbase.com"
    live_rest_url = "https://api.exchange.coinbase.com"

    def __init__(self, instruments: list[str] | None = None, depth: int | None = None,
                 ws_url: str | None = None, rest_url: str | None = None,
                 channel: str = "level2_batch"):
        """channel: "level2_batch" (public) or "level2" (authenticated on the Exchange feed)."""
        super().__init__(instruments, depth, ws_url, rest_url)
        self.channel = channel

    def ws_url(self) -> str:
        return self.ws_base

    def _sub(self, kind: str, products: list[str], channels: list[str]) -> str:
        return orjson.dumps({"type": kind, "product_ids": products, "channels": channels}).decode()

    def subscribe_frames(self) -> list[str]:
        products = list(self.books)
        return [self._sub("subscribe", products, [self.channel, "matches"])] if products else []

    def _request_resync(self, native: str) -> None:
        self.outbox.append(("ws", self._sub("unsubscribe", [native], [self.channel])))
        self.outbox.append(("ws", self._sub("subscribe", [native], [self.channel])))

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        msg = orjson.loads(text)
        kind = msg.get("type")
        if kind in L2_TYPES:
            native = msg["product_id"]
            book = self._book_for(native, text)
            if book is None:
                return
            if kind == "snapshot":
                if self._load(native, book, msg["bids"], msg["asks"], text):
                    book.ts = ts
            else:
                self._changes(native, book, msg["changes"], 0, 1, 2, text,
                              _event_time(msg.get("time"), ts))
        elif kind in TRADE_TYPES:
            # `side` is the maker's side, so the taker did the opposite.
            self._trade(msg["product_id"], msg["price"], msg["size"],
                        "buy" if msg["side"] == "sell" else "sell", _seconds(msg["time"]))
        elif msg.get("channel") == "l2_data":
            events = msg["events"]
            if not events:
                self.stats.ignored += 1
            for event in events:
                self._advanced(event, text, ts)
        elif kind == "error":
            self.stats.reject("venue_error", text)
        else:
            self.stats.ignored += 1  # ticker, heartbeat, subscriptions

    def _advanced(self, event: dict, text: str | bytes, ts: float) -> None:
        native = event["product_id"]
        book = self._book_for(native, text)
        if book is None:
            return
        updates = event["updates"]
        if event["type"] == "snapshot":
            book.clear()
            self.state[native] = LIVE
            self.stats.snapshots += 1
        self._changes(native, book, updates, "side", "price_level", "new_quantity", text, ts)

    def _changes(self, native: str, book: L2Book, changes: list, side_key, price_key, size_key,
                 text: str | bytes, ts: float) -> None:
        """Apply [side, price, size] changes (list rows or Advanced Trade dicts)."""
        if self.state[native] != LIVE:
            self.stats.stale_dropped += 1  # before (or instead of) the snapshot: unusable
            return
        try:
            if changes.__class__ is not list:
                raise BadLevel("malformed_level", f"changes are {type(changes).__name__}")
            for ch in changes:
                is_bid = _BID.get(ch[side_key]) if ch.__class__ in (list, dict) else None
                if is_bid is None:
                    raise BadLevel("malformed_level", repr(ch)[:200])
                set_level(book.bids if is_bid else book.asks, ch[price_key], ch[size_key])
        except (BadLevel, LookupError, TypeError) as e:
            self.fault(native, getattr(e, "kind", "malformed_level"), text)
            return
        book.ts = ts
        self.dirty.add(native)
        if self._uncrossed(native, book, text):
            self.stats.updates += 1
