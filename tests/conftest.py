"""Shared fixtures: a real redis-server on loopback, and a Bus over either backend."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from cobstack.bus import MemoryBus, RedisStreamsBus
from cobstack.bus.local_redis import LocalRedis


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    """The shared redis-server of the session. Tests that stop it use redis_server_factory instead."""
    server = LocalRedis(workdir=tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], LocalRedis]]:
    """Private, started redis-servers for tests that stop and restart them."""
    servers: list[LocalRedis] = []

    def make() -> LocalRedis:
        server = LocalRedis(workdir=tmp_path_factory.mktemp("redis-private"))
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def bus(request: pytest.FixtureRequest):
    """A fresh, empty Bus of each kind; the contract suite runs once per kind."""
    if request.param == "memory":
        b = MemoryBus()
    else:
        server: LocalRedis = request.getfixturevalue("redis_server")
        assert server.call("FLUSHALL") == b"+OK"
        b = RedisStreamsBus(server.url)
    yield b
    await b.close()
