"""Random and adversarial input to every adapter: nothing escapes, no book ever holds a NaN,
non-positive price, non-positive size or a crossed top, and every frame is accounted for
(applied, ignored, dropped as stale, buffered, or counted as rejected)."""

import math

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cobstack.core.book import L2Book
from cobstack.venues.base import LIVE
from cobstack.venues.checksums import kraken as kraken_checksum
from cobstack.venues.checksums import okx as okx_checksum
from cobstack.venues.registry import ADAPTERS, make_adapter

NUMBERS = st.sampled_from(["NaN", "nan", "inf", "-Infinity", "-1", "0", "-0", "1e400", "1e-400",
                           "0.00000000", "1_0", " 1", "", "abc", "100.5", "1.0", "99999999999999999999"])
ODD = st.one_of(NUMBERS, st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                st.lists(st.integers(-2**63, 2**63 - 1), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(-2**63, 2**63 - 1), max_size=2))
VALUE = st.one_of(NUMBERS, ODD)
LEVEL = st.one_of(st.lists(VALUE, min_size=0, max_size=4), VALUE)
LEVELS = st.one_of(st.lists(LEVEL, max_size=4), VALUE)
JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1), st.floats(allow_nan=False),
                              st.text(max_size=8)),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                    max_leaves=12)


def kraken(pair, body_a, body_b, c):
    return [[1, {"as": body_a, "bs": body_b}, "book-10", pair],
            [1, {"a": body_a, "c": c}, "book-10", pair],
            [1, {"a": body_a}, {"b": body_b, "c": c}, "book-10", pair],
            [1, body_a, "trade", pair]]


def binance(sym, a, b, n):
    d = {"e": "depthUpdate", "s": sym, "U": n, "u": n, "pu": n, "b": b, "a": a}
    return [{"stream": "x", "data": d}, {"data": {"e": "aggTrade", "s": sym, "p": n, "q": a, "T": n, "m": b}}]


def coinbase(pid, a, b, n):
    return [{"type": "snapshot", "product_id": pid, "bids": b, "asks": a},
            {"type": "l2update", "product_id": pid, "changes": [["buy", n, n], ["sell", a, b], a], "time": "x"},
            {"type": "match", "product_id": pid, "side": n, "price": n, "size": a, "time": n},
            {"channel": "l2_data", "events": [{"type": "snapshot", "product_id": pid, "updates": a}]}]


def bitstamp(pair, a, b, n):
    return [{"event": "data", "channel": f"diff_order_book_{pair}", "data": {"microtimestamp": n, "bids": b, "asks": a}},
            {"event": "trade", "channel": f"live_trades_{pair}", "data": {"price_str": n, "amount_str": a,
                                                                          "type": b, "microtimestamp": n}}]


def kraken_v2(sym, a, b, n):
    def dicts(levels):  # v2 levels are {"price", "qty"} objects; odd values pass through
        return [{"price": lv[0], "qty": lv[1]} if isinstance(lv, list) and len(lv) >= 2 else lv
                for lv in levels] if isinstance(levels, list) else levels
    return [{"channel": "instrument", "type": "update", "data": {"pairs": [
                {"symbol": sym, "price_precision": n, "qty_precision": n}]}},
            {"channel": "book", "type": "snapshot", "data": [{"symbol": sym, "bids": dicts(b), "asks": dicts(a), "checksum": n}]},
            {"channel": "book", "type": "update", "data": [{"symbol": sym, "bids": dicts(b), "asks": a, "checksum": n}]},
            {"channel": "trade", "type": "update", "data": [{"symbol": sym, "side": n, "price": n, "qty": a, "timestamp": n}]},
            {"method": "subscribe", "result": {"channel": "book", "depth": n, "symbol": sym}, "success": n}]


def okx(inst, a, b, n):
    return [{"arg": {"channel": "books", "instId": inst}, "action": "snapshot",
             "data": [{"asks": a, "bids": b, "checksum": n, "prevSeqId": -1, "seqId": n}]},
            {"arg": {"channel": "books", "instId": inst}, "action": "update",
             "data": [{"asks": a, "bids": b, "checksum": 0, "prevSeqId": 1, "seqId": n}]},
            {"arg": {"channel": "books", "instId": inst}, "action": n, "data": n},
            {"arg": {"channel": "trades", "instId": inst}, "data": [{"instId": inst, "px": n, "sz": a, "side": b, "ts": n}]}]


def bybit(sym, a, b, n):
    return [{"topic": f"orderbook.50.{sym}", "type": "snapshot", "data": {"s": sym, "b": b, "a": a, "u": n}},
            {"topic": f"orderbook.50.{sym}", "type": "delta", "data": {"s": sym, "b": b, "a": a, "u": 2}},
            {"topic": f"orderbook.50.{sym}", "type": n, "data": {"s": sym, "b": b, "a": a, "u": n}},
            {"topic": f"publicTrade.{sym}", "data": [{"s": sym, "p": n, "v": a, "S": b, "T": n}]}]


SHAPES = {"kraken-v1": kraken, "binance": binance, "binance-usdm": binance, "binance-coinm": binance,
          "coinbase": coinbase, "bitstamp": bitstamp, "kraken": kraken_v2, "okx": okx, "bybit": bybit}
NATIVE = {"kraken-v1": "XBT/USD", "binance": "BTCUSDT", "binance-usdm": "BTCUSDT",
          "binance-coinm": "BTCUSD_PERP", "coinbase": "BTC-USD", "bitstamp": "btcusd",
          "kraken": "BTC/USD", "okx": "BTC-USDT", "bybit": "BTCUSDT"}


def crafted_book(bids, asks) -> L2Book:
    book = L2Book("x", "x")
    book.load(bids, asks)
    return book


def seeded(venue):
    """An adapter whose book for NATIVE[venue] is live, so updates reach the apply path."""
    a, n = make_adapter(venue, None), NATIVE[venue]
    bids, asks = [["100.0", "1.0"]], [["101.0", "1.0"]]
    if venue == "kraken-v1":
        a.on_frame(orjson.dumps([1, {"as": [l + ["1"] for l in asks], "bs": [l + ["1"] for l in bids]}, "book-10", n]), 0)
    elif venue == "coinbase":
        a.on_frame(orjson.dumps({"type": "snapshot", "product_id": n, "bids": bids, "asks": asks}), 0)
    elif venue == "bitstamp":
        a.on_rest(f"https://x/api/v2/order_book/{n}/", orjson.dumps({"microtimestamp": "1", "bids": bids, "asks": asks}), 0)
    elif venue == "kraken":
        a.on_frame(orjson.dumps({"channel": "instrument", "type": "snapshot", "data": {"pairs": [
            {"symbol": n, "price_precision": 1, "qty_precision": 1}]}}), 0)
        crc = kraken_checksum(crafted_book(bids, asks))
        a.on_frame(orjson.dumps({"channel": "book", "type": "snapshot", "data": [{
            "symbol": n, "bids": [{"price": 100.0, "qty": 1.0}], "asks": [{"price": 101.0, "qty": 1.0}],
            "checksum": crc}]}), 0)
    elif venue == "okx":
        a.on_frame(orjson.dumps({"arg": {"channel": "books", "instId": n}, "action": "snapshot", "data": [{
            "bids": bids, "asks": asks, "checksum": okx_checksum(crafted_book(bids, asks)),
            "prevSeqId": -1, "seqId": 1}]}), 0)
    elif venue == "bybit":
        a.on_frame(orjson.dumps({"topic": f"orderbook.50.{n}", "type": "snapshot",
                                 "data": {"s": n, "b": bids, "a": asks, "u": 1}}), 0)
    else:
        a.on_rest(f"https://x/depth?symbol={n}", orjson.dumps({"lastUpdateId": 1, "bids": bids, "asks": asks}), 0)
    assert a.state[n] == LIVE
    return a


def accounted(a) -> tuple:
    s = a.stats
    buffered = sum(len(b) for b in getattr(a, "_buffers", {}).values())
    return (s.updates, s.snapshots, s.ignored, s.stale_dropped, sum(s.rejected.values()), s.gaps,
            s.crossed, s.checksum_failures, s.checksums_ok, len(a.trades), buffered)


def check_books(a):
    for native, book in a.books.items():
        for side in (book.bids, book.asks):
            assert side.prices == sorted(side.levels) and len(side.prices) == len(side.levels)
            for lv in side.levels.values():
                assert math.isfinite(lv.price) and math.isfinite(lv.size) and lv.price > 0 and lv.size > 0
                assert isinstance(lv.price_str, str) and float(lv.size_str) == lv.size
        if a.state[native] == LIVE:
            assert not book.is_crossed()
    for t in a.trades:
        assert math.isfinite(t.price) and t.price > 0 and math.isfinite(t.size) and t.size >= 0
        assert t.side in ("buy", "sell") and math.isfinite(t.ts)


def feed_checked(a, text):
    before = accounted(a)
    a.on_frame(text, 1.0)  # would raise out of the test if anything escaped
    assert accounted(a) != before, f"{a.venue}: frame vanished without a trace: {text!r}"[:300]
    check_books(a)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(venue=st.sampled_from(sorted(ADAPTERS)), frames=st.lists(st.one_of(JSON, st.binary(max_size=20)), max_size=5))
def test_random_json_and_bytes_never_escape(venue, frames):
    a = seeded(venue)
    for f in frames:
        feed_checked(a, f if isinstance(f, bytes) else orjson.dumps(f))
        a.on_rest("https://x/api/v3/depth?symbol=BTCUSDT", f if isinstance(f, bytes) else orjson.dumps(f), 1.0)
        check_books(a)


@FAST
@given(venue=st.sampled_from(sorted(ADAPTERS)), a_side=LEVELS, b_side=LEVELS, n=VALUE, other=st.booleans())
def test_adversarial_venue_shaped_frames(venue, a_side, b_side, n, other):
    a = seeded(venue)
    native = NATIVE[venue] if not other else NATIVE[venue].replace("BTC", "ETH").replace("XBT", "ETH").replace("btc", "eth")
    shape = SHAPES[venue]
    args = (native, a_side, b_side, n)
    for frame in shape(*args):
        feed_checked(a, orjson.dumps(frame))
    snap = orjson.dumps({"lastUpdateId": n, "microtimestamp": n, "bids": b_side, "asks": a_side})
    a.on_rest(f"https://x/api/v2/order_book/{native}/?symbol={native}", snap, 2.0)
    check_books(a)
