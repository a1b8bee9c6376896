"""The trainer on simulated data with a planted signal, end to end.

Planted signal: coinbase's makers quote the fair price one second late (sim latency 1000 ms,
diffusion 3 bp/sqrt(s)). The consolidated mid follows the leading venue with a delay and the
lagging venue's quotes can be picked off: real, learnable structure that the published
per-venue quotes reveal and that none of the baselines' inputs (top-of-book imbalance, OFI,
microprice; past returns) holds. Everything is seeded, so these runs are deterministic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from cobstack.bus import MemoryBus, RedisStreamsBus
from cobstack.config import Settings, TrainerSettings
from cobstack.core.pipeline import PipelineConfig
from cobstack.sim.market import VENUES, Market, SymbolSpec
from cobstack.streams import SIGNALS_STREAM, TRAIN_METRICS_STREAM, TRAIN_REPORT_STREAM, book_stream
from cobstack.trainer import checkpoint
from cobstack.trainer.dataset import build_series
from cobstack.trainer.records import decode_record
from cobstack.trainer.run import DataKey, run_training
from cobstack.trainer.service import serve
from cobstack.trainer.signals import decode_signal
from cobstack.trainer.sources import simulate

SYMBOL, VENUE_LIST = "BTC-USD", ["binance", "coinbase"]
STREAM = book_stream(SYMBOL)
SNAPSHOTS = 6000


def planted_market(seed: int = 7) -> Market:
    return Market(VENUE_LIST, [SYMBOL], seed, dt=0.05,
                  symbol_specs={SYMBOL: SymbolSpec(price=60_000.0, trade_size=0.05, level_size=0.4,
                                                   level_gap=0.5, vol_bp=3.0)},
                  venue_specs={"coinbase": dataclasses.replace(VENUES["coinbase"], latency_ms=1000.0)})


@pytest.fixture(scope="module")
def entries() -> list[tuple[str, bytes]]:
    cfg = PipelineConfig(buckets_per_side=10, tensor_buckets=10, ladder_levels=10)
    return list(simulate(planted_market(), SYMBOL, SNAPSHOTS + 60, cfg=cfg))


def trainer_settings(tmp: Path, **kw) -> dict:
    return {"window": 20, "horizons": [5, 10], "taker_fee_bps": 0.5, "checkpoint_every": 25,
            "rl_venue": "coinbase", "checkpoint_dir": str(tmp), "device": "cpu", "min_snapshots": 1000, **kw}


def test_tiny_model_beats_every_baseline_and_dqn_beats_flat_after_fees(entries, tmp_path):
    torch.set_num_threads(1)
    series = build_series(entries[:SNAPSHOTS])
    settings = TrainerSettings(**trainer_settings(tmp_path, steps=200, dqn_steps=1500))
    records: list[tuple[str, dict]] = []
    final = run_training(series, DataKey(STREAM, series.ids[0], series.ids[-1], len(series)), settings,
                         "coinbase", tmp_path / "ck.pt", lambda k, r: records.append((k, r)), threading.Event())
    report = final["report"]
    for h, row in report["summary"].items():
        for baseline in ("majority", "persistence", "logistic"):
            assert row["model"]["mcc"] > row[baseline]["mcc"] + 0.05, (h, baseline, row)
    rl = report["rl"]
    assert rl["dqn"]["pnl_bps"] > rl["always_flat"]["pnl_bps"] == 0.0, rl
    assert rl["dqn"]["trades"] > 0
    kinds = {k for k, _ in records}
    assert {"progress", "validation", "fold", "rl"} <= kinds
    progress = [r for k, r in records if k == "progress"]
    assert progress[-1]["step"] == 200 and progress[-1]["samples_per_s"] > 0
    assert final["model_version"].startswith("tiny-")


async def publish(bus, items: list[tuple[str, bytes]]) -> None:
    await bus.publish_many([(STREAM, data) for _, data in items], maxlen=100_000)


async def records(bus, stream: str = TRAIN_METRICS_STREAM) -> list[dict]:
    return [decode_record(e.data) for e in await bus.range(stream)]


async def test_job_mode_reads_history_writes_report_and_exits(entries, tmp_path):
    bus = MemoryBus(default_maxlen=100_000)
    await publish(bus, entries[:3000])
    settings = Settings(symbols=[SYMBOL], venues=VENUE_LIST, trainer=trainer_settings(
        tmp_path, mode="job", steps=30, dqn_steps=100))
    await asyncio.wait_for(serve(settings, bus, asyncio.Event()), timeout=120)
    report = (tmp_path / f"{SYMBOL}-tiny-report.json")
    assert report.exists() and (tmp_path / f"{SYMBOL}-tiny-report.md").exists()
    published = await records(bus, TRAIN_REPORT_STREAM)
    assert len(published) == 1 and published[0]["kind"] == "report"
    assert published[0]["data"]["count"] == 3000
    assert set(published[0]["summary"]) == {"5", "10"}
    assert checkpoint.load(tmp_path / f"{SYMBOL}-tiny.pt")["done"]
    # a rerun of the finished Job does not train again
    before = len(await records(bus))
    await asyncio.wait_for(serve(settings, bus, asyncio.Event()), timeout=60)
    assert not [r for r in (await records(bus))[before:] if r["kind"] == "progress"]


async def test_online_mode_publishes_a_signal_per_new_snapshot(entries, tmp_path):
    bus = MemoryBus(default_maxlen=100_000)
    await publish(bus, entries[:2000])
    settings = Settings(symbols=[SYMBOL], venues=VENUE_LIST, trainer=trainer_settings(
        tmp_path, steps=20, dqn_steps=0, min_snapshots=2500))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, bus, stop))
    await asyncio.sleep(0.3)
    await publish(bus, entries[2000:2600])  # arrives while the trainer tails for min_snapshots
    deadline = time.monotonic() + 90
    while not any(r["kind"] == "serving" for r in await records(bus)):
        assert time.monotonic() < deadline and not task.done(), "trainer never started serving"
        await asyncio.sleep(0.1)
    live = entries[2600:2640]
    await publish(bus, live)
    ids = [e.id for e in await bus.range(STREAM)][-len(live):]
    deadline = time.monotonic() + 30
    while len(await bus.range(SIGNALS_STREAM)) < len(live):
        assert time.monotonic() < deadline, "signals missing"
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    signals = [decode_signal(e.data) for e in await bus.range(SIGNALS_STREAM)]
    assert [s.source_id for s in signals] == ids  # one per snapshot, in order, none skipped
    version = checkpoint.load(tmp_path / f"{SYMBOL}-tiny.pt")["model_version"]
    assert {s.model_version for s in signals} == {version}
    assert {s.horizon for s in signals} == {5} and all(s.symbol == SYMBOL for s in signals)
    collecting = [r for r in await records(bus) if r["kind"] == "collecting"]
    assert collecting and collecting[0]["need"] == 2500


def cli(redis_url: str, ckpt: Path) -> list[str]:
    sets = {"trainer.mode": "job", "trainer.checkpoint_dir": str(ckpt), "trainer.steps": 150,
            "trainer.window": 20, "trainer.horizons": "[5,10]", "trainer.checkpoint_every": 10,
            "trainer.dqn_steps": 50, "trainer.rl_venue": "coinbase", "trainer.min_snapshots": 1000,
            "trainer.device": "cpu", "ingest.metrics_port": 0}
    return [sys.executable, "-m", "cobstack.cli", "train", "--redis", redis_url, "--symbols", SYMBOL,
            "--venues", ",".join(VENUE_LIST), "--log-level", "WARNING",
            *(x for k, v in sets.items() for x in ("--set", f"{k}={v}"))]


@pytest.mark.redis
async def test_a_job_killed_with_sigkill_resumes_and_ends_as_if_never_killed(entries, redis_server, tmp_path):
    assert redis_server.call("FLUSHALL") == b"+OK"
    bus = RedisStreamsBus(redis_server.url)
    try:
        await publish(bus, entries[:2500])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        killed, clean = tmp_path / "killed", tmp_path / "clean"
        ck = killed / f"{SYMBOL}-tiny.pt"
        proc = subprocess.Popen(cli(redis_server.url, killed), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        step = 0
        while step < 30:
            assert proc.poll() is None, f"trainer exited early: {proc.stderr.read().decode()[-2000:]}"
            assert time.monotonic() < deadline, "no checkpoint past step 30"
            state = checkpoint.load(ck) if ck.exists() else None
            step = state["trainer"]["step"] if state and state.get("trainer") else 0
            await asyncio.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        at_kill = checkpoint.load(ck)["trainer"]["step"]
        assert 30 <= at_kill < 150

        resumed = subprocess.run(cli(redis_server.url, killed), env=env, capture_output=True, timeout=180)
        assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
        marks = [r for r in await records(bus) if r["kind"] == "resumed"]
        assert [m["step"] for m in marks] == [at_kill]

        whole = subprocess.run(cli(redis_server.url, clean), env=env, capture_output=True, timeout=180)
        assert whole.returncode == 0, whole.stderr.decode()[-3000:]
        a, b = checkpoint.load(ck), checkpoint.load(clean / f"{SYMBOL}-tiny.pt")
        assert a["done"] and b["done"] and a["model_version"] == b["model_version"]
        assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
        assert (killed / f"{SYMBOL}-tiny-report.json").exists()
    finally:
        await bus.close()


async def test_xl_on_cpu_publishes_its_memory_plan_and_refuses_to_train(tmp_path):
    bus = MemoryBus()
    settings = Settings(symbols=[SYMBOL], venues=VENUE_LIST, trainer={"preset": "xl", "device": "cpu",
                                                                      "checkpoint_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="needs a GPU"):
        await serve(settings, bus, asyncio.Event())
    (plan,) = await records(bus)
    assert plan["kind"] == "plan" and 0.9e9 < plan["params"] < 1.2e9
    assert plan["total_checkpointed_bytes"] < plan["total_bytes"]
