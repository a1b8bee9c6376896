"""Venue frame -> snapshot received by a blocked XREAD consumer, through a real Redis.

Three processes, as in a cluster: the simulated venues, ingest (pinned to its own core when
the machine has two), and this process as the consumer. Each snapshot carries `recv_ts`,
the time ingest received the newest venue frame merged into it; latency is the consumer's
receive time minus that. Ingest coalesces to one snapshot per symbol per publish interval,
so this is the latency the pipeline adds to the freshest data, not the interval itself.

The same run measures ingest's CPU and RSS with one consumer and with six, to show that
consumers cost ingest nothing: they read Redis, never ingest.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import numpy as np

from ..bus import RedisStreamsBus, StreamReader
from ..bus.base import Entry
from ..bus.local_redis import LocalRedis
from ..core import schema
from ..streams import HEALTH_STREAM, book_stream

SYMBOLS = ["BTC-USD", "ETH-USD"]
VENUES = ["binance", "coinbase", "kraken-v1"]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cobstack(*args: str, cpu: int | None = None) -> subprocess.Popen:
    def pin() -> None:
        if cpu is not None and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(0, {cpu})
    return subprocess.Popen([sys.executable, "-m", "cobstack.cli", *args, "--log-level", "WARNING"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=pin)


def _reader(redis_url: str) -> subprocess.Popen:
    code = f"import asyncio; from cobstack.bench.latency import read_forever; asyncio.run(read_forever({redis_url!r}))"
    return subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) in MB."""
    status = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024


async def _input_rate(bus: RedisStreamsBus, window_s: float) -> float:
    """Venue messages/s into ingest, from two health records `window_s` apart."""
    async def total() -> tuple[float, int]:
        h = schema.decode_health((await bus.latest(HEALTH_STREAM)).data)
        return h.ts / 1e9, sum(v.messages for v in h.venues)
    t0, n0 = await total()
    await asyncio.sleep(window_s)
    t1, n1 = await total()
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


async def _measure(bus: RedisStreamsBus, seconds: float) -> list[float]:
    reader = StreamReader(bus, [book_stream(s) for s in SYMBOLS], block_ms=1000)
    lat: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for item in await reader.next_batch():
            if isinstance(item, Entry):
                now = time.time()
                snap = schema.decode_snapshot(item.data)
                if snap.recv_ts:
                    lat.append(now - snap.recv_ts / 1e9)
    return lat


def _pct(values: list[float]) -> dict:
    a = np.asarray(values) * 1000
    return {"n": len(values), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "max_ms": round(float(a.max()), 3)}


async def _run(rate: float, seconds: float, extra_consumers: int) -> dict:
    with LocalRedis() as redis:
        sim = _cobstack("sim", "--venues", ",".join(VENUES), "--symbols", ",".join(SYMBOLS),
                        "--set", f"sim.rate={rate}", cpu=0)
        procs = [sim]
        try:
            endpoints = json.loads(sim.stdout.readline())["endpoints"]
            ingest = _cobstack("ingest", "--redis", redis.url, "--venues", ",".join(VENUES),
                               "--symbols", ",".join(SYMBOLS), "--set", "ingest.metrics_port=0",
                               "--set", f"endpoints={json.dumps(endpoints)}", cpu=1)
            procs.append(ingest)
            bus = RedisStreamsBus(redis.url)
            await asyncio.sleep(5)  # connect, sync every book, warm up
            rate_in = await _input_rate(bus, 3)
            phases = {}
            for label, n_consumers in (("1 consumer", 0), (f"{1 + extra_consumers} consumers", extra_consumers)):
                readers = [_reader(redis.url) for _ in range(n_consumers)]
                procs += readers
                await asyncio.sleep(1 if readers else 0)
                cpu0, t0 = cpu_seconds(ingest.pid), time.monotonic()
                lat = await _measure(bus, seconds)
                cpu = (cpu_seconds(ingest.pid) - cpu0) / (time.monotonic() - t0)
                phases[label] = {**_pct(lat), "ingest_cpu_pct": round(100 * cpu, 1),
                                 "ingest_rss_mb": round(rss_mb(ingest.pid)[0], 1)}
                for r in readers:
                    r.terminate()
            await bus.close()
            return {"input_msgs_per_s": round(rate_in), "sim_rate": rate, "phases": phases,
                    "ingest_peak_rss_mb": round(rss_mb(ingest.pid)[1], 1)}
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)


def run(quick: bool = False) -> dict:
    """At about 10k venue msgs/s into ingest (sim rate chosen for that), and at the default rate."""
    seconds = 3 if quick else 15
    return {
        "high_rate": asyncio.run(_run(rate=20.0, seconds=seconds, extra_consumers=5)),
        "default_rate": asyncio.run(_run(rate=1.0, seconds=seconds, extra_consumers=5)),
    }


async def read_forever(redis_url: str) -> None:
    """A plain extra consumer process: tails every book stream and decodes each snapshot."""
    bus = RedisStreamsBus(redis_url)
    reader = StreamReader(bus, [book_stream(s) for s in SYMBOLS], block_ms=1000)
    while True:
        for item in await reader.next_batch():
            if isinstance(item, Entry):
                schema.decode_snapshot(item.data)
