"""`cobstack dashboard`: the feeds (one reader per stream) plus uvicorn, until `stop`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

import uvicorn

from ..bus.base import Bus
from ..config import Settings
from . import views
from .app import Dashboard, create_app
from .feeds import BookFeed, Feed, HealthFeed, TradesFeed
from .hub import Hub
from .render import STATUS, Renderer

log = logging.getLogger("cobstack.dashboard")

STATUS_EVERY_S = 1.0


def build(settings: Settings) -> Dashboard:
    hub, renderer = Hub(), Renderer()
    books = {s: BookFeed(settings, s, hub, renderer) for s in settings.symbols}
    feeds: list[Feed] = [*books.values(), *(TradesFeed(settings, s, hub, renderer) for s in settings.symbols),
                         HealthFeed(settings, hub, renderer)]
    return Dashboard(settings, hub, renderer, feeds, books)


def publish_status(dash: Dashboard, now: float) -> None:
    """The header's component strip, from the newest entry each component's streams got."""
    ingest = [f.last_entry for f in dash.feeds if isinstance(f, (BookFeed, HealthFeed)) and f.last_entry]
    bus_error = next((f.error for f in dash.feeds if f.error), None)
    view = views.status_view(now, {"ingest": max(ingest, default=None)}, bus_error)
    dash.hub.publish(STATUS, dash.renderer.panel(STATUS, view))


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the stack owns SIGINT/SIGTERM and sets `stop`."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise SystemExit(f"dashboard cannot listen on {host}:{port}: {e}; set dashboard.port "
                         f"(--set dashboard.port=N, COBSTACK_DASHBOARD__PORT) to a free port, or 0 for any") from e
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(settings: Settings, bus: Bus, stop: asyncio.Event) -> None:
    dash = build(settings)
    cfg = settings.dashboard
    sock = bind(cfg.host, cfg.port)
    host, port = sock.getsockname()[:2]
    server = _Server(uvicorn.Config(create_app(dash), log_level="warning", lifespan="off",
                                    timeout_graceful_shutdown=2, access_log=False))
    tasks = [asyncio.create_task(f.run(bus), name=f"dashboard:{f.stream}") for f in dash.feeds]

    async def status_ticker() -> None:
        while True:
            publish_status(dash, time.time())
            await asyncio.sleep(STATUS_EVERY_S)

    tasks.append(asyncio.create_task(status_ticker(), name="dashboard:status"))
    web = asyncio.create_task(server.serve(sockets=[sock]), name="dashboard:http")
    log.info("dashboard on http://%s:%d", host, port)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([web, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        server.should_exit = True
        dash.hub.close()  # ends every SSE response, so uvicorn's shutdown does not wait on them
        with contextlib.suppress(Exception):
            await asyncio.wait_for(web, 5)
        for t in (*tasks, stopper):
            t.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        sock.close()
    if web.done() and not web.cancelled() and web.exception() is not None:
        raise web.exception()
