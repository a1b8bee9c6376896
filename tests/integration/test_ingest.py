"""Ingest end to end on loopback: simulated venues -> books -> snapshots on a real Redis.

Covers the fault contract of the data plane: Redis going away keeps the books and reports
the bus down, publishing resumes when it is back; garbage from one venue is counted and
never reaches a book or stops the others.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from cobstack.bus import RedisStreamsBus, MemoryBus
from cobstack.bus.local_redis import free_port
from cobstack.config import Settings
from cobstack.core import schema
from cobstack.stack import start_ingest
from cobstack.streams import HEALTH_STREAM, book_stream

VENUES = ["binance", "coinbase", "kraken-v1"]


def settings(**kw) -> Settings:
    kw.setdefault("ingest", {"metrics_port": 0, "publish_interval_ms": 50})
    return Settings(venues=VENUES, symbols=["BTC-USD", "ETH-USD"], **kw)


async def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def latest_snapshot(bus, symbol: str):
    entry = await bus.latest(book_stream(symbol))
    return schema.decode_snapshot(entry.data) if entry else None


async def all_venues_included(bus) -> bool:
    for symbol in ("BTC-USD", "ETH-USD"):
        snap = await latest_snapshot(bus, symbol)
        if snap is None or sorted(s.venue for s in snap.status if s.included) != VENUES:
            return False
    return True


@pytest.mark.redis
async def test_snapshots_flow_through_redis_and_survive_a_redis_restart(redis_server_factory):
    server = redis_server_factory()
    bus = RedisStreamsBus(server.url)
    running = await start_ingest(settings(redis_url=server.url), bus)
    ingest = running.ingest
    try:
        await wait_for(lambda: all_venues_included(bus), 20, "snapshots with every venue on Redis")
        snap = await latest_snapshot(bus, "BTC-USD")
        assert all(s.bid < s.ask for s in snap.status if s.included)
        assert snap.features.crossed == (snap.features.best_bid >= snap.features.best_ask)
        assert snap.ladder.bids[0].total == pytest.approx(sum(snap.ladder.bids[0].sizes))
        assert snap.recv_ts is not None and snap.ts >= snap.recv_ts
        entry = await wait_for(lambda: bus.latest(HEALTH_STREAM), 5, "a health record")
        health = schema.decode_health(entry.data)
        assert {v.venue for v in health.venues} == set(VENUES) and health.bus.state == "ok"

        server.stop()
        await wait_for(lambda: _true(not ingest.bus_up), 10, "ingest to report the bus down")
        assert "unreachable" in ingest.health(time.time())["bus"]["detail"]
        await asyncio.sleep(0.5)
        # Books are kept while the bus is down: every venue is still consistent.
        assert all(a.consistent(n) for a in ingest.adapters.values() for n in a.books)

        server.start()  # a fresh, empty Redis (no persistence): ingest must fill it again
        await wait_for(lambda: _true(ingest.bus_up), 20, "ingest to see the bus back")
        await wait_for(lambda: all_venues_included(bus), 20, "snapshots again after the restart")
    finally:
        await running.close()
        await bus.close()


async def _true(value: bool) -> bool:
    return value


async def test_garbage_from_one_venue_is_counted_and_never_stops_the_others():
    bus = MemoryBus()
    running = await start_ingest(settings(), bus)
    ingest, sim = running.ingest, running.venues.sim
    try:
        await wait_for(lambda: all_venues_included(bus), 20, "all venues live")
        sim.faults("coinbase").update({"malformed": 0.5})
        await wait_for(lambda: _true(sum(ingest.adapters["coinbase"].stats.rejected.values()) >= 5),
                       20, "malformed coinbase frames to be counted")
        sim.faults("coinbase").update({"malformed": 0.0})
        for venue in ("binance", "kraken-v1"):
            assert not ingest.adapters[venue].stats.rejected
        await wait_for(lambda: all_venues_included(bus), 20, "every venue included after the garbage")
        snap = await latest_snapshot(bus, "BTC-USD")
        # Venues can cross each other (that is arbitrage, and flagged in features.crossed);
        # no venue's own book may ever be crossed.
        assert all(s.bid < s.ask for s in snap.status if s.included)
    finally:
        await running.close()


async def test_metrics_and_health_endpoints_answer():
    bus = MemoryBus()
    port = free_port()
    running = await start_ingest(settings(ingest={"metrics_port": port, "publish_interval_ms": 50}), bus)
    try:
        await wait_for(lambda: all_venues_included(bus), 20, "all venues live")
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
                assert r.status == 200
                assert 'cobstack_venue_messages_total{venue="binance"}' in text
                assert 'cobstack_instrument_live{instrument="XBT/USD",venue="kraken-v1"} 1.0' in text
            async with http.get(f"http://127.0.0.1:{port}/readyz") as r:
                assert r.status == 200 and (await r.json())["ready"] is True
            async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                body = await r.json()
                assert {v["venue"] for v in body["venues"]} == set(VENUES)
    finally:
        await running.close()
