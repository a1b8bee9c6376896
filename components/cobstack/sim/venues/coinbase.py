"""Coinbase Exchange websocket feed wire format (ws-feed.exchange.coinbase.com).

Served on the websocket root path `/`:
  subscribe    {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2_batch", "matches"]}
               (channels may also be {"name": ..., "product_ids": [...]}; "level2" is accepted too)
               -> {"type": "subscriptions", "channels": [{"name", "product_ids"}, ...]}
               -> {"type": "snapshot", "product_id", "bids": [[p, s], ...], "asks": [...]} per new level2
               -> {"type": "last_match", ...} per new matches subscription, once a trade happened
  l2update     {"type": "l2update", "product_id", "changes": [["buy"|"sell", p, s], ...], "time"}
  match        {"type": "match", "trade_id", "maker_order_id", "taker_order_id", "side" (the MAKER's
                side), "size", "price", "product_id", "sequence", "time"}
  unsubscribe  same shape as subscribe -> subscriptions
  errors       {"type": "error", "message": "Failed to subscribe", "reason": ...}
"""

from __future__ import annotations

import copy
import uuid
import zlib
from datetime import datetime, timezone

import orjson

from ..market import BookDelta, Trade
from .wire import BOOK, TRADE, Conn, Out, Wire, bump_size

CHANNELS = {"level2": "level2", "level2_batch": "level2", "matches": "matches"}  # name -> feed


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(reason: str) -> dict:
    return {"type": "error", "message": "Failed to subscribe", "reason": reason}


class Coinbase(Wire):
    venue = "coinbase"
    ws_paths = ("/",)

    def __init__(self, market, symbols):
        super().__init__(market, symbols)
        self.sequence = dict.fromkeys(self.books, 0)  # per product, one per event like the real feed
        self.last_match: dict[str, dict] = {}

    def receive(self, conn: Conn, text: str) -> list[object]:
        try:
            req = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            return [{"type": "error", "message": "Malformed JSON", "reason": str(e)}]
        kind = req.get("type") if isinstance(req, dict) else None
        if kind not in ("subscribe", "unsubscribe"):
            return [{"type": "error", "message": "Failed to subscribe",
                     "reason": f"type {kind!r} is not subscribe or unsubscribe"}]
        wanted = self._requested(req)
        if isinstance(wanted, dict):
            return [wanted]
        names = conn.state.setdefault("names", {})  # channel name as the client spelled it -> products
        for name, pid in wanted:
            if kind == "subscribe":
                names.setdefault(name, set()).add(pid)
            else:
                names.get(name, set()).discard(pid)
        before = set(conn.channels)
        conn.channels = {f"{CHANNELS[n]}:{pid}" for n, pids in names.items() for pid in pids}
        replies: list[object] = [{"type": "subscriptions", "channels": [
            {"name": n, "product_ids": sorted(pids)} for n, pids in sorted(names.items()) if pids]}]
        for key in sorted(conn.channels - before):
            feed, pid = key.split(":", 1)
            book = self.books[pid]
            if feed == "level2":
                replies.append({"type": "snapshot", "product_id": pid,
                                "bids": [[p, s] for p, s, _ in book.top(True, len(book.bids))],
                                "asks": [[p, s] for p, s, _ in book.top(False, len(book.asks))]})
            elif pid in self.last_match:
                replies.append({**self.last_match[pid], "type": "last_match"})
        return replies

    def _requested(self, req: dict) -> list[tuple[str, str]] | dict:
        """(channel name, product id) pairs of a (un)subscribe request, or an error frame."""
        default = req.get("product_ids", [])
        pairs = []
        for ch in req.get("channels") or []:
            name, pids = (ch.get("name"), ch.get("product_ids", default)) if isinstance(ch, dict) else (ch, default)
            if name not in CHANNELS:
                return _error(f"{name} is not a valid channel (simulated: {', '.join(CHANNELS)})")
            if not isinstance(pids, list) or not pids:
                return _error(f"channel {name} needs product_ids")
            for pid in pids:
                if pid not in self.books:
                    return _error(f"{pid} is not a valid product")
                pairs.append((name, pid))
        return pairs or _error("no channels requested")

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        outs = []
        for ev in events:
            pid = self.natives[ev.symbol]
            self.sequence[pid] += 1
            if isinstance(ev, BookDelta):
                outs.append(Out(f"level2:{pid}", {
                    "type": "l2update", "product_id": pid, "time": iso(ev.t),
                    "changes": [["buy" if b else "sell", p, s] for b, p, s in ev.changes]}, BOOK))
                continue
            order = zlib.crc32(pid.encode()) << 64 | ev.trade_id << 1
            match = {"type": "match", "trade_id": ev.trade_id,
                     "maker_order_id": str(uuid.UUID(int=order)), "taker_order_id": str(uuid.UUID(int=order | 1)),
                     "side": "sell" if ev.taker_buy else "buy", "size": ev.size, "price": ev.price,
                     "product_id": pid, "sequence": self.sequence[pid], "time": iso(ev.t)}
            self.last_match[pid] = match
            outs.append(Out(f"matches:{pid}", match, TRADE))
        return outs

    def corrupt_level(self, msg: dict, pick: int) -> dict:
        bad = copy.deepcopy(msg)
        change = bad["changes"][pick % len(bad["changes"])]
        change[2] = bump_size(change[2])
        return bad
