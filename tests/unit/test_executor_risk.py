"""The engine's decisions: risk limits block exactly past their thresholds, stale or flagged
data blocks trading, halts and the kill switch stop it, latency and partial fills."""

from __future__ import annotations

import pytest

from cobstack.config import ExecutorSettings
from cobstack.core.schema import decode_snapshot
from cobstack.executor import crafted, records
from cobstack.executor.engine import Engine
from cobstack.executor.ledger import Ledger
from cobstack.executor.routing import market
from cobstack.streams import EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_POSITIONS_STREAM, EXEC_RISK_STREAM
from cobstack.trainer.signals import encode_signal, make_signal

SYM = "BTC-USD"
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
BOOK = {"binance": ([(99.0, 1000.0)], [(101.0, 1000.0)])}  # mid 100; a buy pays 101, a sell gets 99
BASE = dict(starting_cash=1_000_000.0, target_notional=1000.0, taker_fee_bps={}, default_taker_fee_bps=0.0,
            latency_ms={}, default_latency_ms=0.0, max_order_notional=1e9, max_position_notional=1e9,
            max_notional_per_minute=1e9, max_drawdown=1e9, max_slippage_bps=500.0, stale_book_ms=1000, stale_signal_ms=1000)


def markets(books=BOOK, ts=T0, **kw):
    snap = decode_snapshot(crafted.encoded(SYM, books, ts, **kw))
    return {SYM: market(snap, {}, 0.0, 1000)}


def signal(action: str, source_ts: int = T0, symbol: str = SYM) -> bytes:
    probs = {"buy": [0.1, 0.1, 0.8], "sell": [0.8, 0.1, 0.1], "hold": [0.1, 0.8, 0.1]}[action]
    return encode_signal(make_signal(symbol, source_ts, "1-0", source_ts, "test@1", 10, probs))


class Run:
    """An engine and a ledger, fed signals one by one; latency 0 fills in the same step."""

    def __init__(self, **cfg):
        self.cfg = ExecutorSettings(**{**BASE, **cfg})
        self.engine = Engine(self.cfg, [SYM])
        self.ledger = Ledger.fresh(self.cfg.starting_cash)
        self.n = 0

    def send(self, action: str, now: int = T0, mk=None, source_ts: int | None = None) -> list[tuple[str, dict]]:
        self.n += 1
        mk = markets(ts=now) if mk is None else mk
        out = self.engine.on_signal(self.ledger, f"{self.n}-0", signal(action, now if source_ts is None else source_ts),
                                    mk, now)
        return out + self.engine.fill_due(self.ledger, mk, now)


def rules(out) -> list[str]:
    return [r["rule"] for s, r in out if s == EXEC_RISK_STREAM]


def streams(out) -> list[str]:
    return [s for s, _ in out]


def test_a_buy_signal_routes_fills_and_books_the_position():
    run = Run()
    out = run.send("buy")
    assert streams(out) == [EXEC_ORDERS_STREAM, EXEC_FILLS_STREAM, EXEC_POSITIONS_STREAM]
    order, fill, pos = (r for _, r in out)
    assert (order["side"], order["qty"], order["ref_mid"], order["expected_price"]) == ("buy", 10.0, 100.0, 101.0)
    assert order["expected_slippage_bps"] == pytest.approx(100.0)  # half the 2 USD spread on a 100 mid
    assert (fill["status"], fill["qty"], fill["price"]) == ("filled", 10.0, 101.0)
    assert fill["realised_slippage_bps"] == pytest.approx(fill["expected_slippage_bps"])
    assert (pos["qty"], pos["avg_cost"], pos["cash"]) == (10.0, 101.0, 1_000_000.0 - 1010.0)
    for _, rec in out:
        records.decode(records.encode(rec))  # every record passes its own schema
    assert run.send("buy") == []  # already at target: nothing to trade, nothing to block
    assert run.send("hold") == []
    out = run.send("sell")  # from +10 to -10
    assert out[0][1]["qty"] == 20.0 and run.ledger.positions[SYM].qty == -10.0
    assert run.ledger.positions[SYM].realised == pytest.approx(10 * (99.0 - 101.0))


@pytest.mark.parametrize("limit, blocked", [(1010.0, False), (1009.99, True)])
def test_max_order_notional(limit, blocked):
    out = Run(max_order_notional=limit).send("buy")  # 10 units at 101
    assert rules(out) == (["max_order_notional"] if blocked else [])


@pytest.mark.parametrize("limit, blocked", [(1000.0, False), (999.99, True)])
def test_max_position(limit, blocked):
    out = Run(max_position_notional=limit).send("buy")  # +10 at the 100 mid
    assert rules(out) == (["max_position"] if blocked else [])


def test_exposure_counts_orders_in_flight():
    run = Run(max_position_notional=1000.0, default_latency_ms=50.0)
    assert streams(run.send("buy")) == [EXEC_ORDERS_STREAM]  # +10 in flight, not filled yet
    assert run.send("buy", now=T0 + MS) == []  # already at target counting what is in flight
    run.cfg.target_notional = 1100.0  # the engine reads the same settings object
    assert rules(run.send("buy", now=T0 + 2 * MS)) == ["max_position"]  # +1 more: 1100 at the mid
    assert len(run.ledger.inflight) == 1


@pytest.mark.parametrize("limit, blocked", [(2990.0, False), (2989.99, True)])
def test_max_notional_per_minute(limit, blocked):
    run = Run(max_notional_per_minute=limit)
    assert rules(run.send("buy")) == []  # 1010
    assert rules(run.send("sell", now=T0 + 59_000 * MS)) == (["max_notional_per_minute"] if blocked else [])  # +1980


def test_per_minute_window_forgets_orders_older_than_60s():
    run = Run(max_notional_per_minute=2000.0)
    assert rules(run.send("buy")) == []  # 1010
    assert rules(run.send("sell", now=T0 + 30_000 * MS)) == ["max_notional_per_minute"]
    assert rules(run.send("sell", now=T0 + 61_000 * MS)) == []  # the first order left the window


@pytest.mark.parametrize("limit, killed", [(10.0, False), (9.99, True)])
def test_drawdown_kill_switch(limit, killed):
    run = Run(max_drawdown=limit)
    run.send("buy")  # long 10 @101, marked at 100: equity 10 below the peak
    out = run.send("sell", now=T0 + MS)
    assert rules(out) == (["kill_switch", "killed"] if killed else [])
    assert bool(run.ledger.killed) is killed
    if killed:
        assert rules(run.send("sell", now=T0 + 2 * MS)) == ["killed"]  # stays off
        assert rules(run.engine.on_control(run.ledger, "9-0", records.control("resume", "checked", T0), markets(), T0)) == ["resumed"]
        assert rules(run.send("sell", now=T0 + 3 * MS)) == []


@pytest.mark.parametrize("age_ms, blocked", [(1000, False), (1001, True)])
def test_stale_book_blocks(age_ms, blocked):
    out = Run().send("buy", now=T0 + age_ms * MS, mk=markets(ts=T0))
    assert rules(out) == (["stale_book"] if blocked else [])


@pytest.mark.parametrize("age_ms, blocked", [(1000, False), (1001, True)])
def test_stale_signal_blocks(age_ms, blocked):
    out = Run().send("buy", now=T0, source_ts=T0 - age_ms * MS)
    assert rules(out) == (["stale_signal"] if blocked else [])


def test_flagged_venues_are_not_traded_and_an_all_flagged_book_blocks():
    books = {"binance": BOOK["binance"], "kraken-v1": ([(99.5, 5.0)], [(100.5, 5.0)])}
    out = Run().send("buy", mk=markets(books, flagged={"kraken-v1": "checksum failure, resyncing"}))
    assert [c["venue"] for c in out[0][1]["children"]] == ["binance"]
    out = Run().send("buy", mk=markets({}, flagged={"binance": "stale: no update for 6000 ms"}))
    assert rules(out) == ["flagged_book"] and "binance: stale" in out[0][1]["reason"]
    assert rules(Run().send("buy", mk={})) == ["no_book"]


def test_halt_blocks_until_resume_and_bad_inputs_are_counted_rejections():
    run = Run()
    assert rules(run.engine.on_control(run.ledger, "1-0", records.control("halt", "maintenance", T0), {}, T0)) == ["halt"]
    out = run.send("buy")
    assert rules(out) == ["halted"] and "maintenance" in out[0][1]["reason"]
    run.engine.on_control(run.ledger, "2-0", records.control("resume", "", T0), {}, T0)
    assert rules(run.send("buy")) == []
    assert rules(run.engine.on_signal(run.ledger, "3-0", b"\x93garbage", markets(), T0)) == ["bad_signal"]
    assert rules(run.engine.on_control(run.ledger, "4-0", b"nope", {}, T0)) == ["bad_control"]
    assert rules(run.engine.on_signal(run.ledger, "5-0", signal("buy", symbol="DOGE-USD"), markets(), T0)) \
        == ["unknown_symbol"]
    assert run.ledger.counters["rejected"] == 2


def test_no_depth_within_the_slippage_limit_blocks():
    assert rules(Run(max_slippage_bps=99.0).send("buy")) == ["no_liquidity"]  # the ask is 100 bps away
    assert rules(Run(max_slippage_bps=100.0).send("buy")) == []


def test_latency_fills_against_the_book_at_arrival_partially():
    run = Run(latency_ms={"binance": 20.0})
    out = run.send("buy")
    assert streams(out) == [EXEC_ORDERS_STREAM] and run.ledger.inflight[0].due == T0 + 20 * MS
    assert run.engine.fill_due(run.ledger, markets(), T0 + 19 * MS) == []
    thinner = markets({"binance": ([(99.0, 5.0)], [(101.0, 4.0), (101.5, 9.0)])}, ts=T0 + 10 * MS)
    out = run.engine.fill_due(run.ledger, thinner, T0 + 20 * MS)
    fill = out[0][1]
    assert (fill["status"], fill["qty"], fill["requested"], fill["ts"]) == ("partial", 4.0, 10.0, T0 + 20 * MS)
    assert "ran out" in fill["reason"] and run.ledger.inflight == [] and run.ledger.positions[SYM].qty == 4.0


def test_ledger_round_trips_through_its_durable_form():
    run = Run(latency_ms={"binance": 20.0})
    run.send("buy")
    run.send("sell", now=T0 + 30 * MS)
    again = Ledger.from_bytes(run.ledger.to_bytes())
    assert again == run.ledger
