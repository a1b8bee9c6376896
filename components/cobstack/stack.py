"""Run components: ingest alone, or the whole stack in one process on one bus (`cobstack up`).

Consumers are plain stream readers with one entry point each,
`async def serve(settings, bus, stop: asyncio.Event)`, so the same code runs here on the
embedded bus and in its own pod on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import logging
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .bus import StreamReader, make_bus
from .bus.base import Bus, Entry
from .config import Settings
from .core import schema
from .ingest.metrics import start_metrics
from .ingest.service import Ingest
from .streams import book_stream

if TYPE_CHECKING:
    from aiohttp import web

    from .sim.server import SimHandle

log = logging.getLogger("cobstack.stack")

# Consumer components, by module; `up` runs each one that is installed.
CONSUMERS = {
    "dashboard": "cobstack.dashboard.service",
    "trainer": "cobstack.trainer.service",
    "executor": "cobstack.executor.service",
}


def available_consumers() -> list[str]:
    return [name for name, mod in CONSUMERS.items() if importlib.util.find_spec(mod) is not None]


@dataclass
class Venues:
    """Where each venue is reached, and the simulated venues started for it (if any)."""

    endpoints: dict[str, tuple[str, str | None]]
    sim: "SimHandle | None" = None

    async def close(self) -> None:
        if self.sim is not None:
            await self.sim.stop()


async def open_venues(settings: Settings) -> Venues:
    """Configured endpoint overrides, else (source sim) simulated venues started here on
    loopback, else the live endpoints (absent from the map)."""
    endpoints = {v: (e.ws_url, e.rest_url) for v, e in settings.endpoints.items()}
    to_simulate = [v for v in settings.venues if v not in endpoints]
    sim = None
    if settings.source == "sim" and to_simulate:
        from .sim.server import start_sim

        sim = await start_sim(to_simulate, settings.symbols, seed=settings.sim.seed,
                              speed=settings.sim.speed, rate=settings.sim.rate)
        endpoints.update(sim.endpoints)
    return Venues(endpoints, sim)


@dataclass
class RunningIngest:
    ingest: Ingest
    venues: Venues
    metrics: "web.AppRunner | None" = None

    async def close(self) -> None:
        await self.ingest.stop()
        if self.metrics is not None:
            await self.metrics.cleanup()
        await self.venues.close()


async def start_ingest(settings: Settings, bus: Bus) -> RunningIngest:
    """Ingest, its metrics endpoint and, for `source: sim`, the simulated venues."""
    venues = await open_venues(settings)
    ingest = Ingest(settings, bus, venues.endpoints)
    await ingest.start()
    running = RunningIngest(ingest, venues)
    port = settings.ingest.metrics_port
    if port:
        try:
            running.metrics = await start_metrics(ingest, settings.ingest.metrics_host, port)
        except OSError as e:
            await running.close()
            raise SystemExit(f"cannot serve ingest metrics on {settings.ingest.metrics_host}:{port}: {e}; "
                             "set ingest.metrics_port (COBSTACK_INGEST__METRICS_PORT) to a free port or 0") from e
    return running


class SnapshotTally:
    """A plain consumer of the book streams, used by `up --duration` to prove that
    snapshots really flow through the bus (not just that ingest produced them)."""

    def __init__(self, bus: Bus, symbols: list[str]):
        self.reader = StreamReader(bus, [book_stream(s) for s in symbols], block_ms=200)
        self.counts = {s: 0 for s in symbols}
        self.last: dict[str, schema.Snapshot] = {}
        self.gaps = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            for item in await self.reader.next_batch():
                if not isinstance(item, Entry):
                    self.gaps += 1
                    continue
                snap = schema.decode_snapshot(item.data)
                self.counts[snap.symbol] += 1
                self.last[snap.symbol] = snap

    def result(self) -> dict:
        return {
            "snapshots_received": dict(self.counts),
            "venues_in_last_snapshot": {
                s: sorted(st.venue for st in snap.status if st.included) for s, snap in self.last.items()
            },
            "gaps": self.gaps,
        }


async def _supervised(name: str, coro, failures: dict[str, str], alone: bool) -> None:
    """Run one consumer; a crash is reported and recorded, and the rest of the stack runs on."""
    try:
        await coro
    except Exception as e:  # noqa: BLE001 - a consumer's crash must not take ingest down
        failures[name] = f"{type(e).__name__}: {e}"
        log.exception("%s stopped with an error%s", name,
                      "" if alone else "; the rest of the stack keeps running")


async def run_components(settings: Settings, components: list[str], duration: float | None) -> dict:
    """Run `components` ("ingest" and/or consumers) until `duration`, SIGINT/SIGTERM, or, with
    no ingest, until every consumer has finished (a training Job). The summary's `failed`
    names each component that stopped with an error."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bus = make_bus(settings.redis_url)
    consumers: list[asyncio.Task] = []
    failures: dict[str, str] = {}
    running = None
    tally = SnapshotTally(bus, settings.symbols)
    tally_task = asyncio.create_task(tally.run(stop), name="tally")
    started = time.monotonic()
    try:
        if "ingest" in components:
            running = await start_ingest(settings, bus)
        alone = len(components) == 1
        for name in components:
            if name != "ingest":
                serve = importlib.import_module(CONSUMERS[name]).serve
                consumers.append(asyncio.create_task(
                    _supervised(name, serve(settings, bus, stop), failures, alone), name=name))
        log.info("running %s on %s", ", ".join(components),
                 settings.redis_url or "the embedded in-process bus")
        waiter = asyncio.create_task(stop.wait())
        if running is None and consumers:  # consumers alone: done when they are
            until = asyncio.gather(*consumers)
            await asyncio.wait([waiter, until], timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.wait([waiter], timeout=duration)
        waiter.cancel()
    finally:
        stop.set()
        if running is not None:
            await running.close()
            failures.update(running.ingest.failures)
        await asyncio.wait([tally_task, *consumers], timeout=5)
        for t in (tally_task, *consumers):
            t.cancel()
        await bus.close()
    summary = {"duration_s": round(time.monotonic() - started, 1), "components": components,
               "bus": "redis" if settings.redis_url else "memory", "failed": failures}
    if running is not None:
        summary.update(running.ingest.summary())
    summary.update(tally.result())
    return summary
