"""Browser end-to-end fixtures: Debian chromium driven by Playwright, and a real stack.

The stack runs as real processes (`cobstack ingest` on simulated venues and `cobstack
dashboard`) on a private redis-server, so tests can restart the dashboard alone and read the
same streams the dashboard reads to check the numbers on screen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cobstack.bus.local_redis import LocalRedis, free_port

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
COBSTACK = str(Path(sys.executable).with_name("cobstack"))
VIEWPORT = {"width": 1600, "height": 900}


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module: sync Playwright keeps an event loop running in this
    thread while it is open, which asyncio tests of other modules must not inherit."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"chromium not found at {CHROMIUM}: run `make test` (installs Debian chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport=VIEWPORT)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.js_errors = errors
    yield p
    context.close()


@pytest.fixture
def screenshot():
    """save(page, name): a PNG of the page in artifacts/screenshots/ (a test artefact)."""
    def save(page, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path))
        return path
    return save


class Proc:
    """One `cobstack` process with its log kept for the failure message."""

    def __init__(self, name: str, args: list[str], log_dir: Path):
        self.name, self.args = name, args
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Proc:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([COBSTACK, *self.args], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        log.close()
        return self

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Stack:
    def __init__(self, redis: LocalRedis, log_dir: Path):
        self.redis = redis
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        common = ["--redis", redis.url, "--log-level", "INFO"]
        self.ingest = Proc("ingest", ["ingest", *common, "--set", "ingest.metrics_port=0"], log_dir)
        self.dashboard = Proc("dashboard", ["dashboard", *common, "--set", f"dashboard.port={self.port}"], log_dir)

    def wait_dashboard(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.dashboard.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited ({self.dashboard.proc.returncode}):\n{self.dashboard.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dashboard did not answer /healthz within {timeout}s:\n{self.dashboard.log_tail()}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """ingest (simulated venues) + dashboard as separate processes on a private redis-server."""
    work = tmp_path_factory.mktemp("stack")
    redis = LocalRedis(workdir=work).start()
    s = Stack(redis, work)
    try:
        s.ingest.start()
        s.dashboard.start()
        s.wait_dashboard()
        yield s
    finally:
        s.dashboard.stop()
        s.ingest.stop()
        redis.stop()
