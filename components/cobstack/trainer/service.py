"""The trainer as a stream consumer: `serve(settings, bus, stop)`.

1. Collect history of `cob:book:{symbol}` (XRANGE pages; a resumed run re-reads exactly
   the id range its checkpoint names, so it trains on the same data); an online trainer
   with too little history tails the stream until it has `trainer.min_snapshots`.
2. Train, evaluate and run the DQN in a worker thread (torch is CPU-bound; the event loop,
   which in `cobstack up` also runs ingest, stays free), checkpointing as it goes.
3. Write the report (JSON + Markdown next to the checkpoint) and publish it.
4. mode `job`: return (the Kubernetes Job exits 0). mode `online`: publish a signal per
   new snapshot to `cob:signals` until `stop`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path

import torch

from ..bus.base import Bus, BusUnavailable, Entry, StreamReader, parse_id
from ..config import Settings
from ..core.schema import SchemaError, decode_snapshot
from ..ingest.service import pipeline_config
from ..streams import SIGNALS_STREAM, TRAIN_METRICS_STREAM, TRAIN_REPORT_STREAM, book_stream
from . import checkpoint
from .dataset import build_series
from .infer import LiveModel
from .dataset import feature_names
from .models import PRESETS, memory_plan
from .train import Plan
from .records import encode_record
from .report import write_report
from .run import DataKey, Stopped, run_training
from .signals import encode_signal
from .sources import read_history

log = logging.getLogger("cobstack.trainer")

METRICS_MAXLEN = 10_000
SIGNALS_MAXLEN = 100_000
COLLECT_REPORT_S = 2.0


class Publisher:
    """Thread-safe emit() for the training thread; an async task puts records on the bus.
    Progress is best effort: while the bus is down records are dropped (and counted)."""

    def __init__(self, bus: Bus, symbol: str, preset: str):
        self.bus, self.symbol, self.preset = bus, symbol, preset
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple[str, dict] | None] = asyncio.Queue()
        self.dropped = 0
        self.task = asyncio.create_task(self._drain(), name="trainer-metrics")

    def emit(self, kind: str, fields: dict) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, fields))

    async def publish(self, kind: str, fields: dict, stream: str = TRAIN_METRICS_STREAM) -> None:
        data = encode_record(kind, time.time_ns(), self.symbol, self.preset, fields)
        try:
            await self.bus.publish(stream, data, maxlen=METRICS_MAXLEN)
        except BusUnavailable as e:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("trainer metrics not published (bus down; dropping until it is back): %s", e)

    async def _drain(self) -> None:
        while (item := await self.queue.get()) is not None:
            await self.publish(*item)

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await self.task


async def collect(bus: Bus, stream: str, settings: Settings, prior: dict | None, pub: Publisher,
                  stop: asyncio.Event) -> tuple[list[tuple[str, bytes]], DataKey] | None:
    """The training data: the prior run's exact id range when it is still retained, else the
    newest history (tailing until min_snapshots). None if stopped first."""
    t = settings.trainer
    if prior is not None:
        page = await read_history(bus, stream, until=prior["last_id"])
        first = parse_id(prior["first_id"])
        entries = [e for e in page.entries if parse_id(e[0]) >= first]
        if len(entries) == prior["count"]:
            return entries, DataKey(**prior)
        log.warning("%s: the checkpoint's data (%s..%s, %d snapshots) is no longer all retained "
                    "(%d found); starting a new run on current history", stream, prior["first_id"],
                    prior["last_id"], prior["count"], len(entries))
    page = await read_history(bus, stream)
    entries = page.entries[-t.max_snapshots:]
    reader = StreamReader(bus, {stream: page.last_id or "0"}, block_ms=500, count=1000)
    last_report = 0.0
    while len(entries) < t.min_snapshots:
        if stop.is_set():
            return None
        for item in await reader.next_batch():
            if isinstance(item, Entry):
                entries.append((item.id, item.data))
            else:  # a Gap: what came before is no longer contiguous with what follows
                entries.clear()
        if time.monotonic() - last_report > COLLECT_REPORT_S:
            last_report = time.monotonic()
            await pub.publish("collecting", {"stream": stream, "have": len(entries), "need": t.min_snapshots})
    return entries, DataKey(stream, entries[0][0], entries[-1][0], len(entries))


async def serve(settings: Settings, bus: Bus, stop: asyncio.Event) -> None:
    t = settings.trainer
    torch.set_num_threads(t.threads)
    symbol = t.symbol or settings.symbols[0]
    stream = book_stream(symbol)
    rl_venue = t.rl_venue or settings.venues[0]
    ckpt_path = Path(t.checkpoint_dir) / f"{symbol}-{t.preset}.pt"
    pub = Publisher(bus, symbol, t.preset)
    try:
        if PRESETS[t.preset].kind == "transformer" and Plan.from_settings(t).device == "cpu":
            plan = cpu_plan(settings, symbol)
            await pub.publish("plan", plan)
            raise ValueError(
                f"trainer preset {t.preset} ({plan['params']:,} parameters) needs a GPU: about "
                f"{plan['total_checkpointed_bytes'] / 2**30:.0f} GiB with activation checkpointing (plan "
                f"published on {TRAIN_METRICS_STREAM}); on CPU use trainer.preset=tiny or base")
        prior = await asyncio.to_thread(checkpoint.load, ckpt_path)
        got = await collect(bus, stream, settings, prior["data"] if prior else None, pub, stop)
        if got is None:
            return
        entries, key = got
        series = await asyncio.to_thread(build_series, entries)
        tail = entries[-series_window(t):]  # to start live inference with a full window
        del entries
        log.info("training %s %s on %d snapshots of %s (%s..%s)", t.preset, symbol, len(series), stream,
                 key.first_id, key.last_id)
        halt = threading.Event()
        relay = asyncio.create_task(_relay_stop(stop, halt))
        try:
            final = await asyncio.to_thread(run_training, series, key, t, rl_venue, ckpt_path, pub.emit, halt)
        except Stopped as e:
            log.info("trainer: %s", e)
            return
        finally:
            relay.cancel()
        report = final["report"]
        json_path, md_path = await asyncio.to_thread(write_report, report, t.checkpoint_dir,
                                                     f"{symbol}-{t.preset}-report")
        await pub.publish("report", report, stream=TRAIN_REPORT_STREAM)
        log.info("trainer: report written to %s and %s (model %s)", json_path, md_path, final["model_version"])
        if t.mode == "job":
            return
        await infer_live(bus, stream, tail, final, t.signal_horizon, pub, stop)
    finally:
        await pub.close()


async def _relay_stop(stop: asyncio.Event, halt: threading.Event) -> None:
    await stop.wait()
    halt.set()


def cpu_plan(settings: Settings, symbol: str) -> dict:
    """The memory plan of the configured preset for the shapes ingest publishes for `symbol`,
    from a meta-device build (nothing allocated)."""
    cfg = pipeline_config(settings, symbol)
    feats = len(feature_names(cfg.imbalance_levels, settings.venues))
    return memory_plan(settings.trainer.preset, 2 * cfg.k, 2 * len(settings.venues), feats,
                       len(settings.trainer.horizons))


def series_window(t) -> int:
    return t.window or PRESETS[t.preset].window


async def infer_live(bus: Bus, stream: str, tail: list[tuple[str, bytes]], final: dict, horizon: int | None,
                     pub: Publisher, stop: asyncio.Event) -> None:
    """Publish one signal per new snapshot until `stop`. The window starts full: primed with
    the newest snapshots already in the stream (those published while the model trained,
    after `tail`, the end of the training data), without signalling them: they are old."""
    model = LiveModel(final, horizon)
    backlog = await read_history(bus, stream, after=tail[-1][0])
    for _, data in (tail + backlog.entries)[-model.window:]:
        try:
            model.prime(decode_snapshot(data))
        except SchemaError:
            model.reset()
    live = LiveSignals(bus, stream, model, backlog.last_id)
    await pub.publish("serving", {"model_version": live.model.version, "horizon": live.model.horizon,
                                  "signals_stream": SIGNALS_STREAM})
    while not stop.is_set():
        try:
            await live.step()
        except BusUnavailable as e:
            log.warning("trainer: bus unavailable, signals paused (retrying): %s", e)
            live.model.reset()
            await asyncio.sleep(1.0)


class LiveSignals:
    def __init__(self, bus: Bus, stream: str, model: LiveModel, after: str):
        self.bus, self.model = bus, model
        self.reader = StreamReader(bus, {stream: after}, block_ms=500)
        self.rejected = 0
        self.published = 0

    async def step(self) -> None:
        """Read what arrived, publish a signal for each snapshot that completes a window."""
        for item in await self.reader.next_batch():
            if not isinstance(item, Entry):
                self.model.reset()
                continue
            try:
                snap = decode_snapshot(item.data)
            except SchemaError as e:
                self.rejected += 1
                if self.rejected == 1:
                    log.warning("trainer: undecodable snapshot %s skipped (counting further ones): %s",
                                item.id, e)
                self.model.reset()
                continue
            signal = self.model.on_snapshot(item.id, snap, time.time_ns())
            if signal is not None:
                await self.bus.publish(SIGNALS_STREAM, encode_signal(signal), maxlen=SIGNALS_MAXLEN)
                self.published += 1
