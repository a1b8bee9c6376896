"""Coinbase level2 adapter: snapshot-before-update, crossed check, resync, trades."""

import orjson

from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.coinbase import CoinbaseAdapter

P = "BTC-USD"


def j(**kw) -> str:
    return orjson.dumps(kw).decode()


def test_snapshot_then_l2update_and_update_before_snapshot_is_not_applied():
    a = CoinbaseAdapter([P])
    a.on_frame(j(type="l2update", product_id=P, changes=[["buy", "1", "1"]], time="2021-01-01T00:00:00Z"), 1.0)
    assert a.stats.stale_dropped == 1 and len(a.books[P].bids) == 0
    a.on_frame(j(type="snapshot", product_id=P, bids=[["100", "1"]], asks=[["101", "2"]]), 1.0)
    a.on_frame(j(type="l2update", product_id=P, changes=[["sell", "101", "0"], ["sell", "102", "3"]],
                 time="2021-01-01T00:00:00Z"), 1.1)
    book = a.books[P]
    assert a.state[P] == LIVE and a.stats.updates == 1 and book.best_ask().price_str == "102"


def test_crossed_book_resyncs_product_by_unsubscribe_subscribe():
    a = CoinbaseAdapter([P, "ETH-USD"])
    for p in (P, "ETH-USD"):
        a.on_frame(j(type="snapshot", product_id=p, bids=[["100", "1"]], asks=[["101", "2"]]), 1.0)
    a.on_frame(j(type="l2update", product_id=P, changes=[["buy", "101.5", "1"]], time="x"), 1.1)
    assert a.stats.crossed == 1 and a.state[P] == RESYNC and a.state["ETH-USD"] == LIVE
    assert [orjson.loads(e[1]) for e in a.outbox] == [
        {"type": "unsubscribe", "product_ids": [P], "channels": ["level2_batch"]},
        {"type": "subscribe", "product_ids": [P], "channels": ["level2_batch"]}]


def test_match_side_is_maker_side_so_taker_is_opposite():
    a = CoinbaseAdapter()
    a.on_frame(j(type="match", product_id=P, side="sell", price="100.5", size="0.1",
                 time="2021-04-17T16:43:37.089723Z"), 1.0)
    t = a.trades[0]
    assert (t.side, t.price, t.size) == ("buy", 100.5, 0.1) and abs(t.ts - 1618677817.089723) < 1e-6


def test_advanced_trade_l2_data_events():
    a = CoinbaseAdapter()
    up = lambda side, p, q: {"side": side, "event_time": "x", "price_level": p, "new_quantity": q}
    a.on_frame(j(channel="l2_data", sequence_num=0, events=[
        {"type": "snapshot", "product_id": P, "updates": [up("bid", "100", "1"), up("offer", "101", "1")]}]), 1.0)
    a.on_frame(j(channel="l2_data", sequence_num=1, events=[
        {"type": "update", "product_id": P, "updates": [up("offer", "101", "0"), up("offer", "103", "2")]}]), 1.1)
    assert a.state[P] == LIVE and a.books[P].best_ask().price_str == "103" and a.stats.snapshots == 1


def test_subscribe_frame_and_live_url():
    a = CoinbaseAdapter([P], channel="level2")
    assert a.ws_url() == "wss://ws-feed.exchange.coinbase.com"
    assert orjson.loads(a.subscribe_frames()[0]) == {"type": "subscribe", "product_ids": [P],
                                                     "channels": ["level2", "matches"]}
