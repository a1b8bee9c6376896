"""The simulated venue servers over real loopback sockets, spoken to like the real venues."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from cobstack.core.book import L2Book
from cobstack.core.symbols import venue_instrument
from cobstack.sim.server import start_sim
from cobstack.venues.checksums import kraken as kraken_checksum
from cobstack.venues.connect import VenueConnection
from cobstack.venues.registry import make_adapter

VENUES = ["binance", "kraken-v1", "coinbase"]


@pytest.fixture
async def sim():
    handle = await start_sim(VENUES, ["BTC-USD", "ETH-USD"], seed=7, speed=2.0)
    yield handle
    await handle.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def _frames(ws, seconds: float):
    """Text frames received within `seconds` (stops early if the socket closes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            return
        if msg.type != aiohttp.WSMsgType.TEXT:
            return
        yield msg.data


async def _post_faults(http, sim, venue: str, body: dict) -> dict:
    async with http.post(sim.endpoints[venue][1] + "/_sim/faults", json=body) as r:
        assert r.status == 200, await r.text()
        return await r.json()


# -- binance -------------------------------------------------------------------------------

async def _binance_sync(http, sim, ws, seconds: float) -> dict:
    """Binance's documented procedure: buffer diffs, fetch the snapshot, drop old diffs,
    then require U == previous u + 1. Returns counts (gaps instead of failing)."""
    first = json.loads((await ws.receive(timeout=5)).data)
    async with http.get(sim.endpoints["binance"][1] + "/api/v3/depth",
                        params={"symbol": "BTCUSDT", "limit": "1000"}) as r:
        assert r.status == 200
        snap = await r.json()
    book = L2Book("binance", "BTCUSDT")
    book.load(snap["bids"], snap["asks"])
    last_u, applied, gaps = snap["lastUpdateId"], 0, 0
    buffered = [first]
    async for text in _frames(ws, seconds):
        buffered.append(json.loads(text))
        for frame in buffered:
            ev = frame["data"]
            if frame["stream"] != "btcusdt@depth@100ms" or ev["u"] <= last_u:
                continue
            if not ev["U"] <= last_u + 1 <= ev["u"]:
                gaps += 1
            for p, q in ev["b"]:
                book.update(True, p, q)
            for p, q in ev["a"]:
                book.update(False, p, q)
            assert gaps or not book.is_crossed()  # after a gap the book is known bad
            last_u, applied = ev["u"], applied + 1
        buffered.clear()
    return {"applied": applied, "gaps": gaps}


async def test_binance_snapshot_ids_align_with_diffs(sim, http):
    url = sim.endpoints["binance"][0] + "/stream?streams=btcusdt@depth@100ms/btcusdt@aggTrade"
    async with http.ws_connect(url) as ws:
        counts = await _binance_sync(http, sim, ws, 1.5)
    assert counts["gaps"] == 0 and counts["applied"] >= 15


async def test_binance_ws_subscribe_message_on_raw_stream(sim, http):
    async with http.ws_connect(sim.endpoints["binance"][0] + "/ws") as ws:
        await ws.send_str('{"method":"SUBSCRIBE","params":["ethusdt@depth@100ms","ethusdt@aggTrade"],"id":1}')
        assert json.loads((await ws.receive(timeout=2)).data) == {"result": None, "id": 1}
        events = [json.loads(t) async for t in _frames(ws, 1.0)]
    assert {e["e"] for e in events} == {"depthUpdate", "aggTrade"}
    assert all(e["s"] == "ETHUSDT" for e in events)


# -- kraken --------------------------------------------------------------------------------

async def _kraken_book(ws, pairs: list[str], seconds: float) -> dict:
    """Subscribe to book-10, keep an independent book per pair, compare every checksum."""
    await ws.send_str(json.dumps({"event": "subscribe", "pair": pairs,
                                  "subscription": {"name": "book", "depth": 10}}))
    books = {p: L2Book("kraken-v1", p, 10) for p in pairs}
    counts = {"ok": 0, "bad": 0, "snapshots": 0}
    async for text in _frames(ws, seconds):
        msg = json.loads(text)
        if isinstance(msg, dict):
            assert msg.get("status") != "error", msg
            continue
        book = books[msg[-1]]
        if "as" in msg[1]:
            book.load([lv[:2] for lv in msg[1]["bs"]], [lv[:2] for lv in msg[1]["as"]])
            counts["snapshots"] += 1
            continue
        for part in msg[1:-2]:
            for key, is_bid in (("a", False), ("b", True)):
                for level in part.get(key, ()):
                    book.update(is_bid, level[0], level[1])
        book.truncate()
        counts["ok" if int(msg[-3]["c"]) == kraken_checksum(book) else "bad"] += 1
    return counts


async def test_kraken_checksums_verify_against_an_independent_book(sim, http):
    async with http.ws_connect(sim.endpoints["kraken-v1"][0] + "/") as ws:
        assert json.loads((await ws.receive(timeout=2)).data)["event"] == "systemStatus"
        counts = await _kraken_book(ws, ["XBT/USD", "ETH/USD"], 1.5)
        assert counts == {"ok": counts["ok"], "bad": 0, "snapshots": 2} and counts["ok"] >= 30

        await ws.send_str('{"event":"ping","reqid":5}')
        await ws.send_str('{"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}')
        await ws.send_str('{"event":"unsubscribe","pair":["ETH/USD","XBT/USD"],'
                          '"subscription":{"name":"book","depth":10}}')
        frames = [json.loads(t) async for t in _frames(ws, 1.0)]
    events = [f for f in frames if isinstance(f, dict)]
    assert {"event": "pong", "reqid": 5} in events
    assert sum(e.get("status") == "unsubscribed" for e in events) == 2
    last_status = max(i for i, f in enumerate(frames) if isinstance(f, dict) and f.get("status") == "unsubscribed")
    assert not any(isinstance(f, list) and f[-2] == "book-10" for f in frames[last_status:])
    trades = [f for f in frames if isinstance(f, list) and f[-2] == "trade"]
    assert trades and all(t[1][0][3] in ("b", "s") for t in trades)


async def test_kraken_heartbeat_when_idle(sim, http):
    async with http.ws_connect(sim.endpoints["kraken-v1"][0] + "/") as ws:
        frames = [json.loads(t) async for t in _frames(ws, 1.5)]
    assert {"event": "heartbeat"} in frames


# -- coinbase ------------------------------------------------------------------------------

async def test_coinbase_snapshot_then_updates(sim, http):
    async with http.ws_connect(sim.endpoints["coinbase"][0] + "/") as ws:
        await ws.send_str(json.dumps({"type": "subscribe", "product_ids": ["BTC-USD"],
                                      "channels": ["level2_batch", "matches"]}))
        frames = [json.loads(t) async for t in _frames(ws, 1.5)]
        await ws.send_str('{"type":"unsubscribe","product_ids":["BTC-USD"],"channels":["level2_batch","matches"]}')
        after = [json.loads(t) async for t in _frames(ws, 0.3)]
    assert frames[0]["type"] == "subscriptions" and frames[1]["type"] == "snapshot"
    book = L2Book("coinbase", "BTC-USD")
    book.load(frames[1]["bids"], frames[1]["asks"])
    types = [f["type"] for f in frames[2:]]
    for f in frames[2:]:
        if f["type"] == "l2update":
            for side, p, s in f["changes"]:
                book.update(side == "buy", p, s)
            assert not book.is_crossed()
    assert types.count("l2update") >= 50 and "match" in types
    # Frames already in flight may precede the reply; nothing may follow it.
    assert after[-1] == {"type": "subscriptions", "channels": []}


# -- faults --------------------------------------------------------------------------------

async def test_drop_frames_makes_gaps(sim, http):
    state = await _post_faults(http, sim, "binance", {"drop_frames": 0.5})
    assert state["faults"]["drop_frames"] == 0.5
    url = sim.endpoints["binance"][0] + "/stream?streams=btcusdt@depth@100ms"
    async with http.ws_connect(url) as ws:
        counts = await _binance_sync(http, sim, ws, 1.5)
    assert counts["gaps"] >= 2
    assert sim.faults("binance").counts["drop_frames"] >= 2


async def test_corrupt_checksum_and_corrupt_level_are_detected(sim, http):
    async with http.ws_connect(sim.endpoints["kraken-v1"][0] + "/") as ws:
        await ws.receive(timeout=2)
        await _post_faults(http, sim, "kraken-v1", {"corrupt_checksum": 1.0})
        counts = await _kraken_book(ws, ["XBT/USD"], 0.8)
    assert counts["ok"] == 0 and counts["bad"] >= 10

    await _post_faults(http, sim, "kraken-v1", {"corrupt_checksum": 0.0, "corrupt_level": 0.2})
    async with http.ws_connect(sim.endpoints["kraken-v1"][0] + "/") as ws:
        await ws.receive(timeout=2)
        counts = await _kraken_book(ws, ["XBT/USD"], 1.0)
    assert counts["bad"] >= 1 and sim.faults("kraken-v1").counts["corrupt_level"] >= 1


async def test_malformed_frames(sim, http):
    sim.faults("coinbase").update({"malformed": 1.0})
    async with http.ws_connect(sim.endpoints["coinbase"][0] + "/") as ws:
        await ws.send_str('{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}')
        frames = [t async for t in _frames(ws, 0.6)]
    assert frames[0].startswith('{"type":"subscriptions"')  # replies stay intact
    broken = 0
    for text in frames[2:]:
        with pytest.raises(json.JSONDecodeError):
            json.loads(text)
        broken += 1
    assert broken >= 5


async def test_disconnect_closes_every_client(sim, http):
    async with http.ws_connect(sim.endpoints["coinbase"][0] + "/") as a, \
            http.ws_connect(sim.endpoints["coinbase"][0] + "/") as b:
        await _post_faults(http, sim, "coinbase", {"disconnect": True})
        for ws in (a, b):
            msg = await ws.receive(timeout=2)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert sim.faults("coinbase").counts["disconnects"] == 1


async def test_stall_keeps_the_socket_open_and_silent(sim, http):
    loop = asyncio.get_running_loop()
    url = sim.endpoints["binance"][0] + "/stream?streams=btcusdt@depth@100ms"
    async with http.ws_connect(url) as ws:
        await ws.receive(timeout=2)
        await _post_faults(http, sim, "binance", {"stall": 0.8})
        started = loop.time()
        times = [loop.time() - started async for _ in _frames(ws, 1.5)]
        assert not ws.closed
    silent = [t for t in times if t < 0.7]
    assert len(silent) <= 1  # at most a frame already in flight
    assert len([t for t in times if t > 0.8]) >= 3


async def test_geo_block_and_rate_limit(sim, http):
    rest = sim.endpoints["binance"][1] + "/api/v3/depth?symbol=BTCUSDT"
    await _post_faults(http, sim, "binance", {"rate_limit": 1.0, "retry_after": 3})
    async with http.get(rest) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "3"
    async with http.ws_connect(sim.endpoints["binance"][0] + "/ws"):
        pass  # rate limiting is REST only
    await _post_faults(http, sim, "binance", {"rate_limit": 0.0, "geo_block": True})
    async with http.get(rest) as r:
        assert r.status == 451 and "restricted location" in (await r.json())["msg"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await http.ws_connect(sim.endpoints["binance"][0] + "/ws")
    assert e.value.status == 451
    async with http.get(sim.endpoints["binance"][1] + "/_sim/faults") as r:
        counts = (await r.json())["faults"]["counts"]
    assert counts["rate_limit"] == 1 and counts["geo_blocked"] == 2


async def test_bad_fault_request_is_refused(sim, http):
    async with http.post(sim.endpoints["kraken-v1"][1] + "/_sim/faults", json={"drop_frames": 7}) as r:
        assert r.status == 400 and "probability" in (await r.json())["error"]


async def test_unknown_venue_is_refused():
    with pytest.raises(ValueError, match="no simulated venue"):
        await start_sim(["nyse"], ["BTC-USD"])


# -- bitstamp, binance futures, okx, bybit, kraken v2: through the real adapters ---------------

NEW_VENUES = ["bitstamp", "binance-usdm", "binance-coinm", "okx", "bybit", "kraken"]
SYMBOLS = ["BTC-USD", "ETH-USD"]


@pytest.fixture
async def sim_new():
    handle = await start_sim(NEW_VENUES, SYMBOLS, seed=7, speed=2.0)
    yield handle
    await handle.stop()


async def _run_adapters(sim, venues: list[str], seconds: float) -> dict[str, VenueConnection]:
    """Each venue's real adapter in the real shell, pointed at the simulated venue."""
    conns = {}
    for venue in venues:
        natives = [venue_instrument(venue, s).native for s in SYMBOLS]
        ws_url, rest_url = sim.endpoints[venue]
        adapter = make_adapter(venue, natives, ws_url=ws_url, rest_url=rest_url)
        conns[venue] = VenueConnection(adapter, lambda a, t: (a.dirty.clear(), a.trades.clear()),
                                       heartbeat_s=5.0, stall_s=5.0)
    tasks = [asyncio.create_task(c.run()) for c in conns.values()]
    await asyncio.sleep(seconds)
    for c in conns.values():
        await c.stop()
    await asyncio.gather(*tasks)
    return conns


async def test_new_venues_sync_through_their_adapters_on_the_real_paths(sim_new):
    conns = await _run_adapters(sim_new, NEW_VENUES, 2.0)
    for venue, conn in conns.items():
        a, s = conn.adapter, conn.adapter.stats
        assert conn.health.connects == 1 and a.flagged() == [], (venue, a.state, conn.health.message)
        assert s.snapshots == 2 and s.updates >= 10, (venue, s)
        assert (s.gaps, s.checksum_failures, s.crossed, s.resyncs, dict(s.rejected)) == (0, 0, 0, 0, {}), venue
    assert conns["okx"].adapter.stats.checksums_ok >= 20 and conns["kraken"].adapter.stats.checksums_ok >= 100
    for venue in ("bitstamp", "binance-usdm", "binance-coinm"):  # synced from REST snapshots
        assert conns[venue].health.rest_requests == 2


@pytest.mark.parametrize("venue,fault,counter", [
    ("binance-usdm", "drop_frames", "gaps"),
    ("binance-coinm", "drop_frames", "gaps"),
    ("okx", "drop_frames", "gaps"),
    ("okx", "corrupt_checksum", "checksum_failures"),
    ("okx", "corrupt_level", "checksum_failures"),
    ("bybit", "drop_frames", "gaps"),
    ("kraken", "corrupt_checksum", "checksum_failures"),
    ("kraken", "corrupt_level", "checksum_failures"),
])
async def test_new_venue_faults_are_detected_and_resynced(sim_new, venue, fault, counter):
    sim_new.faults(venue).update({fault: 0.2})
    conns = await _run_adapters(sim_new, [venue], 1.2)
    stats = conns[venue].adapter.stats
    assert sim_new.faults(venue).counts[fault] >= 2
    assert getattr(stats, counter) >= 1 and stats.resyncs >= 1, stats
    assert conns[venue].health.connects == 1  # resynced per instrument, never by reconnecting


@pytest.mark.parametrize("venue", ["bitstamp", "okx", "bybit", "kraken"])
async def test_new_venue_malformed_frames_are_counted(sim_new, venue):
    sim_new.faults(venue).update({"malformed": 0.3})
    conns = await _run_adapters(sim_new, [venue], 1.0)
    rejected = conns[venue].adapter.stats.rejected
    assert sum(n for kind, n in rejected.items() if kind.startswith("unparseable")) >= 2, rejected


async def test_new_venue_rest_refusals(sim_new, http):
    for venue, path in (("bitstamp", "/api/v2/order_book/btcusd/"), ("binance-usdm", "/fapi/v1/depth?symbol=BTCUSDT"),
                        ("binance-coinm", "/dapi/v1/depth?symbol=BTCUSD_PERP")):
        rest = sim_new.endpoints[venue][1] + path
        async with http.get(rest) as r:
            assert r.status == 200
        await _post_faults(http, sim_new, venue, {"rate_limit": 1.0, "retry_after": 2})
        async with http.get(rest) as r:
            assert r.status == 429 and r.headers["Retry-After"] == "2"
        await _post_faults(http, sim_new, venue, {"rate_limit": 0.0, "geo_block": True})
        async with http.get(rest) as r:
            assert r.status == 451
    with pytest.raises(aiohttp.WSServerHandshakeError) as e:
        await http.ws_connect(sim_new.endpoints["bitstamp"][0] + "/")
    assert e.value.status == 451


async def test_new_venue_pings_and_heartbeats(sim_new, http):
    ws_urls = {v: sim_new.endpoints[v][0] for v in NEW_VENUES}
    async with http.ws_connect(ws_urls["okx"] + "/ws/v5/public") as ws:
        await ws.send_str("ping")
        assert (await ws.receive(timeout=2)).data == "pong"
    async with http.ws_connect(ws_urls["bybit"] + "/v5/public/spot") as ws:
        await ws.send_str('{"op":"ping","req_id":"p1"}')
        pong = json.loads((await ws.receive(timeout=2)).data)
        assert pong["ret_msg"] == "pong" and pong["req_id"] == "p1"
    async with http.ws_connect(ws_urls["bitstamp"] + "/") as ws:
        await ws.send_str('{"event":"bts:heartbeat"}')
        assert json.loads((await ws.receive(timeout=2)).data)["event"] == "bts:heartbeat"
    async with http.ws_connect(ws_urls["kraken"] + "/v2") as ws:
        assert json.loads((await ws.receive(timeout=2)).data)["channel"] == "status"
        await ws.send_str('{"method":"ping","req_id":3}')
        assert json.loads((await ws.receive(timeout=2)).data)["method"] == "pong"
        frames = [json.loads(t) async for t in _frames(ws, 1.3)]
    assert {"channel": "heartbeat"} in frames
