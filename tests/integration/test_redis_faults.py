"""Redis going away and coming back, against a private real redis-server."""

from __future__ import annotations

import asyncio
import time

import pytest

from cobstack.bus import BusUnavailable, RedisStreamsBus, StreamReader

pytestmark = pytest.mark.redis


async def test_outage_raises_quickly_and_the_same_bus_recovers(redis_server_factory):
    server = redis_server_factory()
    bus = RedisStreamsBus(server.url)
    await bus.ensure_group("s", "g")
    reader = StreamReader(bus, ["s"], start="0", block_ms=None)
    await bus.publish("s", b"before")
    assert [e.data for e in await reader.next_batch()] == [b"before"]

    server.stop()
    for operation in (lambda: bus.publish("s", b"x"), lambda: bus.publish_many([("s", b"x")]),
                      reader.next_batch, lambda: bus.range("s"), lambda: bus.latest("s"),
                      lambda: bus.read_group("g", "c", ["s"], block_ms=None),
                      lambda: bus.ack("s", "g", ["1-0"])):
        t0 = time.monotonic()
        with pytest.raises(BusUnavailable) as err:
            await operation()
        assert time.monotonic() - t0 < 2.0
        assert f"Redis at {server.url} is unreachable (connection refused)" in str(err.value)
        assert "check the Redis Service/URL" in str(err.value)
    assert await bus.ping() is False

    server.start()  # same port, empty (no persistence): the same object works again
    entry_id = await bus.publish("s", b"after")
    assert await bus.ping() is True
    assert [e.data for e in await reader.next_batch()] == [b"after"]  # cursor survived the outage
    assert (await bus.latest("s")).id == entry_id
    await bus.close()


async def test_blocked_reader_is_told_when_redis_dies(redis_server_factory):
    server = redis_server_factory()
    bus = RedisStreamsBus(server.url)
    waiting = asyncio.create_task(bus.read({"s": "$"}, block_ms=10_000))
    await asyncio.sleep(0.2)
    t0 = time.monotonic()
    server.stop()
    with pytest.raises(BusUnavailable, match="is unreachable"):
        await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - t0 < 2.0
    await bus.close()


async def test_unreachable_url_fails_fast_with_redacted_password(redis_server_factory):
    server = redis_server_factory()
    port = server.port
    server.stop()
    bus = RedisStreamsBus(f"redis://:hunter2@127.0.0.1:{port}/0")
    t0 = time.monotonic()
    with pytest.raises(BusUnavailable) as err:
        await bus.publish("s", b"x")
    assert time.monotonic() - t0 < 2.0
    assert f"redis://***@127.0.0.1:{port}/0" in str(err.value) and "hunter2" not in str(err.value)
    await bus.close()
