"""Kraken v1 adapter on hand-built frames: snapshot, updates, checksum, truncation, resync."""

import orjson
import pytest

from cobstack.core.book import L2Book
from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.checksums import kraken
from cobstack.venues.kraken_v1 import KrakenV1Adapter

PAIR = "XBT/USD"


def frame(*parts, channel="book-10", pair=PAIR, chan_id=42) -> str:
    return orjson.dumps([chan_id, *parts, channel, pair]).decode()


def snapshot(adapter, asks, bids, depth=10):
    adapter.on_frame(frame({"as": [[p, s, "1.0"] for p, s in asks],
                            "bs": [[p, s, "1.0"] for p, s in bids]}, channel=f"book-{depth}"), 1.0)


def crc_after(adapter, changes) -> str:
    """The checksum Kraken would send after `levels` are applied to a copy of the book."""
    src = adapter.books[PAIR]
    ref = L2Book("ref", PAIR, src.max_depth)
    for lv in src.bids.top(10_000):
        ref.update(True, lv.price_str, lv.size_str)
    for lv in src.asks.top(10_000):
        ref.update(False, lv.price_str, lv.size_str)
    for side, p, s in changes:
        ref.update(side == "b", p, s)
    ref.truncate()
    return str(kraken(ref))


@pytest.fixture
def live():
    a = KrakenV1Adapter([PAIR], depth=10)
    snapshot(a, [("101.0", "1.0"), ("102.0", "2.0")], [("100.0", "1.5"), ("99.0", "3.0")])
    assert a.state[PAIR] == LIVE
    return a


def test_snapshot_then_checksummed_update_applies_and_verifies(live):
    c = crc_after(live, [("a", "101.0", "0.5")])
    live.on_frame(frame({"a": [["101.0", "0.5", "2.0"]], "c": c}), 2.0)
    assert live.stats.checksums_ok == 1 and live.stats.checksum_failures == 0
    assert live.books[PAIR].best_ask().size_str == "0.5"
    assert live.state[PAIR] == LIVE and PAIR in live.dirty


def test_both_sides_in_one_frame_as_two_dicts_checksum_covers_both(live):
    both = crc_after(live, [("a", "101.5", "1.0"), ("b", "100.5", "2.0")])
    asks_only = crc_after(live, [("a", "101.5", "1.0")])
    live.on_frame(frame({"a": [["101.5", "1.0", "2.0"]]}, {"b": [["100.5", "2.0", "2.0"]], "c": both}), 2.0)
    assert live.stats.checksums_ok == 1 and live.books[PAIR].best_bid().price_str == "100.5"
    live.on_frame(frame({"a": [["101.5", "1.0", "3.0"]]}, {"b": [["100.5", "2.0", "3.0"]], "c": asks_only}), 3.0)
    assert live.stats.checksum_failures == 1


def test_checksum_mismatch_resyncs_that_pair_by_resubscribe_without_dropping_connection(live):
    live.on_frame(frame({"b": [["100.0", "9.9", "2.0"]], "c": "12345"}), 2.0)
    assert live.stats.checksum_failures == 1 and live.stats.resyncs == 1
    assert live.state[PAIR] == RESYNC and len(live.books[PAIR].bids) == 0
    sent = [orjson.loads(e[1]) for e in live.outbox]
    assert [e[0] for e in live.outbox] == ["ws", "ws"]
    assert [m["event"] for m in sent] == ["unsubscribe", "subscribe"]
    assert sent[1] == {"event": "subscribe", "pair": [PAIR], "subscription": {"name": "book", "depth": 10}}
    # updates until the new snapshot are dropped and counted; the snapshot makes it live again
    live.on_frame(frame({"b": [["100.0", "1.0", "3.0"]], "c": "1"}), 3.0)
    assert live.stats.stale_dropped == 1 and live.stats.checksum_failures == 1
    snapshot(live, [("101.0", "1.0")], [("100.0", "1.0")])
    assert live.state[PAIR] == LIVE


def test_book_is_truncated_to_subscribed_depth_after_each_update():
    a = KrakenV1Adapter([PAIR], depth=10)
    snapshot(a, [(f"{101 + i}.0", "1.0") for i in range(10)], [(f"{100 - i}.0", "1.0") for i in range(10)])
    c = crc_after(a, [("b", "100.5", "1.0")])
    a.on_frame(frame({"b": [["100.5", "1.0", "2.0"]], "c": c}), 2.0)
    bids = a.books[PAIR].bids
    assert len(bids) == 10 and bids.top(10)[-1].price_str == "92.0"  # 91.0 fell out of scope
    assert a.stats.checksums_ok == 1


def test_republish_entry_is_applied_as_an_insert(live):
    c = crc_after(live, [("a", "101.0", "0"), ("a", "103.0", "4.0")])
    live.on_frame(frame({"a": [["101.0", "0.00000000", "2.0"], ["103.0", "4.0", "2.0", "r"]], "c": c}), 2.0)
    assert live.stats.checksums_ok == 1
    assert [lv.price_str for lv in live.books[PAIR].asks.top(5)] == ["102.0", "103.0"]


def test_crossing_update_faults_crossed(live):
    live.on_frame(frame({"b": [["105.0", "1.0", "2.0"]]}), 2.0)
    assert live.stats.crossed == 1 and live.state[PAIR] == RESYNC


def test_bad_level_is_counted_by_kind_and_resyncs(live):
    live.on_frame(frame({"a": [["NaN", "1.0", "2.0"]]}), 2.0)
    assert live.stats.rejected["non_finite"] == 1 and live.state[PAIR] == RESYNC


def test_unknown_pair_rejected_when_instruments_are_given(live):
    live.on_frame(frame({"a": [["1.0", "1.0", "2.0"]]}, pair="ETH/USD"), 2.0)
    assert live.stats.rejected["unknown_instrument"] == 1 and "ETH/USD" not in live.books


def test_trades_taker_side_and_time():
    a = KrakenV1Adapter()
    a.on_frame(orjson.dumps([7, [["354.1", "0.5", "1618678142.5", "s", "l", ""],
                                 ["354.2", "0.1", "1618678143.0", "b", "m", ""]], "trade", "XMR/USD"]), 1.0)
    assert [(t.side, t.price, t.size, t.ts) for t in a.trades] == [
        ("sell", 354.1, 0.5, 1618678142.5), ("buy", 354.2, 0.1, 1618678143.0)]
    assert a.books == {}  # trades alone do not make a book


def test_subscriptions_and_depth_validation():
    a = KrakenV1Adapter([PAIR, "ETH/USD"], depth=25, ws_url="ws://127.0.0.1:1")
    assert a.ws_url() == "ws://127.0.0.1:1"
    a.start()
    subs = [orjson.loads(e[1]) for e in a.outbox]
    assert subs[0] == {"event": "subscribe", "pair": [PAIR, "ETH/USD"], "subscription": {"name": "book", "depth": 25}}
    assert subs[1]["subscription"] == {"name": "trade"}
    with pytest.raises(ValueError, match="10, 25, 100, 500, 1000"):
        KrakenV1Adapter([PAIR], depth=30)


def test_heartbeats_and_tickers_are_ignored_not_rejected():
    a = KrakenV1Adapter()
    a.on_frame('{"event":"heartbeat"}', 1.0)
    a.on_frame(orjson.dumps([1, {"a": ["1", 1, "1"]}, "ticker", "XBT/USD"]), 1.0)
    assert a.stats.ignored == 2 and not a.stats.rejected
