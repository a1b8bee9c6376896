"""Dashboard benchmark: frame -> DOM latency in a real browser, long tasks, SSE fan-out.

Runs `cobstack ingest` (simulated venues, default cadence) and `cobstack dashboard` as
separate processes on a throwaway redis-server, then:
1. one chromium page on the BTC-USD overview: venue frame -> DOM latency, measured in the
   page from the `data-recv-ts` each fragment carries, and PerformanceObserver long tasks;
2. ingest's frame -> publish latency (snapshot `ts - recv_ts`, read back from the stream)
   with no SSE client, then with `clients` concurrent SSE clients on the overview stream,
   and what those clients received.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import aiohttp

from ..bus.local_redis import LocalRedis, free_port
from ..bus.redis_streams import RedisStreamsBus
from ..core import schema
from ..streams import book_stream

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(p * len(s)))], 1)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    exe = str(Path(sys.executable).with_name("cobstack"))
    with open(log, "ab") as out:
        return subprocess.Popen([exe, *args], stdout=out, stderr=subprocess.STDOUT)


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dashboard exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"dashboard not up after {timeout}s: {log.read_text()[-2000:]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _ingest_latency(redis_url: str, since_ms: int, until_ms: int) -> list[float]:
    """Frame received -> snapshot published (ms) for every BTC-USD snapshot in the window."""
    bus = RedisStreamsBus(redis_url)
    try:
        entries = await bus.range(book_stream("BTC-USD"), str(since_ms), str(until_ms))
    finally:
        await bus.close()
    out = []
    for e in entries:
        s = schema.decode_snapshot(e.data)
        if s.recv_ts is not None:
            out.append((s.ts - s.recv_ts) / 1e6)
    return out


async def _sse_clients(url: str, n: int, seconds: float) -> list[int]:
    """n concurrent SSE clients for `seconds`; events each one received."""
    counts = [0] * n

    async def client(i: int, http: aiohttp.ClientSession) -> None:
        async with http.get(url) as resp:
            async for chunk in resp.content.iter_any():  # cheap on the client: count, do not parse
                counts[i] += chunk.count(b"\nevent: ") + chunk.startswith(b"event: ")

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None)) as http:
        tasks = [asyncio.create_task(client(i, http)) for i in range(n)]
        await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return counts


def _browser(url: str, warmup_s: float, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(url)
        page.wait_for_function("() => window.cobstack && window.cobstack.swaps > 0", timeout=30_000)
        time.sleep(warmup_s)  # page load and first paint are not steady state
        page.evaluate("() => { cobstack.latencies.length = 0; cobstack.longTasks.length = 0; cobstack.swaps = 0; }")
        time.sleep(seconds)
        got = page.evaluate("() => ({lat: cobstack.latencies.slice(), long: cobstack.longTasks.slice(), swaps: cobstack.swaps})")
        browser.close()
    lat = got["lat"]
    return {"frame_to_dom_ms": {"p50": pct(lat, 0.5), "p95": pct(lat, 0.95), "p99": pct(lat, 0.99), "n": len(lat)},
            "stamped_updates_per_s": round(len(lat) / seconds, 1),
            "swaps_per_s": round(got["swaps"] / seconds, 1),
            "long_tasks": {"count": len(got["long"]), "over_50ms": sum(d > 50 for d in got["long"]),
                           "max_ms": max(got["long"], default=0)}}


def run(quick: bool) -> dict:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"chromium not found at {CHROMIUM}: run `make test` (installs Debian chromium)")
    seconds, clients = (4.0, 10) if quick else (15.0, 50)
    work = Path(tempfile.mkdtemp(prefix="cobstack-bench-dashboard-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with LocalRedis(workdir=work) as redis:
        common = ["--redis", redis.url, "--log-level", "WARNING"]
        ingest = _start(["ingest", *common, "--set", "ingest.metrics_port=0"], work / "ingest.log")
        dash = _start(["dashboard", *common, "--set", f"dashboard.port={port}"], work / "dashboard.log")
        try:
            _wait_http(base + "/healthz", dash, work / "dashboard.log")
            browser = _browser(base + "/book/BTC-USD", 2.0 if quick else 5.0, seconds)

            t0 = int(time.time() * 1000)
            time.sleep(seconds)
            t1 = int(time.time() * 1000)
            cpu0 = _cpu_seconds(dash.pid)
            counts: list[int] = []
            thread = threading.Thread(target=lambda: counts.extend(asyncio.run(
                _sse_clients(base + "/sse/overview?symbol=BTC-USD", clients, seconds))))
            thread.start()
            thread.join()
            t2 = int(time.time() * 1000)
            cpu = _cpu_seconds(dash.pid) - cpu0
            idle = asyncio.run(_ingest_latency(redis.url, t0, t1))
            loaded = asyncio.run(_ingest_latency(redis.url, t1, t2))
        finally:
            for p in (dash, ingest):
                p.terminate()
                p.wait(10)
    return {
        **browser,
        "ingest_frame_to_publish_ms": {
            "no_clients": {"p50": pct(idle, 0.5), "p95": pct(idle, 0.95), "n": len(idle)},
            f"{clients}_sse_clients": {"p50": pct(loaded, 0.5), "p95": pct(loaded, 0.95), "n": len(loaded)}},
        "sse": {"clients": clients, "seconds": seconds,
                "events_per_client_per_s": {"min": round(min(counts) / seconds, 1),
                                            "max": round(max(counts) / seconds, 1)},
                "dashboard_cpu_pct": round(cpu / seconds * 100, 1)},
    }
