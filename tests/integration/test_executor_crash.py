"""kill -9 mid-stream, restart: no signal lost, none decided twice, no fill repeated, the
account equal to the fills it published. Real redis-server, the executor in a subprocess."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from redis.asyncio import Redis

from cobstack.bus import RedisStreamsBus
from cobstack.config import Settings
from cobstack.executor import crafted, records
from cobstack.executor.ledger import Ledger
from cobstack.executor.service import GROUP
from cobstack.streams import (EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_PNL_STREAM, EXEC_STATE_KEY,
                              SIGNALS_STREAM, book_stream)
from cobstack.trainer.signals import encode_signal, make_signal

pytestmark = pytest.mark.redis

SYM = "BTC-USD"
BOOKS = {"binance": ([(99.0, 1e6)], [(101.0, 1e6)]), "coinbase": ([(99.7, 3.0)], [(100.3, 3.0)])}
N_SIGNALS = 600
RUNNER = """
import asyncio, logging, signal, sys
from cobstack.bus import RedisStreamsBus
from cobstack.config import Settings
from cobstack.executor.service import serve

async def main():
    logging.basicConfig(level=logging.INFO)
    settings = Settings.model_validate_json(sys.argv[1])
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    bus = RedisStreamsBus(settings.redis_url)
    await serve(settings, bus, stop)
    await bus.close()

asyncio.run(main())
"""


def start(s: Settings) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", RUNNER, s.model_dump_json()], stderr=subprocess.PIPE)


async def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (got := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        await asyncio.sleep(0.05)
    return got


async def committed(bus: RedisStreamsBus) -> Ledger | None:
    _, blob = await bus.load_state(EXEC_STATE_KEY)
    return Ledger.from_bytes(blob) if blob else None


async def test_kill_9_and_restart_neither_loses_nor_repeats_effects(redis_server_factory):
    server = redis_server_factory()
    s = Settings(symbols=[SYM], redis_url=server.url, executor={
        "target_notional": 1000.0, "max_slippage_bps": 500.0, "latency_ms": {"binance": 20.0, "coinbase": 30.0},
        "stale_book_ms": 600_000, "stale_signal_ms": 3_600_000, "batch": 16, "pnl_interval_ms": 200,
        "max_notional_per_minute": 1e12, "max_order_notional": 1e12, "max_position_notional": 1e12})
    bus = RedisStreamsBus(server.url)
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns()))
    proc = start(s)
    procs = [proc]
    try:
        await wait_for(lambda: bus.latest(EXEC_PNL_STREAM), 20, "executor started (first PnL record)")
        ids, kills = [], 0
        for i in range(N_SIGNALS):  # alternate: every signal flips the position, so every one trades
            now = time.time_ns()
            probs = [0.1, 0.1, 0.8] if i % 2 == 0 else [0.8, 0.1, 0.1]
            ids.append(await bus.publish(SIGNALS_STREAM, encode_signal(
                make_signal(SYM, now, "0-1", now, "test@1", 10, probs))))
            await asyncio.sleep(0.002)
            if kills < 2 and i in (N_SIGNALS // 3, 2 * N_SIGNALS // 3):
                await wait_for(lambda: bus.range(EXEC_FILLS_STREAM, count=1), 10, "fills before the kill")
                os.kill(proc.pid, signal.SIGKILL)  # mid-stream: batches and child orders in flight
                proc.wait(5)
                kills += 1
                proc = start(s)
                procs.append(proc)

        async def all_decided():
            ledger = await committed(bus)
            return ledger and ledger.counters.get("signals") == N_SIGNALS and not ledger.inflight and ledger

        ledger = await wait_for(all_decided, 60, f"all {N_SIGNALS} signals decided and filled")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(10)
    logs = [p.stderr.read().decode() for p in procs]
    assert [p.returncode for p in procs] == [-signal.SIGKILL] * 2 + [0], logs[-1][-3000:]
    # the kills really hit work in progress: each restart found orders in flight or signals to take back
    for log in logs[1:]:
        assert re.search(r"[1-9]\d* orders in flight|took back [1-9]", log), log[-3000:]

    orders = [records.decode(e.data) for e in await bus.range(EXEC_ORDERS_STREAM)]
    assert sorted(o.id for o in orders) == sorted(ids)  # one order per signal: none lost, none twice
    fills = [records.decode(e.data) for e in await bus.range(EXEC_FILLS_STREAM)]
    children = Counter((o.id, c["venue"]) for o in orders for c in o.children)
    assert Counter((f.order_id, f.venue) for f in fills) == children  # each child filled exactly once
    assert all(f.status == "filled" for f in fills)
    position = sum(f.qty if f.side == "buy" else -f.qty for f in fills)
    cash = s.executor.starting_cash - sum(
        (f.notional + f.fee) if f.side == "buy" else -(f.notional - f.fee) for f in fills)
    assert ledger.positions[SYM].qty == pytest.approx(position, abs=1e-9)
    assert ledger.cash == pytest.approx(cash, rel=1e-12)
    assert ledger.counters["orders"] == N_SIGNALS

    raw = Redis.from_url(server.url)
    try:
        (group,) = [g for g in await raw.xinfo_groups(SIGNALS_STREAM) if g["name"] == GROUP.encode()]
        assert group["pending"] == 0
    finally:
        await raw.aclose()
        await bus.close()


async def test_a_lost_consumer_group_neither_repeats_nor_skips(redis_server):
    """The group deleted under a running executor (as a Redis restart without persistence
    would, for the group): it is re-created after the last committed signal; and a group
    re-created from "0" by someone else redelivers history that is only acknowledged."""
    assert redis_server.call("FLUSHALL") == b"+OK"
    s = Settings(symbols=[SYM], redis_url=redis_server.url, executor={
        "target_notional": 1000.0, "max_slippage_bps": 500.0, "latency_ms": {}, "default_latency_ms": 0.0,
        "stale_book_ms": 600_000, "pnl_interval_ms": 100})
    bus = RedisStreamsBus(redis_server.url)
    raw = Redis.from_url(redis_server.url)
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns()))
    proc = start(s)
    sent = 0

    async def send(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            now = time.time_ns()
            probs = [0.1, 0.1, 0.8] if sent % 2 == 0 else [0.8, 0.1, 0.1]
            await bus.publish(SIGNALS_STREAM, encode_signal(make_signal(SYM, now, "0-1", now, "t@1", 10, probs)))
            sent += 1

    async def decided():
        ledger = await committed(bus)
        return ledger and ledger.counters.get("signals") == sent

    try:
        await wait_for(lambda: bus.latest(EXEC_PNL_STREAM), 20, "executor started")
        await send(5)
        await wait_for(decided, 10, "first 5 signals decided")
        await raw.xgroup_destroy(SIGNALS_STREAM, GROUP)  # the blocked XREADGROUP fails: NOGROUP
        await send(3)  # published while no group exists
        await wait_for(decided, 10, "signals sent while the group was gone decided")
        await raw.xgroup_destroy(SIGNALS_STREAM, GROUP)
        await raw.xgroup_create(SIGNALS_STREAM, GROUP, id="0")  # redelivers all 8 as new
        await send(2)
        await wait_for(decided, 10, "last 2 signals decided")
        await asyncio.sleep(0.3)  # time for any (wrong) second decision to show up
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        log = proc.stderr.read().decode()
        await raw.aclose()
    ledger = await committed(bus)
    assert ledger.counters["signals"] == ledger.counters["orders"] == sent == 10, log[-3000:]
    orders = [records.decode(e.data).id for e in await bus.range(EXEC_ORDERS_STREAM)]
    assert len(orders) == len(set(orders)) == 10
    assert "consumer group lost" in log
    await bus.close()


def test_control_command_line_appends_a_command(redis_server):
    from cobstack.executor.control import main

    assert main(["halt", "--redis", redis_server.url, "--reason", "fat finger"]) == 0
    bus = RedisStreamsBus(redis_server.url)

    async def latest():
        try:
            return await bus.latest("cob:exec:control")
        finally:
            await bus.close()

    cmd = records.decode(asyncio.run(latest()).data)
    assert (cmd.command, cmd.reason) == ("halt", "fat finger")
