"""The simulated wire formats of bitstamp, binance futures, okx, bybit and kraken v2, without
sockets. Each is checked as a client following the venue's documented rules would use it: a
book rebuilt from its frames must equal the market's own book, every sequence number must
chain and every checksum must verify."""

from __future__ import annotations

import json
from decimal import Decimal

import orjson
import pytest

from cobstack.core.book import L2Book
from cobstack.core.symbols import known_venues
from cobstack.sim.market import Market
from cobstack.sim.venues import WIRES
from cobstack.sim.venues.wire import BOOK, Conn
from cobstack.venues.checksums import kraken as kraken_checksum
from cobstack.venues.checksums import okx as okx_checksum

SYMBOLS = ["BTC-USD", "ETH-USD"]


def _wire(venue: str, seed: int = 11):
    market = Market([venue], SYMBOLS, seed=seed)
    return market, WIRES[venue](market, SYMBOLS)


def _step(market: Market, wire, venue: str) -> list:
    return wire.publish(market.step()[venue]) + wire.tick(market.t)


def _levels(book: L2Book, is_bid: bool, n: int = 10_000) -> list[tuple[str, str]]:
    return [(lv.price_str, lv.size_str) for lv in book.side(is_bid).top(n)]


def _market_levels(market: Market, venue: str, symbol: str, is_bid: bool, n: int = 10_000, qty=None):
    top = market.book(venue, symbol).top(is_bid, n)
    return [(p, qty(p, s) if qty else s) for p, s, _ in top]


def _apply(book: L2Book, bids, asks) -> None:
    for p, s, *_ in bids:
        book.update(True, p, s)
    for p, s, *_ in asks:
        book.update(False, p, s)


def test_every_known_venue_is_simulated():
    assert sorted(WIRES) == known_venues()


# -- bitstamp --------------------------------------------------------------------------------

def test_bitstamp_rest_book_and_diffs_align_by_microtimestamp():
    market, wire = _wire("bitstamp")
    conn = Conn(1, "/", {})
    for channel in ("diff_order_book_btcusd", "live_trades_btcusd"):
        reply = wire.receive(conn, orjson.dumps({"event": "bts:subscribe", "data": {"channel": channel}}).decode())
        assert reply == [{"event": "bts:subscription_succeeded", "channel": channel, "data": {}}]
    buffered = [o.msg for _ in range(5) for o in _step(market, wire, "bitstamp") if o.key == "diff_order_book_btcusd"]
    before = len(buffered)
    status, snap = wire.rest("/api/v2/order_book/btcusd/", {})
    assert status == 200 and snap["microtimestamp"].isdigit()
    book = L2Book("bitstamp", "btcusd")
    book.load(snap["bids"], snap["asks"])
    last, dropped, applied, trades = int(snap["microtimestamp"]), 0, 0, []
    for _ in range(300):
        for out in _step(market, wire, "bitstamp"):
            if out.key == "live_trades_btcusd":
                trades.append(out.msg["data"])
            elif out.key == "diff_order_book_btcusd":
                buffered.append(out.msg)
        for msg in buffered:  # the documented rule: drop what the snapshot already holds
            micros = int(msg["data"]["microtimestamp"])
            if micros <= int(snap["microtimestamp"]):
                dropped += 1
                continue
            assert micros > last and msg["event"] == "data"
            _apply(book, msg["data"]["bids"], msg["data"]["asks"])
            last, applied = micros, applied + 1
        buffered.clear()
        assert _levels(book, True) == _market_levels(market, "bitstamp", "BTC-USD", True)
        assert _levels(book, False) == _market_levels(market, "bitstamp", "BTC-USD", False)
    assert before >= 3 and dropped == before and applied >= 200
    assert trades and {t["type"] for t in trades} == {0, 1}
    assert all(t["price_str"].isdigit() and float(t["amount_str"]) == t["amount"] for t in trades)  # whole-dollar BTC


def test_bitstamp_control_frames_and_errors():
    _, wire = _wire("bitstamp")
    conn = Conn(1, "/", {})
    assert wire.receive(conn, '{"event":"bts:heartbeat"}')[0]["data"] == {"status": "success"}
    assert wire.receive(conn, '{"event":"bts:subscribe","data":{"channel":"diff_order_book_foousd"}}')[0][
        "event"] == "bts:error"
    wire.receive(conn, '{"event":"bts:subscribe","data":{"channel":"live_trades_ethusd"}}')
    gone = wire.receive(conn, '{"event":"bts:unsubscribe","data":{"channel":"live_trades_ethusd"}}')
    assert gone[0]["event"] == "bts:unsubscription_succeeded" and not conn.channels
    assert wire.rest("/api/v2/order_book/foousd/", {})[0] == 404
    assert wire.receive(conn, "{nope")[0]["event"] == "bts:error"


# -- binance futures ---------------------------------------------------------------------------

@pytest.mark.parametrize("venue,native,path", [("binance-usdm", "BTCUSDT", "/fapi/v1/depth"),
                                               ("binance-coinm", "BTCUSD_PERP", "/dapi/v1/depth")])
def test_binance_futures_sync_by_pu(venue, native, path):
    market, wire = _wire(venue)
    stream = native.lower() + "@depth@100ms"
    for _ in range(7):  # the snapshot is taken mid-batch
        _step(market, wire, venue)
    assert wire.rest(path, {"symbol": native, "limit": "7"})[0] == 400
    status, snap = wire.rest(path, {"symbol": native, "limit": "1000"})
    assert status == 200 and {"E", "T"} <= snap.keys()
    book = L2Book(venue, native)
    book.load(snap["bids"], snap["asks"])
    qty = (lambda p, s: wire.qty(native, p, s))
    last_u, pushes, trades = None, 0, []
    for _ in range(400):
        outs = _step(market, wire, venue)
        trades += [o.msg for o in outs if o.kind != BOOK and o.key == native.lower() + "@aggTrade"]
        for ev in (o.msg for o in outs if o.key == stream):
            assert ev["T"] == ev["E"] and ev["s"] == native
            if last_u is None:
                if ev["u"] < snap["lastUpdateId"]:
                    continue  # already in the snapshot
                assert ev["U"] <= snap["lastUpdateId"] <= ev["u"]  # the documented first event
            else:
                assert ev["pu"] == last_u
            _apply(book, ev["b"], ev["a"])
            last_u, pushes = ev["u"], pushes + 1
        if any(o.key == stream for o in outs):
            assert _levels(book, True) == _market_levels(market, venue, "BTC-USD", True, qty=qty)
            assert _levels(book, False) == _market_levels(market, venue, "BTC-USD", False, qty=qty)
    assert pushes == 80 and trades and all("M" not in t for t in trades)
    if venue == "binance-coinm":
        assert snap["pair"] == "BTCUSD" and ev["ps"] == "BTCUSD"
        sizes = [s for _, s in _levels(book, True, 50)] + [t["q"] for t in trades]
        assert all(s.isdigit() and int(s) >= 1 for s in sizes)  # contracts


def test_coinm_contracts_are_usd_face_value():
    _, wire = _wire("binance-coinm")
    assert wire.qty("BTCUSD_PERP", "60000.0", "0.01000000") == "6"  # $600 = 6 x $100
    assert wire.qty("ETHUSD_PERP", "3000.00", "0.00100000") == "1"  # $3: a resting level is >= 1
    assert wire.qty("ETHUSD_PERP", "3000.00", "0.00000000") == "0"


# -- okx -------------------------------------------------------------------------------------

def test_okx_books_chain_seq_ids_and_checksums_verify():
    market, wire = _wire("okx")
    conn = Conn(1, "/ws/v5/public", {})
    for _ in range(3):  # subscribe between pushes: the snapshot holds part of the next update
        _step(market, wire, "okx")
    replies = wire.receive(conn, '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},'
                                 '{"channel":"trades","instId":"BTC-USDT"}]}')
    assert replies[0] == {"event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}, "connId": "00000001"}
    snap = replies[1]
    assert snap["action"] == "snapshot" and replies[2]["arg"]["channel"] == "trades"
    data = snap["data"][0]
    book = L2Book("okx", "BTC-USDT", 400)
    book.load([lv[:2] for lv in data["bids"]], [lv[:2] for lv in data["asks"]])
    assert data["prevSeqId"] == -1 and data["checksum"] == okx_checksum(book)
    seq, checked, trades = data["seqId"], 0, 0
    for _ in range(300):
        for out in _step(market, wire, "okx"):
            if out.key == "trades:BTC-USDT":
                trades += out.msg["data"][0]["side"] in ("buy", "sell")
            if out.key != "books:BTC-USDT":
                continue
            data = out.msg["data"][0]
            assert out.msg["action"] == "update" and data["prevSeqId"] == seq and data["seqId"] > seq
            _apply(book, data["bids"], data["asks"])
            assert data["checksum"] == okx_checksum(book)
            seq, checked = data["seqId"], checked + 1
            assert _levels(book, True) == _market_levels(market, "okx", "BTC-USD", True)
            assert _levels(book, False) == _market_levels(market, "okx", "BTC-USD", False)
    assert checked == 60 and trades > 20  # one push per 100 ms


def test_okx_control_frames():
    _, wire = _wire("okx")
    conn = Conn(3, "/ws/v5/public", {})
    assert wire.receive(conn, "ping") == ["pong"]
    err = wire.receive(conn, '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-FOO"}]}')
    assert err[0]["event"] == "error" and err[0]["code"] == "60018"
    assert wire.receive(conn, "{bad")[0]["code"] == "60012"
    wire.receive(conn, '{"op":"subscribe","args":[{"channel":"trades","instId":"ETH-USDT"}]}')
    assert conn.channels == {"trades:ETH-USDT"}
    assert wire.receive(conn, '{"op":"unsubscribe","args":[{"channel":"trades","instId":"ETH-USDT"}]}')[0][
        "event"] == "unsubscribe" and not conn.channels


# -- bybit -----------------------------------------------------------------------------------

@pytest.mark.parametrize("depth", [50, 200])
def test_bybit_deltas_keep_the_top_n_without_truncation(depth):
    market, wire = _wire("bybit")
    conn = Conn(1, "/v5/public/spot", {})
    topic = f"orderbook.{depth}.BTCUSDT"
    replies = wire.receive(conn, orjson.dumps({"op": "subscribe", "args": [topic, "publicTrade.BTCUSDT"],
                                               "req_id": "a"}).decode())
    assert replies[0]["success"] and replies[0]["req_id"] == "a" and replies[0]["op"] == "subscribe"
    snap = replies[1]
    assert snap["type"] == "snapshot" and snap["topic"] == topic
    book = L2Book("bybit", "BTCUSDT")
    book.load(snap["data"]["b"], snap["data"]["a"])
    u, deltas, trades = snap["data"]["u"], 0, 0
    for _ in range(300):
        for out in _step(market, wire, "bybit"):
            if out.key == "publicTrade.BTCUSDT":
                trades += out.msg["data"][0]["S"] in ("Buy", "Sell")
            if out.key != topic:
                continue
            msg = out.msg
            assert msg["type"] == "delta" and msg["data"]["u"] == u + 1
            _apply(book, msg["data"]["b"], msg["data"]["a"])
            u, deltas = msg["data"]["u"], deltas + 1
            assert _levels(book, True) == _market_levels(market, "bybit", "BTC-USD", True, depth)
            assert _levels(book, False) == _market_levels(market, "bybit", "BTC-USD", False, depth)
    assert deltas > (250 if depth == 50 else 25) and trades > 20


def test_bybit_control_frames():
    _, wire = _wire("bybit")
    conn = Conn(2, "/v5/public/spot", {})
    pong = wire.receive(conn, '{"op":"ping","req_id":"7"}')[0]
    assert pong["ret_msg"] == "pong" and pong["req_id"] == "7" and pong["success"]
    for bad in ('{"op":"subscribe","args":["orderbook.7.BTCUSDT"]}', '{"op":"subscribe","args":["orderbook.50.FOO"]}',
                '{"op":"nope"}', "[1"):
        assert wire.receive(conn, bad)[0]["success"] is False
    wire.receive(conn, '{"op":"subscribe","args":["publicTrade.ETHUSDT"]}')
    wire.receive(conn, '{"op":"unsubscribe","args":["publicTrade.ETHUSDT"]}')
    assert not conn.channels


# -- kraken v2 -------------------------------------------------------------------------------

def _decimal_frame(text: str) -> dict:
    """Parse as Kraken's v2 guide says: numbers as decimals, keeping every printed digit."""
    return json.loads(text, parse_float=Decimal)


@pytest.mark.parametrize("depth", [10, 25])
def test_kraken_v2_book_checksums_with_instrument_precision(depth):
    market, wire = _wire("kraken")
    conn = Conn(1, "/v2", {})
    assert wire.open(conn)[0]["channel"] == "status"
    ack, instruments = wire.receive(conn, '{"method":"subscribe","params":{"channel":"instrument"},"req_id":1}')
    assert ack["success"] and ack["req_id"] == 1
    pairs = {p["symbol"]: p for p in _decimal_frame(instruments)["data"]["pairs"]}
    assert pairs["BTC/USD"]["price_precision"] == 1 and pairs["ETH/USD"]["price_precision"] == 2
    prec = pairs["BTC/USD"]

    def fmt(level: dict) -> tuple[str, str]:  # the client formats with the instrument's precision
        return f"{level['price']:.{prec['price_precision']}f}", f"{level['qty']:.{prec['qty_precision']}f}"

    sub = {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": depth}}
    ack, snap_text = wire.receive(conn, orjson.dumps(sub).decode())
    assert ack["result"] == {"channel": "book", "symbol": "BTC/USD", "depth": depth, "snapshot": True}
    assert '"qty":0.' in snap_text or '"qty":1' in snap_text  # bare numbers, not strings
    snap = _decimal_frame(snap_text)["data"][0]
    book = L2Book("kraken", "BTC/USD", depth)
    book.load([fmt(lv) for lv in snap["bids"]], [fmt(lv) for lv in snap["asks"]])
    assert snap["checksum"] == kraken_checksum(book)
    checked = 0
    for _ in range(300):
        for out in _step(market, wire, "kraken"):
            if out.key != f"book-{depth}:BTC/USD":
                continue
            data = _decimal_frame(wire.encode("", out.key, out.msg))["data"][0]
            _apply(book, [fmt(lv) for lv in data["bids"]], [fmt(lv) for lv in data["asks"]])
            book.truncate()
            assert data["checksum"] == kraken_checksum(book) and data["timestamp"].endswith("Z")
            checked += 1
        assert _levels(book, True) == _market_levels(market, "kraken", "BTC-USD", True, depth)
        assert _levels(book, False) == _market_levels(market, "kraken", "BTC-USD", False, depth)
    assert checked > 250


def test_kraken_v2_control_frames_and_trades():
    market, wire = _wire("kraken")
    conn = Conn(4, "/v2", {})
    pong = wire.receive(conn, '{"method":"ping","req_id":9}')[0]
    assert pong["method"] == "pong" and pong["req_id"] == 9
    bad = wire.receive(conn, '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/FOO"]}}')[0]
    assert bad["success"] is False and "BTC/FOO" in bad["error"]
    assert wire.receive(conn, '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":7}}')[
        0]["success"] is False
    sub = '{"method":"subscribe","params":{"channel":"trade","symbol":["ETH/USD"]}}'
    assert wire.receive(conn, sub)[0]["success"] and wire.receive(conn, sub)[0]["error"] == "Already subscribed"
    trades = []
    while not trades:
        trades = [o for o in _step(market, wire, "kraken") if o.key == "trade:ETH/USD"]
    trade = _decimal_frame(wire.encode("", trades[0].key, trades[0].msg))["data"][0]
    assert trade["side"] in ("buy", "sell") and isinstance(trade["price"], Decimal)
    gone = wire.receive(conn, sub.replace("subscribe", "unsubscribe"))[0]
    assert gone["success"] and not conn.channels
    assert wire.heartbeat() == {"channel": "heartbeat"}


# -- fault hooks -------------------------------------------------------------------------------

@pytest.mark.parametrize("venue,has_checksum", [("bitstamp", False), ("binance-usdm", False),
                                                ("binance-coinm", False), ("okx", True), ("bybit", False),
                                                ("kraken", True)])
def test_corruptions_change_a_copy_and_leave_the_original(venue, has_checksum):
    market, wire = _wire(venue)
    conn = Conn(1, wire.ws_paths[0], {})
    subscribe = {  # book subscriptions where the book channel exists only once subscribed
        "bybit": '{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}',
        "kraken": '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]}}',
    }
    if venue in subscribe:
        wire.receive(conn, subscribe[venue])
    books = []
    while not books:
        books = [o.msg for o in _step(market, wire, venue) if o.kind == BOOK]
    msg = books[0]
    original = wire.encode("", "", msg)
    assert wire.corrupt_level(msg, 12345) != msg
    assert (wire.corrupt_checksum(msg) is not None) == has_checksum
    if has_checksum:
        assert wire.corrupt_checksum(msg) != msg
    assert wire.encode("", "", msg) == original
