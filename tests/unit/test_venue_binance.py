"""Binance sync rules on hand-built frames: spot (U == prev u + 1) and futures (pu == prev u)."""

import orjson
import pytest

from cobstack.venues.base import LIVE, RESYNC, SYNCING
from cobstack.venues.binance import BinanceAdapter, BinanceCoinmAdapter, BinanceUsdmAdapter

SYM = "BTCUSDT"


def diff(U, u, b=(), a=(), pu=None, sym=SYM) -> bytes:
    data = {"e": "depthUpdate", "E": 1, "s": sym, "U": U, "u": u,
            "b": [list(x) for x in b], "a": [list(x) for x in a]}
    if pu is not None:
        data["pu"] = pu
    return orjson.dumps({"stream": f"{sym.lower()}@depth@100ms", "data": data})


def snap(last, bids=(("100.0", "1.0"),), asks=(("101.0", "1.0"),)) -> bytes:
    return orjson.dumps({"lastUpdateId": last, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]})


def test_spot_buffers_until_snapshot_requests_it_once_and_drops_stale():
    a = BinanceAdapter([SYM], rest_url="http://127.0.0.1:9")
    a.on_frame(diff(95, 99, b=[("99.0", "5.0")]), 1.0)
    a.on_frame(diff(100, 102, b=[("100.0", "2.0")]), 1.1)
    assert a.state[SYM] == SYNCING
    assert a.outbox == [("http", "http://127.0.0.1:9/api/v3/depth?symbol=BTCUSDT&limit=1000", SYM)]
    a.on_rest(a.outbox[0][1], snap(100), 1.2, SYM)
    # u=99 <= lastUpdateId: stale; U=100 <= 101 <= u=102: bridges and applies
    assert a.stats.stale_dropped == 1 and a.stats.updates == 1 and a.stats.gaps == 0
    assert a.state[SYM] == LIVE and a.books[SYM].best_bid().size_str == "2.0" and a.books[SYM].seq == 102
    a.on_frame(diff(103, 104, a=[("101.0", "0")]), 1.3)
    assert a.stats.updates == 2 and len(a.books[SYM].asks) == 0


def test_spot_gap_after_bridge_resyncs_and_keeps_the_diff_for_the_next_snapshot():
    a = BinanceAdapter([SYM])
    a.on_frame(diff(101, 101), 1.0)
    a.on_rest("u", snap(100), 1.1, SYM)
    a.outbox.clear()
    a.on_frame(diff(103, 105, b=[("99.0", "1.0")]), 1.2)  # 102 missing
    assert a.stats.gaps == 1 and a.stats.resyncs == 1 and a.state[SYM] == RESYNC
    assert [e[0] for e in a.outbox] == ["http"]
    a.on_frame(diff(106, 107), 1.3)
    assert a.outbox == [a.outbox[0]]  # one request outstanding, not one per diff
    a.on_rest("u", snap(104), 1.4, SYM)  # bridges 103..105, then 106
    assert a.state[SYM] == LIVE and a.books[SYM].seq == 107 and a.stats.gaps == 1


def test_spot_snapshot_older_than_buffered_diffs_is_a_gap():
    a = BinanceAdapter([SYM])
    a.on_frame(diff(110, 112), 1.0)
    a.on_rest("u", snap(100), 1.1, SYM)
    assert a.stats.gaps == 1 and a.state[SYM] == RESYNC


@pytest.mark.parametrize("cls", [BinanceUsdmAdapter, BinanceCoinmAdapter])
def test_futures_bridge_on_last_update_id_and_chain_by_pu(cls):
    a = cls([SYM])
    a.on_frame(diff(90, 99, pu=89), 1.0)  # u < lastUpdateId: stale
    a.on_frame(diff(100, 110, pu=99), 1.1)  # U <= 100 <= u: first applied (u == last is kept)
    a.on_rest("u", snap(100), 1.2, SYM)
    assert a.stats.stale_dropped == 1 and a.stats.updates == 1 and a.state[SYM] == LIVE
    a.on_frame(diff(115, 120, pu=110), 1.3)  # U jumps, but pu chains: fine on futures
    assert a.stats.updates == 2 and a.stats.gaps == 0
    a.on_frame(diff(121, 125, pu=119), 1.4)
    assert a.stats.gaps == 1 and a.state[SYM] == RESYNC


def test_endpoints_per_market():
    spot = BinanceAdapter(["BTCUSDT"], ws_url="ws://127.0.0.1:1", rest_url="http://127.0.0.1:2")
    assert spot.ws_url() == "ws://127.0.0.1:1/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade"
    assert BinanceUsdmAdapter(["BTCUSDT"]).snapshot_url("BTCUSDT") == \
        "https://fapi.binance.com/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    assert BinanceCoinmAdapter(["BTCUSD_PERP"]).ws_url() == \
        "wss://dstream.binance.com/stream?streams=btcusd_perp@depth@100ms/btcusd_perp@aggTrade"
    assert BinanceUsdmAdapter.venue == "binance-usdm" and BinanceAdapter.venue == "binance"
    with pytest.raises(ValueError, match="no instruments"):
        BinanceAdapter().ws_url()


def test_trades_taker_side_and_ignored_streams():
    a = BinanceAdapter()
    a.on_frame(orjson.dumps({"stream": "x@aggTrade", "data": {"e": "aggTrade", "s": SYM, "p": "1.5",
                                                              "q": "2", "T": 1500, "m": True}}), 1.0)
    a.on_frame(orjson.dumps({"stream": "x@trade", "data": {"e": "trade", "s": SYM, "p": "1.5",
                                                           "q": "2", "T": 1500, "m": False}}), 1.0)
    a.on_frame(orjson.dumps({"stream": "x@bookTicker", "data": {"u": 1, "s": SYM, "b": "1"}}), 1.0)
    a.on_frame(orjson.dumps({"result": None, "id": 1}), 1.0)
    assert [(t.side, t.ts) for t in a.trades] == [("sell", 1.5), ("buy", 1.5)]
    assert a.stats.ignored == 2 and not a.stats.rejected


def test_crossed_and_bad_levels_resync_only_that_symbol():
    a = BinanceAdapter(["BTCUSDT", "ETHUSDT"])
    for sym in ("BTCUSDT", "ETHUSDT"):
        a.on_frame(diff(101, 101, sym=sym), 1.0)
        a.on_rest("u", snap(100), 1.1, sym)
    a.on_frame(diff(102, 102, b=[("105.0", "1.0")]), 1.2)
    assert a.stats.crossed == 1 and a.state["BTCUSDT"] == RESYNC and a.state["ETHUSDT"] == LIVE
    a.on_frame(diff(102, 102, b=[("99.0", "-1")], sym="ETHUSDT"), 1.3)
    assert a.stats.rejected["negative_size"] == 1 and a.state["ETHUSDT"] == RESYNC

