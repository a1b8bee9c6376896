"""The simulated market and the venue wire formats, without sockets.

Each wire format is checked the way a real client would use it: rebuild a book from the
frames with the venue's documented rules and compare it with the market's own book."""

from __future__ import annotations

import math
import re
from decimal import Decimal

import numpy as np
import orjson
import pytest

from cobstack.core.book import L2Book
from cobstack.sim.faults import Faults
from cobstack.sim.market import BookDelta, Market, Trade, fmt_units
from cobstack.sim.venues import WIRES
from cobstack.sim.venues.wire import Conn
from cobstack.venues.checksums import kraken as kraken_checksum

VENUES = ["binance", "coinbase", "kraken-v1"]
SYMBOLS = ["BTC-USD", "ETH-USD"]
FORMATS = {  # venue -> (price, size) string patterns, as the venues print them
    "binance": (r"\d+\.\d{8}", r"\d+\.\d{8}"),
    "coinbase": (r"\d+\.\d{2}", r"\d+\.\d{8}"),
    "kraken-v1": (r"\d+\.\d{5}", r"\d+\.\d{8}"),
}


def _run(market: Market, steps: int) -> list[dict]:
    return [market.step() for _ in range(steps)]


def test_fmt_units():
    assert fmt_units(6000001, 2) == "60000.01"
    assert fmt_units(5, 8) == "0.00000005"
    assert fmt_units(42, 0) == "42"


def test_same_seed_same_events_other_seed_other_events():
    a = _run(Market(VENUES, SYMBOLS, seed=3), 300)
    b = _run(Market(VENUES, SYMBOLS, seed=3), 300)
    c = _run(Market(VENUES, SYMBOLS, seed=4), 300)
    assert a == b
    assert a != c
    assert sum(len(step[v]) for step in a for v in VENUES) > 1000


def test_unknown_venue_or_symbol_is_a_clear_error():
    with pytest.raises(ValueError, match="no simulated venue 'nyse'"):
        Market(["nyse"], SYMBOLS)
    with pytest.raises(ValueError, match="no simulated symbol 'DOGE-USD'"):
        Market(VENUES, ["DOGE-USD"])


def test_books_never_cross_stay_on_grid_and_ids_are_contiguous():
    market = Market(VENUES, SYMBOLS, seed=11)
    last_id = {key: book.update_id for key, book in market.books.items()}
    last_trade = dict.fromkeys(market.books, 0)
    for _ in range(1500):
        for venue, events in market.step().items():
            price_re, size_re = (re.compile(p) for p in FORMATS[venue])
            for ev in events:
                key = (venue, ev.symbol)
                if isinstance(ev, Trade):
                    assert ev.trade_id == last_trade[key] + 1
                    last_trade[key] = ev.trade_id
                    assert Decimal(ev.size) > 0 and price_re.fullmatch(ev.price)
                    continue
                assert ev.first_id == last_id[key] + 1 and ev.last_id == ev.first_id + len(ev.changes) - 1
                last_id[key] = ev.last_id
                for _, price, size in ev.changes:
                    assert price_re.fullmatch(price) and size_re.fullmatch(size)
        for (venue, symbol), book in market.books.items():
            assert book.bids.best() < book.asks.best(), f"{venue} {symbol} crossed"
            assert len(book.bids) >= 10 and len(book.asks) >= 10
            assert min(book.bids.lots.values()) > 0 and min(book.asks.lots.values()) > 0
    tick = Decimal(market.book("kraken-v1", "BTC-USD").spec.ticks["BTC"])
    for p, _, _ in market.book("kraken-v1", "BTC-USD").top(True, 200):
        assert Decimal(p) % tick == 0
    assert all(n > 100 for n in last_trade.values())


def test_rate_multiplies_messages_and_keeps_books_sound():
    """A bench's high rate gives many more events, not a broken or runaway book."""
    counts = {}
    for rate in (1.0, 20.0):
        market = Market(["coinbase"], ["BTC-USD"], seed=2, rate=rate)
        counts[rate] = sum(len(market.step()["coinbase"]) for _ in range(400))
        book = market.book("coinbase", "BTC-USD")
        assert book.bids.best() < book.asks.best() and len(book.bids) >= 75 and len(book.asks) >= 75
        assert abs(book.mid() / market.fair("BTC-USD") - 1) < 1e-3
    assert counts[20.0] > 10 * counts[1.0]


def test_imbalance_and_taker_flow_predict_the_next_mid_moves():
    """Top-of-book imbalance now correlates with the mid change over the next 0.5 s, on
    every venue, and net taker flow moves the price: the structure a model can learn."""
    market = Market(VENUES, ["BTC-USD"], seed=5)
    steps, horizon = 5000, 25
    mid = {v: np.empty(steps) for v in VENUES}
    imbalance = {v: np.empty(steps) for v in VENUES}
    flow = np.zeros(steps)
    for i in range(steps):
        events = market.step()
        for v in VENUES:
            book = market.book(v, "BTC-USD")
            bid, ask = book.bids.lots[book.bids.best()], book.asks.lots[book.asks.best()]
            imbalance[v][i] = (bid - ask) / (bid + ask)
            mid[v][i] = book.mid()
            flow[i] += sum(float(e.size) * (1 if e.taker_buy else -1) for e in events[v] if isinstance(e, Trade))
    n = steps - horizon
    for v in VENUES:
        future = mid[v][horizon:] - mid[v][:-horizon]
        corr = np.corrcoef(imbalance[v][:n], future)[0, 1]
        t_stat = corr * math.sqrt((n - 2) / (1 - corr**2))
        assert corr > 0.15 and t_stat > 10, f"{v}: imbalance->future mid corr {corr:.3f} (t={t_stat:.1f})"
    window = np.convolve(flow, np.ones(horizon), "valid")[: n - horizon + 1]  # flow over the last 0.5 s
    fair_future = mid["binance"][2 * horizon - 1:] - mid["binance"][horizon - 1:-horizon]
    assert np.corrcoef(window[: len(fair_future)], fair_future)[0, 1] > 0.1


# -- wire formats ----------------------------------------------------------------------------

def _wire(venue: str, seed: int = 9):
    market = Market([venue], ["BTC-USD"], seed=seed)
    return market, WIRES[venue](market, ["BTC-USD"])


def _levels(book: L2Book, is_bid: bool, n: int) -> list[tuple[str, str]]:
    return [(lv.price_str, lv.size_str) for lv in book.side(is_bid).top(n)]


def test_binance_snapshot_and_diffs_rebuild_the_market_book():
    market, wire = _wire("binance")
    for _ in range(7):  # the snapshot is taken mid-batch, as it usually is
        wire.publish(market.step()["binance"])
        wire.tick(market.t)
    status, snap = wire.rest("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "1000"})
    assert status == 200
    book = L2Book("binance", "BTCUSDT")
    book.load(snap["bids"], snap["asks"])
    last_u, pushes, aggtrades = snap["lastUpdateId"], 0, 0
    for _ in range(500):
        outs = wire.publish(market.step()["binance"]) + wire.tick(market.t)
        for out in outs:
            if out.key == "btcusdt@aggTrade":
                aggtrades += 1
                continue
            if out.key != "btcusdt@depth@100ms":
                continue
            ev = out.msg
            if ev["u"] <= last_u:
                continue  # older than the snapshot: dropped, as Binance documents
            assert ev["U"] <= last_u + 1 <= ev["u"]
            for p, q in ev["b"]:
                book.update(True, p, q)
            for p, q in ev["a"]:
                book.update(False, p, q)
            last_u, pushes = ev["u"], pushes + 1
        if outs and any(o.key == "btcusdt@depth@100ms" for o in outs):
            mb = market.book("binance", "BTC-USD")
            assert last_u == mb.update_id
            assert _levels(book, True, 1000) == [(p, s) for p, s, _ in mb.top(True, 1000)]
            assert _levels(book, False, 1000) == [(p, s) for p, s, _ in mb.top(False, 1000)]
    assert pushes == 100 and aggtrades > 50  # one push per 100 ms of simulated time


def test_binance_rest_and_subscribe_errors():
    _, wire = _wire("binance")
    assert wire.rest("/api/v3/depth", {"symbol": "FOOUSDT"})[0] == 400
    assert wire.rest("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "0"})[0] == 400
    assert len(wire.rest("/api/v3/depth", {"symbol": "BTCUSDT"})[1]["bids"]) == 100
    conn = Conn(1, "/ws", {})
    assert wire.receive(conn, '{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms"],"id":1}') == [
        {"result": None, "id": 1}]
    assert conn.channels == {"btcusdt@depth@100ms"}
    assert wire.receive(conn, '{"method":"LIST_SUBSCRIPTIONS","id":2}') == [
        {"result": ["btcusdt@depth@100ms"], "id": 2}]
    assert wire.receive(conn, '{"method":"SUBSCRIBE","params":["foo@bar"],"id":3}')[0]["error"]["code"] == 2
    assert wire.receive(conn, "{not json")[0]["error"]["code"] == 3
    combined = Conn(2, "/stream", {"streams": "btcusdt@depth@100ms/btcusdt@aggTrade"})
    wire.open(combined)
    assert combined.channels == {"btcusdt@depth@100ms", "btcusdt@aggTrade"}
    assert orjson.loads(wire.encode(combined.form, "btcusdt@aggTrade", {"e": 1})) == {
        "stream": "btcusdt@aggTrade", "data": {"e": 1}}


@pytest.mark.parametrize("depth", [10, 25])
def test_kraken_updates_follow_the_documented_book_rules_and_checksums(depth):
    market, wire = _wire("kraken-v1")
    conn = Conn(1, "/", {})
    sub = {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": depth}}
    status, snapshot = wire.receive(conn, orjson.dumps(sub).decode())
    assert status["status"] == "subscribed" and status["channelName"] == f"book-{depth}"
    book = L2Book("kraken-v1", "XBT/USD", depth)  # the client's book, built independently
    book.load([lv[:2] for lv in snapshot[1]["bs"]], [lv[:2] for lv in snapshot[1]["as"]])
    checked = republished = 0
    for _ in range(600):
        for out in wire.publish(market.step()["kraken-v1"]):
            if out.key != f"book-{depth}:XBT/USD":
                continue
            msg = out.msg
            assert msg[-2:] == [f"book-{depth}", "XBT/USD"] and msg[0] == status["channelID"]
            for part in msg[1:-2]:
                for key, is_bid in (("a", False), ("b", True)):
                    for level in part.get(key, ()):
                        republished += level[3:] == ["r"]
                        book.update(is_bid, level[0], level[1])
            book.truncate()
            assert int(msg[-3]["c"]) == kraken_checksum(book)
            checked += 1
        mb = market.book("kraken-v1", "BTC-USD")
        assert _levels(book, True, depth) == [(p, s) for p, s, _ in mb.top(True, depth)]
        assert _levels(book, False, depth) == [(p, s) for p, s, _ in mb.top(False, depth)]
    assert checked > 500 and republished > 20


def test_kraken_control_frames():
    _, wire = _wire("kraken-v1")
    conn = Conn(7, "/", {})
    assert wire.open(conn)[0]["event"] == "systemStatus"
    assert wire.receive(conn, '{"event":"ping","reqid":42}') == [{"event": "pong", "reqid": 42}]
    bad_pair = wire.receive(conn, '{"event":"subscribe","pair":["XBT/FOO"],"subscription":{"name":"book"}}')
    assert bad_pair[0]["status"] == "error" and "XBT/FOO" in bad_pair[0]["errorMessage"]
    bad_depth = wire.receive(conn, '{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"book","depth":7}}')
    assert bad_depth[0]["status"] == "error"
    trade = wire.receive(conn, '{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}')
    assert trade[0]["status"] == "subscribed" and conn.channels == {"trade:XBT/USD"}
    again = wire.receive(conn, '{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}')
    assert again[0]["errorMessage"] == "Already subscribed"
    gone = wire.receive(conn, '{"event":"unsubscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}')
    assert gone[0]["status"] == "unsubscribed" and not conn.channels
    assert wire.receive(conn, "[1,")[0]["event"] == "error"


def test_coinbase_snapshot_and_l2updates_rebuild_the_market_book():
    market, wire = _wire("coinbase")
    conn = Conn(1, "/", {})
    replies = wire.receive(conn, orjson.dumps(
        {"type": "subscribe", "product_ids": ["BTC-USD"], "channels": ["level2_batch", "matches"]}).decode())
    assert replies[0] == {"type": "subscriptions", "channels": [
        {"name": "level2_batch", "product_ids": ["BTC-USD"]}, {"name": "matches", "product_ids": ["BTC-USD"]}]}
    snapshot = replies[1]
    book = L2Book("coinbase", "BTC-USD")
    book.load(snapshot["bids"], snapshot["asks"])
    sequences = []
    for _ in range(300):
        for out in wire.publish(market.step()["coinbase"]):
            msg = out.msg
            if msg["type"] == "match":
                assert msg["side"] in ("buy", "sell") and msg["time"].endswith("Z")
                sequences.append(msg["sequence"])
                continue
            assert msg["type"] == "l2update"
            for side, p, s in msg["changes"]:
                book.update(side == "buy", p, s)
    mb = market.book("coinbase", "BTC-USD")
    assert _levels(book, True, 500) == [(p, s) for p, s, _ in mb.top(True, 500)]
    assert _levels(book, False, 500) == [(p, s) for p, s, _ in mb.top(False, 500)]
    assert len(sequences) > 20 and sequences == sorted(set(sequences))
    replies = wire.receive(conn, '{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["matches"]}')
    assert conn.channels == {"level2:BTC-USD"} and len(replies) == 1
    err = wire.receive(conn, '{"type":"subscribe","product_ids":["BTC-EUR"],"channels":["level2"]}')
    assert err[0]["type"] == "error" and "BTC-EUR" in err[0]["reason"]


def test_corruptions_change_a_copy_and_leave_the_original():
    market, wire = _wire("kraken-v1")
    wire.receive(Conn(1, "/", {}), '{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"book"}}')
    outs = []
    while not outs:
        outs = [o for o in wire.publish(market.step()["kraken-v1"]) if o.key.startswith("book")]
    msg = outs[0].msg
    original = orjson.dumps(msg)
    assert wire.corrupt_checksum(msg)[-3]["c"] != msg[-3]["c"]
    assert wire.corrupt_level(msg, 12345) != msg
    assert orjson.dumps(msg) == original


def test_faults_validate_and_draw_deterministically():
    a, b = Faults(7, "binance"), Faults(7, "binance")
    for f in (a, b):
        f.update({"drop_frames": 0.3})
    assert [a.draw("drop_frames") for _ in range(200)] == [b.draw("drop_frames") for _ in range(200)]
    assert 30 < a.counts["drop_frames"] < 90
    for bad in ({"drop_frames": 2}, {"nonsense": 1}, {"geo_block": "yes"}, {"stall": -1}):
        with pytest.raises(ValueError):
            a.update(bad)
    now = [100.0]
    f = Faults(7, "kraken-v1", clock=lambda: now[0])
    f.update({"stall": 2.0})
    assert f.stalled()
    now[0] = 102.5
    assert not f.stalled()
    f.update({"rate_limit": 1.0, "retry_after": 3})
    assert f.rest_refusal(handshake=False)[:2] == (429, {"Retry-After": "3"})
    assert f.rest_refusal(handshake=True) is None
    f.update({"geo_block": True})
    assert f.rest_refusal(handshake=True)[0] == 451
