"""The executor beside a real ingest of the simulated market (in-process bus): signals made
from live snapshots are routed across the three venues and filled on each one's own book."""

from __future__ import annotations

import asyncio
import time

from cobstack.bus import Entry, MemoryBus, StreamReader
from cobstack.config import Settings
from cobstack.executor import records
from cobstack.executor.service import serve
from cobstack.stack import start_ingest
from cobstack.streams import (EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_PNL_STREAM, EXEC_RISK_STREAM,
                              SIGNALS_STREAM, book_stream)
from cobstack.core.schema import decode_snapshot
from cobstack.trainer.signals import encode_signal, make_signal

SYM = "BTC-USD"


async def test_signals_on_simulated_books_trade_across_venues():
    s = Settings(symbols=[SYM], ingest={"metrics_port": 0}, executor={
        "target_notional": 200_000.0, "max_order_notional": 1e9, "max_position_notional": 1e9,
        "max_notional_per_minute": 1e12, "pnl_interval_ms": 200})
    bus = MemoryBus()
    stop = asyncio.Event()
    ingest = await start_ingest(s, bus)
    executor = asyncio.create_task(serve(s, bus, stop))
    try:
        while await bus.latest(EXEC_PNL_STREAM) is None:  # executor up, group created
            await asyncio.sleep(0.02)
        reader = StreamReader(bus, [book_stream(SYM)], block_ms=500)
        sent = 0
        deadline = time.monotonic() + 20
        while sent < 6 and time.monotonic() < deadline:  # one signal per fresh snapshot, alternating
            for e in await reader.next_batch():
                if isinstance(e, Entry) and sent < 6:
                    snap = decode_snapshot(e.data)
                    probs = [0.1, 0.1, 0.8] if sent % 2 == 0 else [0.8, 0.1, 0.1]
                    await bus.publish(SIGNALS_STREAM, encode_signal(
                        make_signal(SYM, time.time_ns(), e.id, snap.ts, "sim@1", 10, probs)))
                    sent += 1
        while len(await bus.range(EXEC_ORDERS_STREAM)) + len(await bus.range(EXEC_RISK_STREAM)) < sent:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # the last children reach their venues (<= 15 ms latency)
    finally:
        stop.set()
        await asyncio.wait_for(executor, 5)
        await ingest.close()
    risk = [records.decode(e.data) for e in await bus.range(EXEC_RISK_STREAM)]
    orders = [records.decode(e.data) for e in await bus.range(EXEC_ORDERS_STREAM)]
    fills = [records.decode(e.data) for e in await bus.range(EXEC_FILLS_STREAM)]
    assert len(orders) == 6, [r.reason for r in risk]
    # 200k USD of BTC is more than any one simulated venue shows near the touch: the router splits
    assert any(len(o.children) > 1 for o in orders)
    assert {f.venue for f in fills} <= {"binance", "coinbase", "kraken-v1"} and len({f.venue for f in fills}) > 1
    for f in fills:
        assert f.status in ("filled", "partial", "unfilled")
        if f.qty:  # the routing limit caps the price, the venue's fee comes on top
            cap = s.executor.max_slippage_bps + s.executor.taker_fee_bps[f.venue]
            assert f.realised_slippage_bps <= cap + 1e-6, f
    pnl = records.decode((await bus.latest(EXEC_PNL_STREAM)).data)
    assert pnl.counters["orders"] == 6 and SYM in pnl.marks
