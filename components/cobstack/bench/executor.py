"""Executor: signals/s on one core and signal-to-fill latency at 1k signals/s, paper mode.

Both run the real service (Executor: XREADGROUP, decide, route, fill, one atomic commit per
batch) against a throwaway redis-server, then on the in-process bus of `cobstack up`. Every signal trades: they alternate buy and sell,
so each one flips the position and routes a two-venue order, the costliest path. Venue
latency is set to 0 so the figures are the executor's own cost; a configured latency adds
exactly itself to signal-to-fill (a child order fills when it reaches its venue).

- throughput: N signals are queued first, then one executor drains them; signals/s is N
  over the time until the committed state counts all N. The executor is the only work in
  its process, so this is one core (Redis runs in its own process).
- latency: signals are published at 1k/s for D seconds while the executor runs; an observer
  tails cob:exec:fills and takes, per fill, its arrival time minus the signal's publish
  time `ts`. Producer, executor and observer share one process (and core), so this is an
  upper bound on the executor's share.
"""

from __future__ import annotations

import asyncio
import statistics
import time

from ..bus import Bus, Entry, MemoryBus, StreamReader
from ..bus.local_redis import LocalRedis
from ..bus.redis_streams import RedisStreamsBus
from ..config import Settings
from ..executor import crafted, records
from ..executor.ledger import Ledger
from ..executor.service import GROUP, Executor
from ..streams import EXEC_FILLS_STREAM, EXEC_STATE_KEY, SIGNALS_STREAM, book_stream
from ..trainer.signals import encode_signal, make_signal

SYM = "BTC-USD"
BOOKS = {"binance": ([(99.0, 1e9)], [(101.0, 1e9)]), "coinbase": ([(99.7, 3.0)], [(100.3, 3.0)])}
PROBS = ([0.1, 0.1, 0.8], [0.8, 0.1, 0.1])  # buy, sell


def _settings(url: str) -> Settings:
    return Settings(symbols=[SYM], redis_url=url, executor={
        "latency_ms": {}, "default_latency_ms": 0.0, "max_slippage_bps": 500.0, "target_notional": 1000.0,
        "stale_book_ms": 600_000, "stale_signal_ms": 3_600_000, "max_notional_per_minute": 1e15,
        "max_order_notional": 1e15, "max_position_notional": 1e15, "max_drawdown": 1e15})


def _signal(i: int) -> bytes:
    now = time.time_ns()
    return encode_signal(make_signal(SYM, now, "0-1", now, "bench@1", 10, PROBS[i % 2]))


async def _run_executor(s: Settings, bus: Bus) -> tuple[asyncio.Event, asyncio.Task]:
    stop = asyncio.Event()
    return stop, asyncio.create_task(Executor(s, bus).run(stop))


def _bus(url: str | None) -> Bus:
    return RedisStreamsBus(url) if url else MemoryBus(default_maxlen=1_000_000)


async def _throughput(url: str | None, n: int) -> dict:
    s = _settings(url)
    bus = _bus(url)
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns()))
    await bus.ensure_group(SIGNALS_STREAM, GROUP, "0")  # queued signals are the executor's to take
    for start in range(0, n, 1000):
        await bus.publish_many([(SIGNALS_STREAM, _signal(i)) for i in range(start, min(n, start + 1000))],
                               maxlen=n)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    stop, task = await _run_executor(s, bus)
    while True:
        _, blob = await bus.load_state(EXEC_STATE_KEY)
        ledger = Ledger.from_bytes(blob) if blob else None
        if ledger and ledger.counters.get("signals") == n:
            break
        await asyncio.sleep(0.01)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    await task
    await bus.close()
    return {"signals": n, "orders": ledger.counters.get("orders", 0), "fills": ledger.counters.get("fills", 0),
            "seconds": round(elapsed, 3), "signals_per_s": round(n / elapsed),
            # what one whole core sustains: the figure above divided by the share of a core
            # the process got (equal to it on an idle machine)
            "process_cpu_s": round(cpu, 3), "signals_per_cpu_s": round(n / cpu), "target_signals_per_s": 5000}


async def _latency(url: str | None, rate: int, seconds: float) -> dict:
    s = _settings(url)
    bus = _bus(url)
    await bus.publish(book_stream(SYM), crafted.encoded(SYM, BOOKS, time.time_ns()))
    stop, task = await _run_executor(s, bus)
    while await bus.latest("cob:exec:pnl") is None:  # started: its consumer group exists
        await asyncio.sleep(0.01)
    reader = StreamReader(bus, {EXEC_FILLS_STREAM: await bus.last_id(EXEC_FILLS_STREAM)}, block_ms=200)
    first_fill: dict[str, float] = {}  # order id -> signal-to-first-fill ms
    n = int(rate * seconds)

    async def observe() -> None:
        while len(first_fill) < n:
            for e in await reader.next_batch():
                if isinstance(e, Entry):
                    f = records.decode(e.data)
                    first_fill.setdefault(f.order_id, (time.time_ns() - f.signal_ts) / 1e6)

    observer = asyncio.create_task(observe())
    t0 = time.perf_counter()
    for i in range(n):  # paced against the clock, not by sleeping a fixed step
        await bus.publish(SIGNALS_STREAM, _signal(i))
        ahead = t0 + (i + 1) / rate - time.perf_counter()
        if ahead > 0:
            await asyncio.sleep(ahead)
    sent_s = time.perf_counter() - t0
    try:
        await asyncio.wait_for(observer, 30)
    except TimeoutError:
        raise RuntimeError(f"executor bench: only {len(first_fill)} of {n} signals were filled within 30 s "
                           "of the last one; see the executor's log") from None
    stop.set()
    await task
    await bus.close()
    lat = sorted(first_fill.values())
    q = statistics.quantiles(lat, n=1000)
    return {"signals": n, "achieved_rate_per_s": round(n / sent_s), "p50_ms": round(q[499], 3),
            "p99_ms": round(q[989], 3), "p999_ms": round(q[998], 3), "max_ms": round(lat[-1], 3),
            "target_p99_ms": 2.0}


def run(quick: bool = False) -> dict:
    n, seconds = (5_000, 2.0) if quick else (50_000, 20.0)
    out: dict = {"venue_latency_ms": 0}
    with LocalRedis() as redis:
        out["redis"] = {"throughput": asyncio.run(_throughput(redis.url, n))}
    with LocalRedis() as redis:
        out["redis"]["latency_at_1k_per_s"] = asyncio.run(_latency(redis.url, 1000, seconds))
    out["memory"] = {"throughput": asyncio.run(_throughput(None, n)),
                     "latency_at_1k_per_s": asyncio.run(_latency(None, 1000, seconds))}
    return out
