"""Ingest against every simulated venue at once, over real loopback websockets and REST.

A clean run must bring every venue live with zero checksum failures and gaps; injected faults
(frames dropped on one venue, checksums corrupted on another) must be detected, counted and
resynced per instrument on the same connection while every other venue stays live; and a
capture recorded from the simulated okx must replay consistent through `cobstack replay`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson

from cobstack.bus import MemoryBus
from cobstack.config import load_settings
from cobstack.core.symbols import known_venues, venue_instrument
from cobstack.ingest.service import Ingest
from cobstack.sim.server import start_sim
from cobstack.stack import SnapshotTally, run_components

ALL_VENUES = known_venues()
SYMBOLS = ["BTC-USD", "ETH-USD"]
COBSTACK = str(Path(sys.executable).with_name("cobstack"))


def _settings(**kw):
    return load_settings(venues=ALL_VENUES, symbols=SYMBOLS, source="sim", ingest={"metrics_port": 0}, **kw)


async def test_every_simulated_venue_goes_live_and_stays_consistent():
    summary = await run_components(_settings(), ["ingest"], duration=8.0)
    assert summary["venues_healthy"] == ALL_VENUES, summary
    assert set(summary["messages"]) == set(ALL_VENUES) and min(summary["messages"].values()) > 20
    assert summary["checksum_failures"] == dict.fromkeys(ALL_VENUES, 0)
    assert summary["resyncs"] == dict.fromkeys(ALL_VENUES, 0)  # no gap, checksum or crossed book
    assert summary["rejected"] == {}
    assert summary["gaps"] == 0 and min(summary["snapshots_received"].values()) >= 20
    assert summary["venues_in_last_snapshot"] == {s: ALL_VENUES for s in SYMBOLS}


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        await asyncio.sleep(0.05)


async def test_faults_resync_only_the_faulted_instruments_and_other_venues_stay_live():
    sim = await start_sim(ALL_VENUES, SYMBOLS, seed=11)
    endpoints = {v: {"ws_url": ws, "rest_url": rest} for v, (ws, rest) in sim.endpoints.items()}
    settings = _settings(endpoints=endpoints)
    bus = MemoryBus()
    ingest = Ingest(settings, bus, {v: (e["ws_url"], e["rest_url"]) for v, e in endpoints.items()})
    # Which okx instruments the sim corrupted, and which ones ingest resubscribed: both sides seen
    # from outside (the sim's corruption hook, the connection's traffic tap).
    corrupted: Counter = Counter()
    okx_wire = sim.servers["okx"].wire
    corrupt = okx_wire.corrupt_checksum
    okx_wire.corrupt_checksum = lambda msg: (corrupted.update([msg["arg"]["instId"]]), corrupt(msg))[1]
    resubscribed: Counter = Counter()
    snapshots_fetched: Counter = Counter()

    def okx_tap(kind: str, url: str, data: str) -> None:
        if kind == "ws_send" and '"unsubscribe"' in data:
            resubscribed.update(arg["instId"] for arg in orjson.loads(data)["args"])

    def usdm_tap(kind: str, url: str, data: str) -> None:
        if kind == "http":
            snapshots_fetched[url.split("symbol=")[1].split("&")[0]] += 1

    ingest.connections["okx"].tap = okx_tap
    ingest.connections["binance-usdm"].tap = usdm_tap
    stop = asyncio.Event()
    tally = SnapshotTally(bus, SYMBOLS)
    tally_task = asyncio.create_task(tally.run(stop))

    def all_live() -> bool:
        return all(not a.flagged() and ingest.connections[v].health.state == "live"
                   for v, a in ingest.adapters.items())

    try:
        await ingest.start()
        await _until(all_live, 15.0, "every venue live")
        before = {v: a.stats.as_dict() for v, a in ingest.adapters.items()}
        assert all(s["resyncs"] == 0 and s["checksum_failures"] == 0 for s in before.values()), before

        sim.faults("binance-usdm").update({"drop_frames": 0.3})
        sim.faults("okx").update({"corrupt_checksum": 0.08})
        await asyncio.sleep(1.5)
        sim.faults("binance-usdm").update({"drop_frames": 0.0})
        sim.faults("okx").update({"corrupt_checksum": 0.0})
        await _until(all_live, 10.0, "every instrument live again after the faults")
        await asyncio.sleep(1.5)  # snapshots published after recovery
    finally:
        stop.set()
        await ingest.stop()
        await sim.stop()
        await asyncio.wait_for(tally_task, 5)
        await bus.close()

    usdm, okx = ingest.adapters["binance-usdm"].stats, ingest.adapters["okx"].stats
    assert sim.faults("binance-usdm").counts["drop_frames"] >= 3
    assert usdm.gaps >= 1 and usdm.resyncs == usdm.gaps
    assert sum(snapshots_fetched.values()) >= 2 + usdm.resyncs  # the first sync, then one per resync

    assert corrupted and okx.checksum_failures >= 1
    assert set(resubscribed) == set(corrupted)  # exactly the corrupted instruments resynced
    assert okx.checksum_failures == okx.resyncs == sum(resubscribed.values())
    assert okx.checksums_ok > 50

    for venue, adapter in ingest.adapters.items():
        conn = ingest.connections[venue]
        assert conn.health.connects == 1, venue  # faults resync instruments, never the connection
        if venue not in ("binance-usdm", "okx"):
            s = adapter.stats.as_dict()
            assert (s["resyncs"], s["gaps"], s["checksum_failures"], s["rejected"]) == (0, 0, 0, {}), (venue, s)
    result = tally.result()
    assert result["venues_in_last_snapshot"] == {s: ALL_VENUES for s in SYMBOLS}, result


def test_record_from_the_simulated_okx_and_replay_it(tmp_path):
    capture = tmp_path / "okx.jsonl"
    rec = subprocess.run([COBSTACK, "record", "--venues", "okx", "--symbols", "BTC-USD,ETH-USD",
                          "--out", str(capture), "--duration", "20", "--log-level", "WARNING"],
                         capture_output=True, text=True, timeout=90)
    assert rec.returncode == 0, rec.stderr[-3000:]
    lines = json.loads(rec.stdout)["lines"]
    assert lines["ws_open"] == 1 and lines["ws_send"] >= 1 and lines["ws_recv"] >= 300

    out = subprocess.run([COBSTACK, "replay", str(capture), "--venue", "okx", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    summary = json.loads(out.stdout)
    natives = sorted(venue_instrument("okx", s).native for s in SYMBOLS)
    assert summary["consistent"] and sorted(summary["instruments"]) == natives
    assert summary["snapshots"] == 2 and summary["checksums_ok"] >= 300 and summary["trades"] > 50
    assert (summary["checksum_failures"], summary["gaps"], summary["resyncs"]) == (0, 0, 0)
