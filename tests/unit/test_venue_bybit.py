"""Bybit adapter on frames in the documented v5 spot shapes: snapshot, u continuity, u == 1
service-restart snapshots, per-symbol resubscribe on a gap, trades and op replies."""

import orjson
import pytest

from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.bybit import BybitAdapter

SYM = "BTCUSDT"

# The orderbook snapshot example from Bybit's v5 docs (websocket/public/orderbook).
DOC_SNAPSHOT = {"topic": "orderbook.50.BTCUSDT", "type": "snapshot", "ts": 1672304484978,
                "data": {"s": "BTCUSDT", "b": [["16493.50", "0.006"], ["16493.00", "0.100"]],
                         "a": [["16611.00", "0.029"], ["16612.00", "0.213"]],
                         "u": 18521288, "seq": 7961638724},
                "cts": 1672304484976}


def delta(u, bids=(), asks=(), sym=SYM, depth=50) -> str:
    return orjson.dumps({"topic": f"orderbook.{depth}.{sym}", "type": "delta", "ts": 1672304484978,
                         "data": {"s": sym, "b": list(bids), "a": list(asks), "u": u, "seq": 7961638725},
                         "cts": 1672304484976}).decode()


def snapshot(u, bids, asks, sym=SYM, depth=50) -> str:
    return orjson.dumps({"topic": f"orderbook.{depth}.{sym}", "type": "snapshot", "ts": 1,
                         "data": {"s": sym, "b": bids, "a": asks, "u": u, "seq": 1}}).decode()


@pytest.fixture
def live():
    a = BybitAdapter([SYM, "ETHUSDT"], depth=50)
    a.on_frame(orjson.dumps(DOC_SNAPSHOT), 1.0)
    assert a.state[SYM] == LIVE and a.books[SYM].seq == 18521288
    return a


def test_documented_snapshot_then_deltas_apply_in_order(live):
    live.on_frame(delta(18521289, bids=[["16493.50", "0"], ["16493.20", "1.5"]]), 2.0)
    live.on_frame(delta(18521290, asks=[["16600.00", "0.5"]]), 3.0)
    book = live.books[SYM]
    assert live.stats.updates == 2 and live.stats.gaps == 0
    assert (book.best_bid().price_str, book.best_bid().size_str) == ("16493.20", "1.5")
    assert book.best_ask().price_str == "16600.00" and book.seq == 18521290
    assert SYM in live.dirty


def test_gap_resubscribes_that_symbol_only(live):
    live.on_frame(snapshot(7, [["2000", "1"]], [["2001", "1"]], sym="ETHUSDT"), 1.0)
    live.on_frame(delta(18521290, bids=[["16493.40", "1"]]), 2.0)  # 18521289 lost
    assert live.stats.gaps == 1 and live.state[SYM] == RESYNC and len(live.books[SYM].bids) == 0
    assert live.state["ETHUSDT"] == LIVE
    assert [orjson.loads(e[1]) for e in live.outbox] == [
        {"op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]},
        {"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]}]
    live.on_frame(delta(18521291), 3.0)  # before the new snapshot: dropped, not a second gap
    assert live.stats.stale_dropped == 1 and live.stats.gaps == 1
    live.on_frame(snapshot(18521300, [["16490", "1"]], [["16491", "1"]]), 4.0)
    assert live.state[SYM] == LIVE


def test_duplicate_delta_is_a_gap(live):
    live.on_frame(delta(18521289, bids=[["16493.40", "1"]]), 2.0)
    live.on_frame(delta(18521289, bids=[["16493.40", "1"]]), 2.0)
    assert live.stats.gaps == 1 and live.state[SYM] == RESYNC


def test_u_equal_1_is_a_service_restart_snapshot(live):
    """Docs: "Occasionally you'll receive u=1, which is a snapshot ... overwrite your local
    orderbook" - whatever its type says."""
    live.on_frame(delta(1, bids=[["16000", "2"]], asks=[["16001", "3"]]), 2.0)
    book = live.books[SYM]
    assert live.stats.gaps == 0 and live.stats.snapshots == 2 and book.seq == 1
    assert [lv.price_str for lv in book.bids.top(5)] == ["16000"]
    live.on_frame(delta(2, asks=[["16002", "1"]]), 3.0)
    assert live.stats.updates == 1 and len(book.asks) == 2


def test_book_is_kept_to_the_subscribed_depth():
    a = BybitAdapter()  # auto mode: the depth comes from the topic
    a.on_frame(snapshot(5, [[str(100 - i), "1"] for i in range(50)], [[str(101 + i), "1"] for i in range(50)]), 1.0)
    a.on_frame(delta(6, bids=[["100.5", "1"]]), 2.0)
    bids = a.books[SYM].bids
    assert a.books[SYM].max_depth == 50 and len(bids) == 50 and bids.top(50)[-1].price_str == "52"


def test_crossing_delta_and_bad_levels_fault(live):
    live.on_frame(delta(18521289, bids=[["16700", "1"]]), 2.0)
    assert live.stats.crossed == 1 and live.state[SYM] == RESYNC
    live.on_frame(snapshot(3, [["2000", "1"]], [["2001", "1"]], sym="ETHUSDT"), 1.0)
    live.on_frame(delta(4, asks=[["2002", "-1"]], sym="ETHUSDT"), 1.0)
    assert live.stats.rejected["negative_size"] == 1 and live.state["ETHUSDT"] == RESYNC


def test_bad_input_is_counted(live):
    live.on_frame(delta("x"), 2.0)
    assert live.stats.rejected["malformed_update_id"] == 1
    live.on_frame(delta(5, sym="SOLUSDT"), 2.0)
    assert live.stats.rejected["unknown_instrument"] == 1
    live.on_frame('{"success":false,"ret_msg":"error:handler not found","conn_id":"x","op":"subscribe"}', 2.0)
    assert live.stats.rejected["venue_error"] == 1
    live.on_frame("[1,2", 2.0)
    assert live.stats.rejected["unparseable:JSONDecodeError"] == 1


def test_trades_pong_and_subscriptions():
    symbols = [f"C{i}USDT" for i in range(6)]
    a = BybitAdapter(symbols, ws_url="ws://127.0.0.1:1")
    assert a.ws_url() == "ws://127.0.0.1:1/v5/public/spot" and orjson.loads(a.app_ping) == {"op": "ping"}
    a.start()
    subs = [orjson.loads(e[1]) for e in a.outbox]
    assert [len(s["args"]) for s in subs] == [10, 2]  # spot takes at most 10 topics per request
    assert subs[0]["args"][0] == "orderbook.200.C0USDT" and subs[1]["args"][-1] == "publicTrade.C5USDT"
    a.on_frame(orjson.dumps({"topic": "publicTrade.C0USDT", "type": "snapshot", "ts": 1672304486868, "data": [
        {"T": 1672304486865, "s": "C0USDT", "S": "Buy", "v": "0.001", "p": "16578.50", "L": "PlusTick",
         "i": "20f43950-d8dd-5b31-9112-a178eb6023af", "BT": False}]}), 1.0)
    assert [(t.price, t.size, t.side, t.ts) for t in a.trades] == [(16578.5, 0.001, "buy", 1672304486.865)]
    a.on_frame('{"success":true,"ret_msg":"pong","conn_id":"0970e817","req_id":"","op":"ping"}', 1.0)
    a.on_frame('{"success":true,"ret_msg":"subscribe","conn_id":"2324d924","op":"subscribe"}', 1.0)
    assert a.stats.ignored == 2 and not a.stats.rejected
    with pytest.raises(ValueError, match=r"\(1, 50, 200\)"):
        BybitAdapter([SYM], depth=25)
