"""Binance spot, USDⓈ-M and COIN-M futures: `<sym>@depth@100ms` diffs + REST depth snapshots.

One sync procedure, three documented variants ("How to manage a local order book correctly"):

    spot          drop diffs with u <= lastUpdateId; the first applied diff has
                  U <= lastUpdateId+1 <= u; afterwards each diff's U == previous u + 1
    usdm / coinm  drop diffs with u < lastUpdateId; the first applied diff has
                  U <= lastUpdateId <= u; afterwards each diff's pu == previous u

Both are "first diff brackets lastUpdateId + offset" with offset 1 (spot) or 0 (futures),
so the markets differ only in a small `Market` record. Any break is a gap: the instrument is
cleared and a new snapshot requested, while later diffs are buffered for it.

The diff streams and the REST snapshot (limit=1000) are depth-limited differently: diffs
touch levels beyond the snapshot's 1000, so levels deep in the book may be stale or missing.
`reconcile()` compares the top of a live book with a fresh snapshot so ingest can measure it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import orjson

from ..core.book import L2Book
from .base import RestSyncAdapter


@dataclass(frozen=True, slots=True)
class Market:
    venue: str
    ws: str
    rest: str
    depth_path: str
    offset: int  # the first applied diff must satisfy U <= lastUpdateId + offset <= u
    prev_field: str | None  # futures chain diffs by "pu"; spot by U == previous u + 1
    weight_per_minute: float  # documented REST request-weight budget
    snapshot_weight: float  # weight of depth?limit=1000


SPOT = Market("binance", "wss://stream.binance.com:9443", "https://api.binance.com",
              "/api/v3/depth", 1, None, 6000.0, 50.0)
USDM = Market("binance-usdm", "wss://fstream.binance.com", "https://fapi.binance.com",
              "/fapi/v1/depth", 0, "pu", 2400.0, 20.0)
COINM = Market("binance-coinm", "wss://dstream.binance.com", "https://dapi.binance.com",
               "/dapi/v1/depth", 0, "pu", 2400.0, 20.0)
SNAPSHOT_LIMIT = 1000
TRADE_EVENTS = ("aggTrade", "trade")


class BinanceAdapter(RestSyncAdapter):
    market = SPOT
    venue = SPOT.venue
    event_time = True
    live_ws_url = SPOT.ws
    live_rest_url = SPOT.rest
    rest_weight_per_minute = SPOT.weight_per_minute
    snapshot_weight = SPOT.snapshot_weight

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        m = cls.market
        cls.venue, cls.live_ws_url, cls.live_rest_url = m.venue, m.ws, m.rest
        cls.rest_weight_per_minute, cls.snapshot_weight = m.weight_per_minute, m.snapshot_weight

    # -- endpoints ------------------------------------------------------------------------

    def ws_url(self) -> str:
        if not self.books:
            raise ValueError(f"{self.venue}: no instruments to stream; pass instruments=[...]")
        streams = []
        for native in self.books:
            s = native.lower()
            streams += (f"{s}@depth@100ms", f"{s}@aggTrade")
        return f"{self.ws_base}/stream?streams={'/'.join(streams)}"

    def subscribe_frames(self) -> list[str]:
        return []  # the combined-stream URL is the subscription

    def snapshot_url(self, native: str) -> str:
        return f"{self.rest_base}{self.market.depth_path}?symbol={native}&limit={SNAPSHOT_LIMIT}"

    def instrument_from_url(self, url: str) -> str:
        symbols = parse_qs(urlsplit(url).query).get("symbol")
        if not symbols:
            raise ValueError(f"{self.venue}: no symbol= in snapshot URL {url!r}")
        return symbols[0]

    # -- frames ---------------------------------------------------------------------------

    def _frame(self, text: str | bytes, ts: float) -> None:
        msg = orjson.loads(text)
        data = msg.get("data", msg)  # combined stream wraps the payload; a raw stream does not
        event = data.get("e")
        if event == "depthUpdate":
            native = data["s"]
            book = self.books.get(native) or (self._track(native) if native.__class__ is str else None)
            if book is None:
                self.stats.reject("unknown_instrument", text)
                return
            self._diff(native, book, data, text)
        elif event in TRADE_EVENTS:
            # m: the buyer is the maker, so the taker sold.
            self._trade(data["s"], data["p"], data["q"], "sell" if data["m"] else "buy",
                        data["T"] / 1000.0)
        else:
            self.stats.ignored += 1  # bookTicker, kline, subscription replies

    def _apply_diff(self, native: str, book: L2Book, diff: dict, sample: object) -> None:
        first, last = diff["U"], diff["u"]
        if first.__class__ is not int or last.__class__ is not int:
            self.stats.reject("malformed_update_id", sample)
            return
        off = self.market.offset
        if native in self._bridged:
            prev = diff[self.market.prev_field] if self.market.prev_field else first - 1
            if prev != book.seq:
                self.fault(native, "gap", sample)
                self._diff(native, book, diff, sample)  # may bridge the next snapshot
                return
        elif last < book.seq + off:
            self.stats.stale_dropped += 1  # already contained in the snapshot
            return
        elif first > book.seq + off:
            self.fault(native, "gap", sample)  # snapshot older than the buffered diffs
            self._diff(native, book, diff, sample)
            return
        self._bridged.add(native)
        book.seq = last
        event_ms = diff.get("E")
        if event_ms.__class__ is int:
            book.ts = event_ms / 1000.0
        self.dirty.add(native)
        if self._apply(native, book, diff["b"], diff["a"], sample):
            self.stats.updates += 1

    def _rest(self, url: str, text: str | bytes, ts: float, key: str | None) -> None:
        native = key or self.instrument_from_url(url)
        book = self.books.get(native) or self._track(native)
        if book is None:
            self.stats.reject("unknown_instrument", url)
            return
        snap = orjson.loads(text)
        seq = snap["lastUpdateId"]
        if seq.__class__ is not int:
            self.stats.reject("malformed_update_id", text)
            return
        self._snapshot(native, book, seq, snap["bids"], snap["asks"], text)


class BinanceUsdmAdapter(BinanceAdapter):
    market = USDM


class BinanceCoinmAdapter(BinanceAdapter):
    market = COINM


def reconcile(book: L2Book, snapshot_text: str | bytes, levels: int = 20) -> dict:
    """Compare the top `levels` of a live book with a REST depth snapshot (pure).

    Differences are expected when the snapshot's lastUpdateId differs from the book's last
    applied id; persistent mismatches at equal ids mean drift. Sizes compare as decimals."""
    snap = orjson.loads(snapshot_text)
    scratch = L2Book(book.venue, book.instrument)
    scratch.load(((lv[0], lv[1]) for lv in snap["bids"]), ((lv[0], lv[1]) for lv in snap["asks"]))
    out = {"instrument": book.instrument, "levels": levels, "book_update_id": book.seq,
           "snapshot_update_id": snap.get("lastUpdateId")}
    for name, mine, theirs in (("bids", book.bids, scratch.bids), ("asks", book.asks, scratch.asks)):
        a = {lv.price: lv.size for lv in mine.top(levels)}
        b = {lv.price: lv.size for lv in theirs.top(levels)}
        out[f"{name}_mismatched"] = sum(1 for p in a.keys() | b.keys() if a.get(p) != b.get(p))
        best_a, best_b = mine.best(), theirs.best()
        out[f"best_{name[:-1]}_match"] = (best_a.price if best_a else None) == (best_b.price if best_b else None)
    out["in_sync"] = out["bids_mismatched"] == 0 and out["asks_mismatched"] == 0
    return out
