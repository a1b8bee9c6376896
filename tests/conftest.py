"""Shared fixtures: a real redis-server on loopback, and a Bus over either backend."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cobstack.bus import MemoryBus, RedisStreamsBus

START_TIMEOUT_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process on 127.0.0.1 with its own temp dir, no persistence.
    stop()/start() restart it on the same port (for fault tests)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.dir = workdir
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        assert self._proc is None, "redis-server already running"
        log = self.dir / "redis.log"
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--logfile", str(log)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log.read_text()[-2000:] if log.exists() else "(no log)"
                self._proc = None
                raise RuntimeError(f"redis-server on port {self.port} exited at start; log tail:\n{tail}")
            try:
                if self.call("PING") == b"+PONG":
                    return
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def call(self, *args: str) -> bytes:
        """Send one command, return the first reply line (enough for PING / FLUSHALL)."""
        wire = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(wire.encode())
            return s.recv(4096).split(b"\r\n", 1)[0]


@pytest.fixture(scope="session")
def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server not found: run `make test` (it installs Debian redis-server) "
                    "or apt-get install redis-server")
    return binary


@pytest.fixture(scope="session")
def redis_server(redis_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The shared redis-server of the session. Tests that stop it use redis_server_factory instead."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_server_factory(redis_binary: str, tmp_path_factory: pytest.TempPathFactory
                         ) -> Iterator[Callable[[], RedisServer]]:
    """Private, started redis-servers for tests that stop and restart them."""
    servers: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis-private"))
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
        server: RedisServer = request.getfixturevalue("redis_server")
        assert server.call("FLUSHALL") == b"+OK"
        b = RedisStreamsBus(server.url)
    yield b
    await b.close()
