"""The executor service on both buses: signals in, orders/fills/positions/PnL/risk out,
state that survives a restart, halt and resume through the control stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import pytest

from cobstack.bus import Bus
from cobstack.config import Settings
from cobstack.executor import crafted, records
from cobstack.executor.ledger import Ledger
from cobstack.executor.live import LiveTradingRefused
from cobstack.executor.service import Executor, serve
from cobstack.streams import (EXEC_CONTROL_STREAM, EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_PNL_STREAM,
                              EXEC_POSITIONS_STREAM, EXEC_RISK_STREAM, EXEC_STATE_KEY, SIGNALS_STREAM,
                              book_stream)
from cobstack.trainer.signals import encode_signal, make_signal

SYM = "BTC-USD"
BOOKS = {"binance": ([(99.0, 50.0)], [(101.0, 50.0)]), "coinbase": ([(99.7, 1.0)], [(100.3, 1.0)])}


def settings(**executor) -> Settings:
    return Settings(symbols=[SYM], executor={
        "target_notional": 1000.0, "max_slippage_bps": 500.0, "taker_fee_bps": {"binance": 10.0, "coinbase": 60.0},
        "latency_ms": {"binance": 5.0, "coinbase": 10.0}, "pnl_interval_ms": 100, **executor})


def signal(action: str) -> bytes:
    probs = {"buy": [0.1, 0.1, 0.8], "sell": [0.8, 0.1, 0.1]}[action]
    now = time.time_ns()
    return encode_signal(make_signal(SYM, now, "0-1", now, "test@1", 10, probs))


async def records_of(bus: Bus, stream: str) -> list:
    return [records.decode(e.data) for e in await bus.range(stream)]


async def until(check: Callable, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while True:
        got = await check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(bus: Bus, s: Settings):
    stop = asyncio.Event()
    task = asyncio.create_task(serve(s, bus, stop))

    async def pnl_seen():
        return task.done() or await bus.latest(EXEC_PNL_STREAM)

    await until(pnl_seen)  # the first mark means the consumer group exists
    assert not task.done(), task
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def test_signals_trade_and_the_account_survives_a_restart(bus: Bus):
    s = settings()
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns()))
    async with running(bus, s):
        await bus.publish(SIGNALS_STREAM, signal("buy"))  # 10 units: 1 on coinbase (100.3 + 60 bps beats 101 + 10 bps)

        async def two_fills():
            return len(await bus.range(EXEC_FILLS_STREAM)) == 2 and await bus.latest(EXEC_POSITIONS_STREAM)

        await until(two_fills)
    (order,) = await records_of(bus, EXEC_ORDERS_STREAM)
    assert [(c["venue"], c["qty"]) for c in order.children] == [("binance", 9.0), ("coinbase", 1.0)]
    fills = {f.venue: f for f in await records_of(bus, EXEC_FILLS_STREAM)}
    assert fills["binance"].ts - order.ts == 5_000_000 and fills["coinbase"].ts - order.ts == 10_000_000
    assert all(f.status == "filled" and f.order_id == order.id for f in fills.values())
    pos = (await records_of(bus, EXEC_POSITIONS_STREAM))[-1]
    assert pos.qty == pytest.approx(10.0)
    pnl = (await records_of(bus, EXEC_PNL_STREAM))[-1]
    assert pnl.counters["orders"] == 1

    version, blob = await bus.load_state(EXEC_STATE_KEY)
    assert version >= 2 and Ledger.from_bytes(blob).positions[SYM].qty == pytest.approx(10.0)
    async with running(bus, s):  # a restart resumes from the committed ledger
        await bus.publish(SIGNALS_STREAM, signal("buy"))  # already at target

        async def processed():
            _, blob = await bus.load_state(EXEC_STATE_KEY)
            return Ledger.from_bytes(blob).counters.get("signals") == 2

        await until(processed)
    assert len(await bus.range(EXEC_ORDERS_STREAM)) == 1


async def test_halt_and_resume_through_the_control_stream(bus: Bus):
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns()))
    async with running(bus, settings()):
        await bus.publish(EXEC_CONTROL_STREAM, records.control("halt", "exchange maintenance", time.time_ns()))
        await bus.publish(SIGNALS_STREAM, signal("buy"))

        async def blocked():
            return [r.rule for r in await records_of(bus, EXEC_RISK_STREAM)] == ["halt", "halted"]

        await until(blocked)
        await bus.publish(EXEC_CONTROL_STREAM, records.control("resume", "maintenance over", time.time_ns()))
        await bus.publish(SIGNALS_STREAM, signal("sell"))
        await until(lambda: bus.range(EXEC_ORDERS_STREAM))
    risk = await records_of(bus, EXEC_RISK_STREAM)
    assert [r.rule for r in risk] == ["halt", "halted", "resumed"]
    assert "exchange maintenance" in risk[1].reason
    (order,) = await records_of(bus, EXEC_ORDERS_STREAM)
    assert order.side == "sell"


async def test_stale_book_blocks_trading(bus: Bus):
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns() - 3_000_000_000))
    async with running(bus, settings(stale_book_ms=2000)):
        await bus.publish(SIGNALS_STREAM, signal("buy"))
        await until(lambda: bus.range(EXEC_RISK_STREAM))
    (event,) = await records_of(bus, EXEC_RISK_STREAM)
    assert event.rule == "stale_book" and event.limit == 2000 and event.value > 2000
    assert await bus.range(EXEC_ORDERS_STREAM) == []


async def test_live_mode_is_refused_with_a_clear_message(bus: Bus):
    with pytest.raises(LiveTradingRefused, match="no live trading adapter"):
        await serve(settings(mode="live"), bus, asyncio.Event())


async def test_a_second_executor_on_the_same_account_cannot_interleave(bus: Bus):
    """Both load version v; the first commit wins, the second is refused and reloads."""
    s = settings()
    a, b = Executor(s, bus), Executor(s, bus)
    await a._recover()
    await b._recover()
    await a._step([])  # a marks: commits v+1
    with pytest.raises(Exception, match="version"):
        await b._step([])
    await b._recover()
    assert b.version == a.version
