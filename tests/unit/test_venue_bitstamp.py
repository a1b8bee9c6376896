"""Bitstamp: diff/snapshot alignment by microtimestamp, order check, trades, endpoints."""

import orjson

from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.bitstamp import BitstampAdapter

P = "btcusd"


def d(micros, bids=(), asks=()) -> str:
    return orjson.dumps({"event": "data", "channel": f"diff_order_book_{P}", "data": {
        "timestamp": str(micros // 10**6), "microtimestamp": str(micros),
        "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]}}).decode()


def snap(micros) -> str:
    return orjson.dumps({"timestamp": "1", "microtimestamp": str(micros),
                         "bids": [["100.0", "1.0"]], "asks": [["101.0", "1.0"]]}).decode()


def test_diffs_buffered_until_snapshot_and_older_ones_dropped():
    a = BitstampAdapter([P], rest_url="http://127.0.0.1:3")
    a.on_frame(d(1000, bids=[["99.0", "1.0"]]), 1.0)
    a.on_frame(d(2000, bids=[["100.0", "4.0"]]), 1.0)
    assert a.outbox == [("http", "http://127.0.0.1:3/api/v2/order_book/btcusd/", P)]
    a.on_rest("https://www.bitstamp.net/api/v2/order_book/btcusd", snap(1500), 1.1)  # key from URL
    assert a.stats.stale_dropped == 1 and a.stats.updates == 1
    assert a.state[P] == LIVE and a.books[P].best_bid().size_str == "4.0" and len(a.books[P].bids) == 1


def test_repeated_or_reordered_diff_is_a_gap():
    a = BitstampAdapter([P])
    a.on_frame(d(2000), 1.0)
    a.on_rest("x", snap(1500), 1.1, P)
    a.on_frame(d(3000), 1.2)
    a.on_frame(d(3000), 1.3)
    assert a.stats.gaps == 1 and a.state[P] == RESYNC


def test_trades_and_subscriptions():
    a = BitstampAdapter([P])
    a.on_frame(orjson.dumps({"event": "trade", "channel": f"live_trades_{P}", "data": {
        "price_str": "3805.44", "amount_str": "0.0792", "type": 1, "microtimestamp": "1641343699596000"}}), 1.0)
    assert [(t.side, t.price, t.ts) for t in a.trades] == [("sell", 3805.44, 1641343699.596)]
    assert [orjson.loads(f)["data"]["channel"] for f in a.subscribe_frames()] == [
        "diff_order_book_btcusd", "live_trades_btcusd"]
    a.on_rest("https://www.bitstamp.net/api/v2/ticker/btcusd/", snap(1), 1.0)
    assert a.stats.rejected["unparseable_rest:ValueError"] == 1
