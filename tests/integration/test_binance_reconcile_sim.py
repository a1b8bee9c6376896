"""Periodic reconciliation over real loopback sockets against the simulated Binance venue:
the shell fetches reconciliation snapshots within the REST budget while the book streams."""

from __future__ import annotations

import asyncio

import aiohttp

from cobstack.sim.server import start_sim
from cobstack.venues.binance import BinanceAdapter
from cobstack.venues.connect import VenueConnection


async def _until(predicate, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _run(done, faults: dict | None = None) -> tuple[BinanceAdapter, VenueConnection, str]:
    """Stream BTCUSDT from the sim, reconciling every 0.5 s; once the book is live, switch
    `faults` on; run until done(adapter, connection). Returns both, and the connection's
    health state at that moment."""
    sim = await start_sim(["binance"], ["BTC-USD"], seed=11, speed=2.0)
    ws_url, rest_url = sim.endpoints["binance"]
    adapter = BinanceAdapter(["BTCUSDT"], ws_url=ws_url, rest_url=rest_url, reconcile_s=0.5)
    conn = VenueConnection(adapter, lambda a, t: None, reconcile_tick_s=0.1)
    task = asyncio.create_task(conn.run())
    try:
        if faults:
            await _until(lambda: adapter.consistent("BTCUSDT"), 10)
            async with aiohttp.ClientSession() as http:
                async with http.post(rest_url + "/_sim/faults", json=faults) as r:
                    assert r.status == 200, await r.text()
        await _until(lambda: done(adapter, conn), 15)
        state = conn.health.state
    finally:
        await conn.stop()
        await asyncio.wait_for(task, 5)
        await sim.stop()
    return adapter, conn, state


async def test_reconciliations_against_the_sim_find_no_drift():
    a, _, _ = await _run(lambda a, c: a.stats.reconciliations >= 4)
    r = a.reconciliations["BTCUSDT"]
    assert r.outcome == "in_sync" and r.drifted_levels == 0 and r.levels_compared == 50
    assert r.update_id >= r.snapshot_update_id > 0
    assert min(r.live_depth) > 0 and min(r.snapshot_depth) > 0
    s = a.stats
    assert s.drift_events == 0 and s.gaps == 0 and s.resyncs == 0 and a.state["BTCUSDT"] == "live"


async def test_silently_corrupted_diffs_are_found_by_reconciliation_and_resynced():
    # corrupt_level alters one level's size in a diff: ids intact, so only a snapshot can tell
    a, _, _ = await _run(lambda a, c: a.stats.drift_events >= 1 and a.consistent("BTCUSDT"),
                      {"corrupt_level": 0.3})
    assert a.stats.gaps == 0 and a.stats.drifted_levels >= 1 and a.stats.resyncs >= 1


async def test_a_refused_reconciliation_is_not_retried_and_leaves_the_venue_live():
    # a retried fetch would keep its task alive as long as the venue refuses (here: always)
    a, conn, state = await _run(lambda a, c: c.health.errors.get("rate_limited", 0) >= 2 and not c._rest_tasks,
                                {"rate_limit": 1.0, "retry_after": 1})
    assert state == "live" and a.consistent("BTCUSDT") and a.stats.resyncs == 0
