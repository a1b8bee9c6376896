"""Replay throughput on one core: decode + sync + checksum verification (+ consolidation).

The capture's lines are loaded into memory first; what is timed is what ingest does per
frame: decode the capture line and the venue frame, apply it, verify every checksum, and
(for `pipeline`) consolidate, compute features and encode a snapshot for each changed
instrument at ingest's publish cadence. That cadence is wall-clock time, exactly as in
ingest (at most one snapshot per symbol per interval, however fast frames arrive), so the
figure is the frame rate one ingest core sustains while publishing. The cost of one
snapshot is reported beside it.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import orjson

from ..core import schema
from ..core.consolidate import VenueView
from ..core.pipeline import PipelineConfig, SymbolPipeline
from ..capture import recordings_dir
from ..replay import bench_throughput
from ..venues.registry import make_adapter

# (capture file, venue, target msgs/s from the issues, anchor: cryptofeed on this machine)
CAPTURES = [
    ("kraken-v1-book.jsonl", "kraken-v1", 150_000, "cryptofeed 53k (checksums on), 218k off"),
    ("binance-spot.jsonl", "binance", 250_000, "cryptofeed 122k"),
    ("binance-usdm-futures.jsonl", "binance-usdm", None, None),
    ("coinbase-level2.jsonl", "coinbase", None, None),
    ("bitstamp.jsonl", "bitstamp", None, None),
]


def _best_of(fn, runs: int) -> dict:
    """Best of `runs`: the least-disturbed run on a shared machine is the one to report."""
    return max((fn() for _ in range(runs)), key=lambda r: r["msgs_per_s"])


# Venues without a shared capture: recorded from the simulated venue (same wire format).
SIM_CAPTURES = [("okx", 60_000, "cryptofeed 14k (checksums on)"), ("kraken", None, None), ("bybit", None, None)]


def _record_sim(venue: str, path: Path, seconds: float) -> None:
    from ..config import Settings
    from ..record import record

    settings = Settings(venues=[venue], symbols=["BTC-USD", "ETH-USD"], sim={"rate": 5.0})
    asyncio.run(record(settings, str(path), seconds))


def run(quick: bool = False) -> dict:
    root, out = recordings_dir(), {}
    repeat, runs = (2, 1) if quick else (20, 3)
    for name, venue, target, anchor in CAPTURES:
        r = _best_of(lambda: bench_throughput(root / name, venue, repeat), runs)
        out[name] = {"venue": venue, "msgs_per_s": round(r["msgs_per_s"]), "msgs": r["msgs"],
                     "checksums_verified": r["checksums"], "target": target, "anchor": anchor}
    with tempfile.TemporaryDirectory() as tmp:
        for venue, target, anchor in SIM_CAPTURES:
            path = Path(tmp) / f"{venue}.jsonl"
            _record_sim(venue, path, 2 if quick else 8)
            r = _best_of(lambda: bench_throughput(path, venue, repeat), runs)
            out[f"sim:{venue}"] = {"venue": venue, "msgs_per_s": round(r["msgs_per_s"]), "msgs": r["msgs"],
                                   "checksums_verified": r["checksums"], "target": target, "anchor": anchor}
    return out


def pipeline_throughput(path: Path, venue: str, repeat: int, interval_s: float = 0.1) -> dict:
    """Replay with a SymbolPipeline per instrument, snapshotting changed instruments every
    `interval_s` of wall-clock time (ingest's cadence) and encoding each snapshot."""
    lines = [ln for ln in path.read_bytes().splitlines() if ln.strip()]
    msgs = snapshots = 0
    elapsed = snap_time = 0.0
    loads = orjson.loads
    clock = time.perf_counter
    cfg = PipelineConfig()
    for _ in range(repeat):
        adapter = make_adapter(venue, None)
        pipelines: dict[str, SymbolPipeline] = {}
        start = next_publish = clock()
        for line in lines:
            rec = loads(line)
            kind, t = rec["kind"], rec["t"]
            if kind == "ws_recv":
                adapter.on_frame(rec["data"], t)
            elif kind == "http":
                adapter.on_rest(rec["url"], rec["data"], t, None)
            else:
                continue
            if adapter.dirty and clock() >= next_publish:
                t0 = clock()
                next_publish = t0 + interval_s
                for native in adapter.dirty:
                    pipe = pipelines.get(native)
                    if pipe is None:
                        pipe = pipelines[native] = SymbolPipeline(native, [venue], cfg)
                    inst = adapter.instruments[native]
                    view = VenueView(venue, adapter.books[native], inst.quote, adapter.consistent(native), 0.0)
                    schema.encode(pipe.snapshot([view], adapter.trades, int(t * 1e9)))
                    snapshots += 1
                adapter.dirty.clear()
                adapter.trades.clear()
                snap_time += clock() - t0
        elapsed += clock() - start
        msgs += adapter.stats.messages
    return {"msgs": msgs, "snapshots": snapshots, "seconds": elapsed, "msgs_per_s": msgs / elapsed,
            "snapshot_us": 1e6 * snap_time / snapshots if snapshots else None}


def run_pipeline(quick: bool = False) -> dict:
    name, venue, target, anchor = CAPTURES[0]
    r = _best_of(lambda: pipeline_throughput(recordings_dir() / name, venue, 2 if quick else 10),
                 1 if quick else 3)
    return {name: {"venue": venue, "msgs_per_s": round(r["msgs_per_s"]), "snapshots": r["snapshots"],
                   "snapshot_us": round(r["snapshot_us"] or 0), "target": target, "anchor": anchor}}
