"""The dashboard service over real loopback HTTP: feeds -> hub -> pages and SSE, on a MemoryBus
fed with records the real pipeline and schema produced."""

import asyncio
import time

import aiohttp
import pytest

from cobstack.bus import MemoryBus
from cobstack.bus.local_redis import free_port
from cobstack.config import Settings
from cobstack.core import schema
from cobstack.dashboard.service import serve
from cobstack.streams import HEALTH_STREAM, book_stream, trades_stream
from test_dashboard_views import VENUES, Trade, encoded, pipeline


def health() -> bytes:
    stats = {"messages": 10, "resyncs": 1, "gaps": 0, "checksum_failures": 2, "rejected": {"bad_level": 3}}
    venues = [schema.venue_health(v, "live", {"X": "live"}, stats, 5.0, 40.0) for v in VENUES]
    return schema.encode(schema.health_record(time.time_ns(), venues, "ok"))


async def read_events(resp: aiohttp.ClientResponse, until, timeout: float = 10.0) -> dict[str, str]:
    """SSE events (name -> newest data) until `until(events)` holds."""
    events: dict[str, str] = {}
    name, data = None, []
    async with asyncio.timeout(timeout):
        async for raw in resp.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
            elif line == "" and name is not None:
                events[name] = "\n".join(data)
                name, data = None, []
                if until(events):
                    return events
    raise AssertionError(f"stream ended before the condition held; got {sorted(events)}")


@pytest.fixture
async def dashboard():
    """A running dashboard on a free loopback port over a MemoryBus that already holds one
    snapshot, one trade and one health record (so the start-up backfill is exercised)."""
    bus, pipe = MemoryBus(), pipeline()
    now = time.time_ns()
    await bus.publish(book_stream("BTC-USD"), encoded(pipe, now))
    await bus.publish(trades_stream("BTC-USD"), schema.encode(schema.trade_record(
        "BTC-USD", Trade("coinbase", 100.0, 0.5, "buy", now / 1e9), "USD")))
    await bus.publish(HEALTH_STREAM, health())
    settings = Settings(dashboard={"port": free_port()}, venues=VENUES)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, bus, stop))
    url = f"http://127.0.0.1:{settings.dashboard.port}"
    async with aiohttp.ClientSession() as http:
        for _ in range(100):
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        yield url, http, bus, pipe, stop, task
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_page_includes_the_same_fragments_sse_then_updates_live(dashboard):
    url, http, bus, pipe, stop, task = dashboard
    async with http.get(url + "/book/BTC-USD") as r:
        page = await r.text()
    assert r.status == 200 and 'data-seq="1"' in page and "checksum fail" in page
    async with http.get(url + "/sse/overview?symbol=BTC-USD") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        first = await read_events(resp, lambda ev: {"ladder.BTC-USD", "trades.BTC-USD", "health", "status"} <= ev.keys())
        assert first["ladder.BTC-USD"] in page  # the page carried exactly what SSE sends
        assert "coinbase" in first["trades.BTC-USD"] and "100.00" in first["trades.BTC-USD"]
        await bus.publish(book_stream("BTC-USD"), encoded(pipe, time.time_ns()))
        panels = ("ladder", "stats", "venues", "profile", "heatmap")
        later = await read_events(resp, lambda ev: all('data-seq="2"' in ev.get(f"{p}.BTC-USD", "") for p in panels))
        assert 'data-recv-ts="' in later["stats.BTC-USD"]
        async with http.get(url + "/metrics") as m:
            assert "cobstack_dashboard_sse_clients 1.0" in await m.text()
    # the connection is closed: the hub forgets the browser
    for _ in range(50):
        async with http.get(url + "/healthz") as r:
            if (await r.json())["sse_clients"] == 0:
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("SSE subscriber not released after the browser left")


async def test_malformed_record_is_counted_and_the_feed_goes_on(dashboard):
    url, http, bus, pipe, stop, task = dashboard

    async def book_feed() -> dict:
        async with http.get(url + "/healthz") as r:
            return (await r.json())["feeds"]["cob:book:BTC-USD"]

    async with http.get(url + "/sse/overview?symbol=BTC-USD") as resp:
        await read_events(resp, lambda ev: "stats.BTC-USD" in ev)
        await bus.publish(book_stream("BTC-USD"), b"\x92garbage")
        for _ in range(100):
            if (await book_feed())["rejected"]:
                break
            await asyncio.sleep(0.02)
        await bus.publish(book_stream("BTC-USD"), encoded(pipe, time.time_ns()))
        await read_events(resp, lambda ev: 'data-seq="2"' in ev.get("stats.BTC-USD", ""))
    feed = await book_feed()
    assert feed["rejected"] == 1 and feed["records"] == 2 and feed["error"] is None  # tailed: garbage + one


async def test_consumer_pages_show_not_running_and_unknown_pages_are_404(dashboard):
    url, http, *_ = dashboard
    async with http.get(url + "/model") as r:
        assert "trainer not running" in await r.text() and "cobstack train" in await r.text()
    async with http.get(url + "/executor") as r:
        text = await r.text()
        assert "executor not running" in text and "cob:exec:fills" in text
    for path in ("/book/DOGE-USD", "/sse/overview?symbol=DOGE-USD", "/sse/nope"):
        async with http.get(url + path) as r:
            assert r.status == 404, path


async def test_stop_ends_serve_while_a_browser_is_connected(dashboard):
    url, http, bus, pipe, stop, task = dashboard
    async with http.get(url + "/sse/overview?symbol=BTC-USD") as resp:
        await read_events(resp, lambda ev: "ladder.BTC-USD" in ev)
        started = time.monotonic()
        stop.set()
        await asyncio.wait_for(task, 10)
        assert time.monotonic() - started < 5
        await asyncio.wait_for(resp.content.read(), 5)  # what was sent, then the end of the stream
        assert resp.content.at_eof()
