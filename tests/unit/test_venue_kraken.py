"""Kraken websocket v2 adapter on frames in the documented shapes: instrument precisions,
exact decimals from JSON floats, checksums on snapshots and updates, per-symbol resync."""

import orjson
import pytest

from cobstack.core.book import L2Book
from cobstack.venues.base import LIVE, RESYNC, SYNCING
from cobstack.venues.checksums import kraken as kraken_checksum
from cobstack.venues.kraken import KrakenAdapter, format_number

SYM = "BTC/USD"

# The worked example of Kraken's "Book checksum (WebSocket v2)" guide, as it is on the wire
# (numbers carry the pair's full precision: price 1 decimal, qty 8), and its documented checksum.
DOC_SNAPSHOT = """{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD",
"bids":[{"price":45283.5,"qty":0.10000000},{"price":45283.4,"qty":1.54582015},{"price":45282.1,"qty":0.10000000},
{"price":45281.0,"qty":0.10000000},{"price":45280.3,"qty":1.54592586},{"price":45279.0,"qty":0.07990000},
{"price":45277.6,"qty":0.03310103},{"price":45277.5,"qty":0.30000000},{"price":45277.3,"qty":1.54602737},
{"price":45276.6,"qty":0.15445238}],
"asks":[{"price":45285.2,"qty":0.00100000},{"price":45286.4,"qty":1.54571953},{"price":45286.6,"qty":1.54571109},
{"price":45289.6,"qty":1.54560911},{"price":45290.2,"qty":0.15890660},{"price":45291.8,"qty":1.54553491},
{"price":45294.7,"qty":0.04454749},{"price":45296.1,"qty":0.35380000},{"price":45297.5,"qty":0.09945542},
{"price":45299.5,"qty":0.18772827}],"checksum":3310070434}]}"""


def instrument(symbol=SYM, price_precision=1, qty_precision=8, kind="snapshot") -> str:
    return orjson.dumps({"channel": "instrument", "type": kind, "data": {"assets": [], "pairs": [{
        "symbol": symbol, "base": "BTC", "quote": "USD", "status": "online", "qty_precision": qty_precision,
        "qty_increment": 1e-08, "price_precision": price_precision, "price_increment": 0.1}]}}).decode()


def book_msg(kind, bids, asks, checksum, symbol=SYM) -> str:
    """Levels as (price, qty) JSON numbers, written as the test gives them (raw text)."""
    side = lambda levels: "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"  # noqa: E731
    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":{side(bids)},'
            f'"asks":{side(asks)},"checksum":{checksum},"timestamp":"2023-10-06T17:35:55.440295Z"}}]}}')


def checksum_after(adapter, changes, symbol=SYM) -> int:
    """The checksum Kraken would send after `changes` (is_bid, price text, qty text)."""
    src = adapter.books[symbol]
    ref = L2Book("ref", symbol, src.max_depth)
    ref.load([(lv.price_str, lv.size_str) for lv in src.bids.top(10_000)],
             [(lv.price_str, lv.size_str) for lv in src.asks.top(10_000)])
    for is_bid, p, q in changes:
        ref.update(is_bid, p, q)
    ref.truncate()
    return kraken_checksum(ref)


@pytest.fixture
def live():
    a = KrakenAdapter([SYM, "ETH/USD"], depth=10)
    a.on_frame(instrument(), 0.5)
    a.on_frame(instrument("ETH/USD", 2, 8), 0.5)
    a.on_frame(DOC_SNAPSHOT, 1.0)
    assert a.state[SYM] == LIVE
    return a


def test_documented_snapshot_verifies_with_exact_strings(live):
    assert live.stats.checksums_ok == 1 and live.stats.checksum_failures == 0
    book = live.books[SYM]
    assert (book.best_bid().price_str, book.best_bid().size_str) == ("45283.5", "0.10000000")
    assert book.best_ask().size_str == "0.00100000" and book.best_ask().size == 0.001
    assert [lv.price_str for lv in book.bids.top(4)][-1] == "45281.0"


def test_update_applies_truncates_and_verifies(live):
    changes = [(True, "45284.0", "0.50000000"), (False, "45285.2", "0")]
    c = checksum_after(live, changes)
    live.on_frame(book_msg("update", [(45284.0, 0.5)], [(45285.2, 0)], c), 2.0)
    book = live.books[SYM]
    assert live.stats.checksums_ok == 2 and live.stats.updates == 1 and live.state[SYM] == LIVE
    assert len(book.bids) == 10 and book.bids.top(10)[-1].price_str == "45277.3"  # 45276.6 fell out
    assert book.best_ask().price_str == "45286.4" and SYM in live.dirty


def test_corrupted_level_fails_checksum_and_resubscribes_that_symbol(live):
    live.on_frame(book_msg("snapshot", [(2000.5, 1)], [(2001.5, 1)], _eth_checksum(), "ETH/USD"), 1.0)
    assert live.state["ETH/USD"] == LIVE
    good = checksum_after(live, [(True, "45283.5", "0.20000000")])
    live.on_frame(book_msg("update", [(45283.5, 0.21)], [], good), 2.0)  # qty corrupted in flight
    assert live.stats.checksum_failures == 1 and live.state[SYM] == RESYNC and live.state["ETH/USD"] == LIVE
    sent = [orjson.loads(e[1]) for e in live.outbox]
    assert sent == [{"method": "unsubscribe", "params": {"channel": "book", "symbol": [SYM], "depth": 10}},
                    {"method": "subscribe", "params": {"channel": "book", "symbol": [SYM], "depth": 10,
                                                       "snapshot": True}}]
    live.on_frame(book_msg("update", [(45283.5, 0.2)], [], good), 3.0)  # until the snapshot: dropped
    assert live.stats.stale_dropped == 1 and live.stats.checksum_failures == 1
    live.on_frame(DOC_SNAPSHOT, 4.0)
    assert live.state[SYM] == LIVE


def _eth_checksum() -> int:
    ref = L2Book("ref", "ETH/USD")
    ref.load([("2000.50", "1.00000000")], [("2001.50", "1.00000000")])
    return kraken_checksum(ref)


def test_book_before_precision_stays_syncing_then_resubscribes():
    a = KrakenAdapter([SYM], depth=10)
    a.on_frame(DOC_SNAPSHOT, 1.0)
    assert a.state[SYM] == SYNCING and a.stats.stale_dropped == 1 and not a.outbox
    a.on_frame(instrument(), 2.0)
    assert [orjson.loads(e[1])["method"] for e in a.outbox] == ["unsubscribe", "subscribe"]
    a.on_frame(DOC_SNAPSHOT, 3.0)
    assert a.state[SYM] == LIVE and a.stats.checksums_ok == 1


def test_precision_change_restarts_the_book(live):
    live.outbox.clear()
    live.on_frame(instrument(price_precision=2, kind="update"), 2.0)
    assert live.state[SYM] == SYNCING and len(live.books[SYM].bids) == 0
    assert [orjson.loads(e[1])["method"] for e in live.outbox] == ["unsubscribe", "subscribe"]
    live.outbox.clear()
    live.on_frame(instrument("ETH/USD", 2, 8, kind="update"), 2.0)  # unchanged: nothing to do
    assert not live.outbox and live.state["ETH/USD"] == SYNCING  # (never had a snapshot)


@pytest.mark.parametrize("value, precision, text", [
    (45283.5, 1, "45283.5"), (0.1, 8, "0.10000000"), (45281, 1, "45281.0"), (7, 0, "7"),
    (1e-08, 8, "0.00000001"), (1234567.12345678, 8, "1234567.12345678")])
def test_format_number_restores_the_wire_digits(value, precision, text):
    assert format_number(value, precision) == text


def test_numbers_beyond_float_exactness_are_reparsed_as_decimals():
    a = KrakenAdapter(["SHIB/USD"], depth=10)
    a.on_frame(instrument("SHIB/USD", 8, 5), 1.0)
    # 123456789012.12345 has 17 significant digits: a float cannot hold it.
    ref = L2Book("ref", "SHIB/USD")
    ref.load([("0.00001000", "123456789012.12345")], [("0.00001001", "5.00000")])
    a.on_frame(book_msg("snapshot", [("0.00001000", "123456789012.12345")], [("0.00001001", "5.00000")],
                        kraken_checksum(ref), "SHIB/USD"), 2.0)
    assert a.state["SHIB/USD"] == LIVE and a.stats.checksums_ok == 1
    assert a.books["SHIB/USD"].best_bid().size_str == "123456789012.12345"


def test_more_decimals_than_the_precision_are_rejected(live):
    live.on_frame(book_msg("update", [(45283.55, 1)], [], 0), 2.0)
    assert live.stats.rejected["precision_mismatch"] == 1 and live.state[SYM] == RESYNC


def test_bad_input_is_counted(live):
    live.on_frame(book_msg("update", [(45283.5, -1)], [], 0), 2.0)
    assert live.stats.rejected["negative_size"] == 1
    live.on_frame(book_msg("snapshot", [(1, 1)], [(2, 1)], 0, "XRP/USD"), 2.0)
    assert live.stats.rejected["unknown_instrument"] == 1
    live.on_frame('{"channel":"book","type":"update","data":[{"symbol":"ETH/USD","bids":[{"price":"1"}],"asks":[]}]}', 2.0)
    assert live.stats.rejected["malformed_level"] == 1
    live.on_frame('{"error":"Currency pair not supported","method":"subscribe","success":false}', 2.0)
    assert live.stats.rejected["subscription_error"] == 1


def test_crossed_snapshot_faults(live):
    ref = L2Book("ref", "ETH/USD")
    ref.load([("2002.00", "1.00000000")], [("2001.00", "1.00000000")])
    live.on_frame(book_msg("snapshot", [(2002, 1)], [(2001, 1)], kraken_checksum(ref), "ETH/USD"), 2.0)
    assert live.stats.crossed == 1 and live.state["ETH/USD"] == RESYNC and live.state[SYM] == LIVE


def test_auto_mode_takes_the_depth_from_the_subscription_ack():
    a = KrakenAdapter()
    a.on_frame('{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},'
               '"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}', 0.1)
    a.on_frame(instrument(), 0.2)
    a.on_frame(DOC_SNAPSHOT, 1.0)
    assert a.books[SYM].max_depth == 10 and a.state[SYM] == LIVE


def test_trades_heartbeats_and_subscriptions():
    a = KrakenAdapter([SYM], ws_url="ws://127.0.0.1:1")
    assert a.ws_url() == "ws://127.0.0.1:1/v2"
    a.start()
    subs = [orjson.loads(e[1]) for e in a.outbox]
    assert subs == [{"method": "subscribe", "params": {"channel": "instrument"}},
                    {"method": "subscribe", "params": {"channel": "book", "symbol": [SYM], "depth": 1000,
                                                       "snapshot": True}},
                    {"method": "subscribe", "params": {"channel": "trade", "symbol": [SYM], "snapshot": False}}]
    a.on_frame('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":26492.3,'
               '"qty":0.01,"ord_type":"market","trade_id":4665906,"timestamp":"2023-09-25T07:49:37.708706Z"}]}', 1.0)
    assert [(t.price, t.size, t.side, t.ts) for t in a.trades] == [(26492.3, 0.01, "sell", 1695628177.708706)]
    a.on_frame('{"channel":"heartbeat"}', 1.0)
    a.on_frame('{"method":"pong","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.742648Z"}', 1.0)
    assert a.stats.ignored == 2 and not a.stats.rejected
    with pytest.raises(ValueError, match="10, 25, 100, 500, 1000"):
        KrakenAdapter([SYM], depth=50)
