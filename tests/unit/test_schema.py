"""Snapshot, trade and health records: round trips, versioning, and garbage rejected."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobstack.core import schema
from cobstack.core.book import L2Book
from cobstack.core.consolidate import VenueView
from cobstack.core.pipeline import PipelineConfig, SymbolPipeline
from cobstack.core.schema import (SchemaError, Snapshot, decode, decode_health, decode_snapshot,
                                  decode_trade, encode, encode_health, encode_snapshot,
                                  encode_trade, health_record, trade_record, venue_health)
from cobstack.venues.base import Trade, VenueStats

NOW_NS = 1_772_323_200 * 10**9  # 2026-03-01T00:00:00Z


def view(venue, bids, asks, quote="USD", live=True):
    book = L2Book(venue, "BTC-USD")
    book.load([(str(p), str(s)) for p, s in bids], [(str(p), str(s)) for p, s in asks])
    book.ts = NOW_NS / 1e9 - 0.05
    return VenueView(venue, book, quote, live, 0.05, "live" if live else "resync")


@pytest.fixture(scope="module")
def snap() -> dict:
    p = SymbolPipeline("BTC-USD", ["binance", "coinbase", "kraken"],
                       PipelineConfig(buckets_per_side=5, tensor_buckets=4))
    views = [view("binance", [(100005, 1), (99990.5, 2)], [(100011, 1.5)], quote="USDT"),
             view("coinbase", [(100004, 3)], [(100012.25, 2)]),
             view("kraken", [(100003, 1)], [(100013, 1)], live=False)]
    trades = [Trade("coinbase", "BTC-USD", 100004.0, 0.25, "sell", NOW_NS / 1e9 + 0.01)]
    return p.snapshot(views, trades, NOW_NS + 10**8, recv_ns=NOW_NS + 9 * 10**7)


def test_snapshot_round_trip(snap):
    data = encode_snapshot(snap)
    s = decode_snapshot(data)
    assert isinstance(s, Snapshot) and s.v == schema.SCHEMA_VERSION
    assert (s.symbol, s.seq, s.ts, s.recv_ts) == ("BTC-USD", 1, NOW_NS + 10**8, NOW_NS + 9 * 10**7)
    assert s.source_ts == round((NOW_NS / 1e9 - 0.05) * 1e9)
    assert s.venues == ["binance", "coinbase", "kraken"]
    kraken = s.status[2]
    assert (kraken.included, kraken.reason, kraken.state) == (False, "not live (resync)", "resync")
    assert s.status[0].quote == "USDT" and s.status[0].rate_source == "par"
    assert s.ladder.bids[0] == (100005.0, 1.0, [1.0, 0.0, 0.0])
    assert s.ladder.bids[0].sizes == [1.0, 0.0, 0.0]
    assert [r.price for r in s.buckets.asks] == [100020.0, 100030.0, 100040.0, 100050.0, 100060.0]
    assert s.buckets.asks[0].total == 3.5 and s.buckets.size == 10.0
    assert s.features.mid == snap["features"]["mid"] == (100005 + 100011) / 2
    # top 1: 1 vs 1.5; top 5 and 10: every level, 1+3+2 vs 1.5+2
    assert s.features.imbalance == {1: pytest.approx(-0.2), 5: pytest.approx(2.5 / 9.5),
                                    10: pytest.approx(2.5 / 9.5)}
    assert s.profile.poc == 100000.0 and s.profile.levels == [(100000.0, 0.0, 0.25)]
    assert s.profile.session_start == NOW_NS
    assert s.tensor.dtype == np.float32 and s.tensor.shape == (8, 2, 3)
    assert np.array_equal(s.tensor, snap["tensor"])
    assert len(data) < 4000
    without = {k: v for k, v in snap.items() if k != "recv_ts"}
    assert decode_snapshot(encode(without)).recv_ts is None  # the one optional field


def test_trade_and_health_round_trip():
    t = Trade("binance", "BTCUSDT", 100005.5, 0.002, "buy", 1772323200.123456)
    rec = decode_trade(encode_trade("BTC-USD", t))  # quote read from the native instrument
    assert (rec.symbol, rec.venue, rec.price, rec.quote, rec.size, rec.side) == (
        "BTC-USD", "binance", 100005.5, "USDT", 0.002, "buy")
    assert rec.ts == 1772323200123456000
    assert decode_trade(encode_trade("BTC-USD", t, quote="USDC")).quote == "USDC"
    with pytest.raises(SchemaError, match="cannot split instrument 'weird'.*pass quote="):
        encode_trade("BTC-USD", Trade("binance", "weird", 1.0, 1.0, "buy", 1.0))
    with pytest.raises(SchemaError, match="trade from a: bad price, size or ts"):
        encode_trade("BTC-USD", Trade("a", "x", 1.0, 1.0, "buy", float("nan")), "USD")

    stats = VenueStats("kraken", messages=10, resyncs=2, gaps=1, checksum_failures=1)
    stats.rejected["non_finite"] += 3
    row = venue_health("kraken", "live", {"XBT/USD": "live", "ETH/USD": "resync"},
                       stats.as_dict(), lag_ms=12.5, last_message_age_ms=40.0)
    h = decode_health(encode_health(health_record(NOW_NS, [row], "ok")))
    v = h.venues[0]
    assert (v.venue, v.state, v.resyncs, v.checksum_failures) == ("kraken", "resync", 2, 1)
    assert v.rejected == {"non_finite": 3} and v.instruments["XBT/USD"] == "live"
    assert (h.bus.state, h.bus.detail, h.ts) == ("ok", "", NOW_NS)
    down = venue_health("okx", "connecting", {"BTC-USDT": "syncing"}, stats.as_dict(), None, None)
    assert down["state"] == "connecting"
    assert venue_health("okx", "live", {"BTC-USDT": "live"}, stats.as_dict(), 1.0, 2.0)[
        "state"] == "live"


def test_previous_version_is_upgraded_and_older_or_newer_refused(monkeypatch, snap):
    old = msgpack.unpackb(encode(snap))

    def upgrade(record):  # the shape a real v1 -> v2 change would take
        return {**record, "v": 2, "symbol": record["symbol"].lower()}

    monkeypatch.setattr(schema, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(schema, "UPGRADES", {1: upgrade})
    s = decode_snapshot(msgpack.packb(old, use_bin_type=True))
    assert (s.v, s.symbol) == (2, "btc-usd")
    with pytest.raises(SchemaError, match="v0, too old for this reader .v2 and v1."):
        decode(msgpack.packb({**old, "v": 0}, use_bin_type=True))
    with pytest.raises(SchemaError, match="writers emit schema v2"):
        encode(snap)  # a v1 dict from an old writer


def test_newer_version_is_refused_with_advice(snap):
    newer = {**msgpack.unpackb(encode(snap)), "v": schema.SCHEMA_VERSION + 1}
    with pytest.raises(SchemaError, match="newer than this reader .*upgrade this consumer"):
        decode(msgpack.packb(newer, use_bin_type=True))


def _mutated(snap, path, value):
    record = msgpack.unpackb(encode(snap))
    node = record
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return msgpack.packb(record, use_bin_type=True)


@pytest.mark.parametrize("path, value, message", [
    (("ladder",), KeyError, "book: missing field 'ladder'"),
    (("features", "mid"), "1.0", r"book.features.mid: expected a number, got str '1.0'"),
    (("ladder", "bids", 0, 2), [1.0], r"book.ladder.bids\[0\].sizes: expected 3 per-venue"),
    (("ladder", "bids", 0), [1.0, 2.0], r"book.ladder.bids\[0\]: expected \[price, total"),
    (("status", 0, "live"), 1, r"book.status\[0\].live: expected true/false"),
    (("status",), [], "one row per venue"),
    (("tensor", "data"), b"\x00" * 7, "book.tensor.data: expected 192 bytes"),
    (("tensor", "shape"), [8, 2, 2], r"book.tensor.shape: expected \[2K, 2, 3\]"),
    (("tensor", "dtype"), "float64", "book.tensor.dtype"),
    (("features", "imbalance"), {"x": 1.0}, "level counts"),
    (("profile", "levels"), [[1.0, 2.0]], r"expected \[price, buy, sell\]"),
    (("seq",), 1.5, "book.seq: expected an integer"),
    (("recv_ts",), 1.7e9, "book.recv_ts: expected an integer"),
    (("kind",), "orders", "unknown record kind 'orders'"),
    (("v",), "1", "no integer schema version"),
])
def test_malformed_snapshots_raise_schema_error_naming_the_field(snap, path, value, message):
    with pytest.raises(SchemaError, match=message):
        decode_snapshot(_mutated(snap, path, value))


@pytest.mark.parametrize("data, message", [
    (b"", "not a msgpack record"),
    (b"\xc1", "not a msgpack record"),
    (msgpack.packb([1, 2]), "expected a msgpack map, got list"),
    (msgpack.packb({"v": 1}), "unknown record kind None"),
    ("text", "expected bytes, got str"),
])
def test_garbage_is_refused(data, message):
    with pytest.raises(SchemaError, match=message):
        decode(data)


def test_decoding_the_wrong_kind_is_refused(snap):
    with pytest.raises(SchemaError, match="expected a trade record, got Snapshot"):
        decode_trade(encode(snap))
    with pytest.raises(SchemaError, match="expected a health record, got kind='book'"):
        encode_health(snap)
    bad = trade_record("BTC-USD", Trade("a", "x", 1.0, 1.0, "hold", 1.0), "USD")
    with pytest.raises(SchemaError, match="trade.side"):
        encode(bad)  # a writer cannot publish what readers would refuse


def test_encode_refuses_malformed_writer_dicts(snap):
    with pytest.raises(SchemaError, match="book: missing field 'features'"):
        encode({k: v for k, v in snap.items() if k != "features"})
    with pytest.raises(SchemaError, match="book.ladder.bids.0..price: expected a number"):
        encode({**snap, "ladder": {"bids": [[np.float32(1.0), 1.0, [1.0, 0.0, 0.0]]],
                                   "asks": []}})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_ever_raise_schema_error(data):
    try:
        decode(data)
    except SchemaError:
        pass


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6)


def _paths(node, prefix=()):
    """Every key path inside a record, containers included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in items:
        yield from _paths(child, prefix + (key,))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_any_field_replaced_by_anything_only_ever_raises_schema_error(snap, data):
    valid = msgpack.unpackb(encode(snap))
    paths = [p for p in _paths(valid) if p]
    path = data.draw(st.sampled_from(paths))
    value = data.draw(msgpack_values)
    try:
        decode(_mutated(snap, path, value))
    except SchemaError:
        pass
