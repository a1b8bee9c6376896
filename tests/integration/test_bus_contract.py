"""One contract, two buses: every test runs against MemoryBus and RedisStreamsBus (real redis-server)."""

from __future__ import annotations

import asyncio
import time

import pytest

from cobstack.bus import Bus, BusUnavailable, Entry, Gap, MemoryBus, NoSuchGroup, RedisStreamsBus, StreamReader
from cobstack.bus.base import parse_id


def payloads(items: list) -> list[bytes]:
    return [i.data for i in items if isinstance(i, Entry)]


@pytest.fixture
async def restarted(bus: Bus, request: pytest.FixtureRequest):
    """The same backend seen by a consumer process that restarted: a new client for Redis; for
    the in-process bus (whose state lives and dies with the process) the same object."""
    if isinstance(bus, MemoryBus):
        yield bus
        return
    other = RedisStreamsBus(request.getfixturevalue("redis_server").url)
    yield other
    await other.close()


async def test_publish_then_read_in_order_with_increasing_ids(bus: Bus):
    ids = [await bus.publish("s", b"m%d" % i) for i in range(5)]
    got = await bus.read({"s": "0"}, block_ms=None)
    assert [e.id for e in got] == ids
    assert payloads(got) == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert [parse_id(i) for i in ids] == sorted(parse_id(i) for i in ids) and len(set(ids)) == 5
    assert await bus.read({"s": ids[-1]}, block_ms=None) == []
    assert payloads(await bus.read({"s": ids[1]}, block_ms=None, count=2)) == [b"m2", b"m3"]


async def test_every_reader_gets_everything(bus: Bus):
    readers = [StreamReader(bus, ["a", "b"], start="0", block_ms=None) for _ in range(3)]
    await bus.publish_many([("a", b"1"), ("b", b"2"), ("a", b"3")])
    for reader in readers:
        got = await reader.next_batch()
        assert sorted((e.stream, e.data) for e in got) == [("a", b"1"), ("a", b"3"), ("b", b"2")]
        assert await reader.next_batch() == []  # cursors advanced


async def test_blocking_read_wakes_on_publish_and_times_out_empty(bus: Bus):
    t0 = time.monotonic()
    assert await bus.read({"s": "0"}, block_ms=150) == []
    assert time.monotonic() - t0 >= 0.14

    waiting = asyncio.create_task(bus.read({"s": "0"}, block_ms=5_000))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    t0 = time.monotonic()
    await bus.publish("s", b"x")
    got = await asyncio.wait_for(waiting, 2)
    assert payloads(got) == [b"x"] and time.monotonic() - t0 < 1.0


async def test_dollar_means_only_what_arrives_after_the_call(bus: Bus):
    await bus.publish("s", b"old")
    assert await bus.read({"s": "$"}, block_ms=None) == []
    waiting = asyncio.create_task(bus.read({"s": "$"}, block_ms=3_000))
    await asyncio.sleep(0.05)
    await bus.publish("s", b"new")
    assert payloads(await asyncio.wait_for(waiting, 2)) == [b"new"]


async def test_stream_reader_from_dollar_loses_nothing_between_batches(bus: Bus):
    await bus.publish("s", b"before")
    reader = StreamReader(bus, ["s"], block_ms=None)
    assert await reader.next_batch() == []  # pins '$' to the current last id
    await bus.publish_many([("s", b"1"), ("s", b"2")])
    assert payloads(await reader.next_batch()) == [b"1", b"2"]
    await bus.publish("s", b"3")
    it = aiter(reader)
    assert (await anext(it)).data == b"3"


async def test_reader_behind_retention_is_told_with_a_gap(bus: Bus):
    slow = await bus.publish("s", b"0", maxlen=100)  # a reader read this one, then stalled
    for chunk in range(10):
        await bus.publish_many([("s", b"%d" % (chunk * 100 + i + 1)) for i in range(100)], maxlen=100)
    retained = await bus.range("s")
    assert 100 <= len(retained) < 1001  # Redis trims whole nodes ('~'), so at least maxlen remain
    assert retained[-1].data == b"1000"

    got = await bus.read({"s": slow}, block_ms=None, count=1000)
    assert got[0] == Gap("s", slow, retained[0].id)
    assert [e.id for e in got[1:]] == [e.id for e in retained]

    # a reader that kept up (still inside retention) and one reading from the start get no Gap
    tip = retained[-2].id
    assert [type(i) for i in await bus.read({"s": tip}, block_ms=None)] == [Entry]
    assert not any(isinstance(i, Gap) for i in await bus.read({"s": "0"}, block_ms=None, count=1000))


async def test_stream_reader_passes_the_gap_then_continues(bus: Bus):
    reader = StreamReader(bus, ["s"], start="0", block_ms=None, count=1000)
    await bus.publish("s", b"seen", maxlen=100)
    assert payloads(await reader.next_batch()) == [b"seen"]
    await bus.publish_many([("s", b"%d" % i) for i in range(500)], maxlen=100)
    batch = await reader.next_batch()
    assert isinstance(batch[0], Gap) and batch[0].resumed_id == batch[1].id
    assert batch[-1].data == b"499"
    assert await reader.next_batch() == []


async def test_range_and_latest(bus: Bus):
    assert await bus.latest("s") is None
    assert await bus.range("s") == []
    ids = [await bus.publish("s", b"%d" % i) for i in range(6)]
    assert (await bus.latest("s")).data == b"5"
    assert [e.id for e in await bus.range("s")] == ids
    assert payloads(await bus.range("s", ids[1], ids[3])) == [b"1", b"2", b"3"]
    assert payloads(await bus.range("s", count=2)) == [b"0", b"1"]
    page, resumed = await bus.range("s", count=4), []
    while page:  # resumable history: page by exclusive start
        resumed += page
        page = await bus.range("s", "(" + page[-1].id, count=4)
    assert [e.id for e in resumed] == ids
    assert await bus.last_id("s") == ids[-1]
    assert await bus.last_id("absent") == "0-0"


async def test_publish_many_keeps_order_across_streams(bus: Bus):
    ids = await bus.publish_many([("a", b"1"), ("b", b"2"), ("a", b"3"), ("c", b"4")])
    # ids are per stream (each stream has its own sequence); each returned id is its item's
    assert [(e.id, e.data) for e in await bus.range("a")] == [(ids[0], b"1"), (ids[2], b"3")]
    assert [e.id for e in await bus.range("b")] == [ids[1]]
    assert [e.id for e in await bus.range("c")] == [ids[3]]
    got = await bus.read({"a": "0", "b": "0", "c": "0"}, block_ms=None)
    assert sorted((e.stream, e.data) for e in got) == [
        ("a", b"1"), ("a", b"3"), ("b", b"2"), ("c", b"4")]
    assert await bus.publish_many([]) == []


async def test_consumer_groups_split_ack_and_redeliver(bus: Bus, restarted: Bus):
    await bus.ensure_group("orders", "exec")
    await bus.ensure_group("orders", "exec")  # idempotent
    await bus.publish_many([("orders", b"%d" % i) for i in range(6)])

    one = await bus.read_group("exec", "c1", ["orders"], block_ms=None, count=4)
    two = await bus.read_group("exec", "c2", ["orders"], block_ms=None, count=4)
    assert payloads(one) == [b"0", b"1", b"2", b"3"] and payloads(two) == [b"4", b"5"]
    assert await bus.read_group("exec", "c2", ["orders"], block_ms=None) == []

    assert await bus.ack("orders", "exec", [one[0].id, one[1].id]) == 2
    assert await bus.ack("orders", "exec", [one[0].id]) == 0  # already acked

    # c1 restarts: its un-acked entries come back, acked ones do not
    assert payloads(await restarted.pending_for("orders", "exec", "c1")) == [b"2", b"3"]
    assert payloads(await restarted.pending_for("orders", "exec", "c2")) == [b"4", b"5"]


async def test_autoclaim_takes_over_idle_entries(bus: Bus):
    await bus.ensure_group("orders", "exec")
    await bus.publish_many([("orders", b"a"), ("orders", b"b")])
    await bus.read_group("exec", "dead", ["orders"], block_ms=None)
    assert await bus.autoclaim("orders", "exec", "alive", min_idle_ms=60_000) == []
    await asyncio.sleep(0.08)
    claimed = await bus.autoclaim("orders", "exec", "alive", min_idle_ms=50)
    assert payloads(claimed) == [b"a", b"b"]
    assert await bus.pending_for("orders", "exec", "dead") == []
    assert payloads(await bus.pending_for("orders", "exec", "alive")) == [b"a", b"b"]
    assert await bus.ack("orders", "exec", [e.id for e in claimed]) == 2
    assert await bus.pending_for("orders", "exec", "alive") == []


async def test_group_start_and_blocking_read_group(bus: Bus):
    await bus.publish("orders", b"before")
    await bus.ensure_group("orders", "late", start_id="$")
    waiting = asyncio.create_task(bus.read_group("late", "c", ["orders"], block_ms=3_000))
    await asyncio.sleep(0.05)
    await bus.publish("orders", b"after")
    assert payloads(await asyncio.wait_for(waiting, 2)) == [b"after"]


async def test_trimmed_pending_entries_are_dropped(bus: Bus):
    await bus.ensure_group("orders", "exec")
    await bus.publish("orders", b"lost", maxlen=100)
    await bus.read_group("exec", "c", ["orders"], block_ms=None)
    await bus.publish_many([("orders", b"x")] * 400, maxlen=100)
    assert await bus.pending_for("orders", "exec", "c") == []
    assert await bus.autoclaim("orders", "exec", "c", min_idle_ms=0) == []  # not pending any more
    retained = await bus.range("orders")
    assert await bus.read_group("exec", "c", ["orders"], block_ms=None, count=1000) == retained


async def test_bad_input_gets_clear_errors(bus: Bus):
    with pytest.raises(ValueError, match="bad stream id 'nope'"):
        await bus.read({"s": "nope"}, block_ms=None)
    with pytest.raises(TypeError, match="must be bytes"):
        await bus.publish("s", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="maxlen must be a positive int"):
        await bus.publish("s", b"x", maxlen=0)
    with pytest.raises(NoSuchGroup, match="ensure_group"):
        await bus.read_group("nobody", "c", ["s"], block_ms=None)
    with pytest.raises(NoSuchGroup):
        await bus.pending_for("s", "nobody", "c")
    assert await bus.ping() is True


async def test_closed_bus_refuses_work(bus: Bus):
    await bus.close()
    with pytest.raises(BusUnavailable, match="closed"):
        await bus.publish("s", b"x")
