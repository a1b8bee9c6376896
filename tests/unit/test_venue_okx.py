"""OKX adapter on frames in the documented v5 shapes: snapshot, seqId/prevSeqId continuity
(including the documented keep-alive and reset cases), CRC32 checksum, per-instrument resync."""

import asyncio
import random
import time
import zlib
from decimal import Decimal

import orjson
import pytest
from aiohttp import WSMsgType, web
from hypothesis import given, settings
from hypothesis import strategies as st

from cobstack.core.book import L2Book
from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.checksums import okx as okx_checksum
from cobstack.venues.connect import VenueConnection
from cobstack.venues.okx import OkxAdapter

INST = "BTC-USDT"


def books(action, bids, asks, seq, prev, checksum, inst=INST) -> str:
    """A `books` push; levels are [price, size] and get OKX's deprecated "0" and order count."""
    return orjson.dumps({"arg": {"channel": "books", "instId": inst}, "action": action, "data": [{
        "asks": [[p, s, "0", "1"] for p, s in asks], "bids": [[p, s, "0", "1"] for p, s in bids],
        "ts": "1597026383085", "checksum": checksum, "prevSeqId": prev, "seqId": seq}]}).decode()


class Reference:
    """An independent copy of the venue's book, to compute the checksum OKX would send."""

    def __init__(self):
        self.book = L2Book("ref", INST)

    def apply(self, bids, asks) -> int:
        for p, s in bids:
            self.book.update(True, p, s)
        for p, s in asks:
            self.book.update(False, p, s)
        return okx_checksum(self.book)


@pytest.fixture
def live():
    a = OkxAdapter([INST, "ETH-USDT"])
    ref = Reference()
    bids, asks = [("100.1", "2"), ("100", "1")], [("100.5", "3"), ("101", "4")]
    a.on_frame(books("snapshot", bids, asks, 10, -1, ref.apply(bids, asks)), 1.0)
    assert a.state[INST] == LIVE and a.stats.checksums_ok == 1
    return a, ref


def test_documented_checksum_strings_verify():
    """OKX's checksum examples: "3366.1:7:3366.8:9:3366:6:3368:8" is -1881014294 (signed) and
    the uneven "3366.1:7:3366.8:9:3368:8:3372:8" is 831078360 (the values the OKEx docs give
    for these strings; the v5 push example's -855196043 does not match its own levels)."""
    a = OkxAdapter()
    a.on_frame(books("snapshot", [("3366.1", "7"), ("3366", "6")], [("3366.8", "9"), ("3368", "8")],
                     1, -1, -1881014294), 1.0)
    a.on_frame(books("snapshot", [("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")],
                     1, -1, 831078360, inst="ETH-USDT"), 1.0)
    assert a.stats.checksums_ok == 2 and a.stats.checksum_failures == 0
    assert a.flagged() == []


def test_documented_push_shape_with_four_field_levels():
    frame = {"arg": {"channel": "books", "instId": INST}, "action": "snapshot", "data": [{
        "asks": [["8476.98", "415", "0", "13"], ["8477", "7", "0", "2"]],
        "bids": [["8476.97", "256", "0", "12"], ["8475.55", "101", "0", "1"]],
        "ts": "1597026383085", "checksum": 0, "prevSeqId": -1, "seqId": 123456}]}
    a = OkxAdapter()
    a.on_frame(orjson.dumps(frame), 1.0)
    book = a.books[INST]
    assert a.state[INST] == LIVE and book.seq == 123456
    assert (book.best_bid().price_str, book.best_ask().size_str) == ("8476.97", "415")
    assert a.stats.checksums_ok == 0  # checksum 0: the deprecated field, nothing to verify


def test_updates_chain_by_prev_seq_id_and_verify(live):
    a, ref = live
    changes = [("100.1", "0")], [("100.4", "1.5")]
    a.on_frame(books("update", *changes, 11, 10, ref.apply(*changes)), 2.0)
    # keep-alive: no levels, seqId repeated (documented "no update" case)
    a.on_frame(books("update", [], [], 11, 11, ref.apply([], [])), 3.0)
    # maintenance reset: seqId smaller than prevSeqId, prevSeqId still the last seqId
    changes = [("99", "5")], []
    a.on_frame(books("update", *changes, 3, 11, ref.apply(*changes)), 4.0)
    assert a.stats.updates == 3 and a.stats.checksums_ok == 4 and a.stats.gaps == 0
    book = a.books[INST]
    assert book.seq == 3 and book.best_bid().price_str == "100" and book.best_ask().price_str == "100.4"


def test_gap_resyncs_that_instrument_only(live):
    a, ref = live
    a.on_frame(books("snapshot", [("2000", "1")], [("2001", "1")], 5, -1, 0, inst="ETH-USDT"), 1.0)
    changes = [("100", "2")], []
    a.on_frame(books("update", *changes, 13, 12, ref.apply(*changes)), 2.0)  # 11..12 lost
    assert a.stats.gaps == 1 and a.state[INST] == RESYNC and len(a.books[INST].bids) == 0
    assert a.state["ETH-USDT"] == LIVE
    sent = [orjson.loads(e[1]) for e in a.outbox]
    assert sent == [{"op": "unsubscribe", "args": [{"channel": "books", "instId": INST}]},
                    {"op": "subscribe", "args": [{"channel": "books", "instId": INST}]}]
    # updates before the new snapshot are dropped; the snapshot makes it live again
    a.on_frame(books("update", [], [], 14, 13, 0), 3.0)
    assert a.stats.stale_dropped == 1 and a.stats.gaps == 1
    a.on_frame(books("snapshot", [("100", "1")], [("101", "1")], 20, -1, 0), 4.0)
    assert a.state[INST] == LIVE


def test_corrupted_level_fails_the_checksum(live):
    a, ref = live
    good = ref.apply([("100", "1.5")], [])
    a.on_frame(books("update", [("100", "1.6")], [], 11, 10, good), 2.0)  # size corrupted in flight
    assert a.stats.checksum_failures == 1 and a.state[INST] == RESYNC
    assert [orjson.loads(e[1])["op"] for e in a.outbox] == ["unsubscribe", "subscribe"]


def test_checksum_uses_original_strings(live):
    """OKX: "If price is '0.5000', do not calculate the checksum by '0.5'"."""
    a, ref = live
    changes = [], [("100.50", "3")]  # same level as "100.5", respelt: the venue's text counts
    a.on_frame(books("update", *changes, 11, 10, ref.apply(*changes)), 2.0)
    assert a.stats.checksums_ok == 2 and a.books[INST].best_ask().price_str == "100.50"


def test_bad_input_is_counted(live):
    a, _ = live
    a.on_frame(books("update", [("NaN", "1")], [], 11, 10, 0), 2.0)
    assert a.stats.rejected["non_finite"] == 1 and a.state[INST] == RESYNC
    a.on_frame(books("snapshot", [("1", "1")], [("2", "1")], "x", -1, 0, inst="ETH-USDT"), 2.0)
    assert a.stats.rejected["malformed_update_id"] == 1
    a.on_frame(books("snapshot", [("1", "1")], [("2", "1")], 1, -1, 0, inst="SOL-USDT"), 2.0)
    assert a.stats.rejected["unknown_instrument"] == 1
    a.on_frame('{"event":"error","code":"60012","msg":"Invalid request"}', 2.0)
    a.on_frame("not json", 2.0)
    assert a.stats.rejected["venue_error"] == 1 and a.stats.rejected["unparseable:JSONDecodeError"] == 1


def test_crossing_snapshot_faults(live):
    a, _ = live
    a.on_frame(books("snapshot", [("102", "1")], [("101", "1")], 1, -1, 0, inst="ETH-USDT"), 2.0)
    assert a.stats.crossed == 1 and a.state["ETH-USDT"] == RESYNC and a.state[INST] == LIVE


def test_trades_pong_acks_and_subscriptions():
    a = OkxAdapter([INST], ws_url="ws://127.0.0.1:1")
    assert a.ws_url() == "ws://127.0.0.1:1/ws/v5/public" and a.app_ping == "ping"
    a.start()
    assert orjson.loads(a.outbox[0][1]) == {"op": "subscribe", "args": [
        {"channel": "books", "instId": INST}, {"channel": "trades", "instId": INST}]}
    a.on_frame(orjson.dumps({"arg": {"channel": "trades", "instId": INST}, "data": [{
        "instId": INST, "tradeId": "130639474", "px": "42219.9", "sz": "0.12060306", "side": "sell",
        "ts": "1630048897897", "count": "3"}]}), 1.0)
    assert [(t.price, t.size, t.side, t.ts) for t in a.trades] == [(42219.9, 0.12060306, "sell", 1630048897.897)]
    a.on_frame("pong", 1.0)
    a.on_frame('{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}', 1.0)
    assert a.stats.ignored == 2 and not a.stats.rejected
    with pytest.raises(ValueError, match="1..400"):
        OkxAdapter([INST], depth=500)


def _okx_uncached(book: L2Book) -> int:
    bids = [f"{lv.price_str}:{lv.size_str}" for lv in book.bids.top(25)]
    asks = [f"{lv.price_str}:{lv.size_str}" for lv in book.asks.top(25)]
    merged = [x for i in range(max(len(bids), len(asks))) for x in (bids[i:i + 1] + asks[i:i + 1])]
    value = zlib.crc32(":".join(merged).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.sampled_from(["0", "1", "2.5"])), max_size=150),
       st.integers(20, 40))
def test_cached_checksum_always_equals_a_fresh_one(operations, depth):
    """The per-side "price:size" cache must follow every change that can reach the top 25."""
    book = L2Book("okx", INST, max_depth=depth)
    book.load([(f"{p}.5", "1") for p in range(1, 35)], [(f"{p}.5", "1") for p in range(50, 85)])
    for is_bid, tick, size in operations:
        book.update(is_bid, f"{tick}.5" if is_bid else f"{tick + 40}.5", size)
        book.truncate()
        assert okx_checksum(book) == _okx_uncached(book)


# -- synthetic stream (also the throughput benchmark's input) ---------------------------------

TICK = Decimal("0.1")


def synthetic_stream(n: int, seed: int = 7, levels: int = 400) -> list[str]:
    """A `books` snapshot and `n` updates on a random walk, each with its correct checksum."""
    rng = random.Random(seed)
    ref = Reference()
    bids = [(f"{30000 - i * 0.1:.1f}", f"{rng.randint(1, 900) / 100}") for i in range(levels)]
    asks = [(f"{30000.1 + i * 0.1:.1f}", f"{rng.randint(1, 900) / 100}") for i in range(levels)]
    frames = [books("snapshot", bids, asks, 1, -1, ref.apply(bids, asks))]
    for seq in range(2, n + 2):
        best_bid, best_ask = (Decimal(side.best().price_str) for side in (ref.book.bids, ref.book.asks))
        changes = ([], [])
        for _ in range(rng.randint(1, 4)):
            is_bid = rng.random() < 0.5
            offset = rng.randint(0, 30) * TICK
            price = best_bid - offset if is_bid else best_ask + offset
            size = "0" if rng.random() < 0.3 else f"{rng.randint(1, 900) / 100}"
            changes[0 if is_bid else 1].append((f"{price:.1f}", size))
        frames.append(books("update", *changes, seq, seq - 1, ref.apply(*changes)))
    return frames


def test_synthetic_stream_verifies_every_checksum():
    frames = synthetic_stream(2000)
    a = OkxAdapter()
    start = time.process_time()  # CPU time: the figure is per core, whatever else the host runs
    for f in frames:
        a.on_frame(f, 1.0)
    elapsed = time.process_time() - start
    assert a.stats.checksums_ok == len(frames) and a.stats.checksum_failures == 0
    assert a.stats.updates == len(frames) - 1 and a.flagged() == []
    print(f"okx: {len(frames) / elapsed:,.0f} msgs/s with checksums")


async def test_shell_sends_the_app_ping_and_ignores_the_pong():
    """Over a real loopback websocket: the shell sends OKX's text "ping" every heartbeat and
    the server's "pong" is counted as ignored, not rejected."""
    received: list[str] = []

    async def handler(request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                received.append(msg.data)
                if msg.data == "ping":
                    await ws.send_str("pong")
        return ws

    app = web.Application()
    app.router.add_get("/ws/v5/public", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        conn = VenueConnection(OkxAdapter([INST], ws_url=f"ws://127.0.0.1:{port}"), lambda a, t: None,
                               heartbeat_s=0.05, stall_s=5.0)
        task = asyncio.create_task(conn.run())
        for _ in range(200):
            if received.count("ping") >= 2 and conn.adapter.stats.ignored >= 2:
                break
            await asyncio.sleep(0.01)
        await conn.stop()
        await task
    finally:
        await runner.cleanup()
    assert orjson.loads(received[0])["op"] == "subscribe" and received.count("ping") >= 2
    assert conn.adapter.stats.ignored >= 2 and not conn.adapter.stats.rejected
