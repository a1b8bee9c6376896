"""A throwaway local redis-server on a free loopback port (tests and benchmarks).

Never touches a shared system instance: its own port, its own temp dir, no persistence
unless asked, killed on exit.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalRedis:
    def __init__(self, port: int | None = None, persist: bool = False, workdir: Path | None = None):
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run `make test` (it installs Debian "
                               "redis-server) or `apt-get install redis-server`")
        self.binary = binary
        self.port = port or free_port()
        self.persist = persist
        self.own_dir = workdir is None
        self.dir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="cobstack-redis-"))
        self.log = self.dir / "redis.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "LocalRedis":
        """Start (or restart, on the same port and dir) and wait for PING."""
        if self.proc is not None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else \
                      ["--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--protected-mode", "yes", "--logfile", str(self.log), *persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                tail = self.log.read_text()[-2000:] if self.log.exists() else "(no log)"
                raise RuntimeError(f"redis-server on port {self.port} exited at start; log tail:\n{tail}")
            try:
                if self.call("PING") == b"+PONG":
                    return self
            except OSError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server on port {self.port} did not answer PING within {timeout}s")

    def call(self, *args: str) -> bytes:
        """Send one command; return the first reply line (enough for PING, FLUSHALL, INFO keys)."""
        wire = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            s.sendall(wire.encode())
            return s.recv(4096).split(b"\r\n", 1)[0]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.stop()
        if self.own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "LocalRedis":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
