"""`cobstack dashboard`: the feeds (one reader per stream) plus uvicorn, until `stop`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
import time

import uvicorn

from ..bus.base import Bus
from ..config import Settings
from ..core import schema
from ..executor import records
from ..streams import (EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_PNL_STREAM, EXEC_POSITIONS_STREAM,
                       EXEC_RISK_STREAM, SIGNALS_STREAM, TRAIN_METRICS_STREAM, TRAIN_REPORT_STREAM,
                       trades_stream)
from ..trainer.records import decode_record
from ..trainer.signals import decode_signal
from . import views
from .app import Dashboard, create_app, sse_event
from .feeds import BookFeed, CurveFeed, Feed, HealthFeed, LatestByKeyFeed, TapeFeed, TrainFeed, expecting
from .hub import Hub
from .render import (ACCOUNT, FILLS, ORDERS, POSITIONS, REPORT, RISK, SIGNALS, STATUS, TRAIN, WRITERS, Renderer,
                     panel_name)

log = logging.getLogger("cobstack.dashboard")

STATUS_EVERY_S = 1.0
TRADES_BACKFILL_S = 120  # how far back the trades tape looks when the dashboard starts
HISTORY_S = 86_400  # how far back the model and executor tapes look
REPORT_BACKFILL_S = 30 * 86_400  # the newest evaluation report, however old
PNL_WINDOW_S = 3_600  # the equity curve's window
SIGNALS_SHOWN = 30
EXEC_SHOWN = 25


def build(settings: Settings) -> Dashboard:
    """Every feed, grouped by the component that writes its stream."""
    hub, renderer = Hub(sse_event), Renderer()
    books = {s: BookFeed(settings, s, hub, renderer) for s in settings.symbols}
    venues = settings.venues
    tape = functools.partial(TapeFeed, hub=hub, renderer=renderer)
    ingest: list[Feed] = [
        *books.values(),
        *(tape(trades_stream(s), schema.decode_trade, panel_name("trades", s), settings.dashboard.trades_shown,
               lambda recs: views.trades_view(recs, venues), backfill_s=TRADES_BACKFILL_S)
          for s in settings.symbols),
        HealthFeed(settings, hub, renderer),
    ]
    trainer: list[Feed] = [
        TrainFeed(TRAIN_METRICS_STREAM, decode_record, TRAIN, hub, renderer),
        tape(TRAIN_REPORT_STREAM, decode_record, REPORT, 1, views.report_view, backfill_s=REPORT_BACKFILL_S),
        tape(SIGNALS_STREAM, decode_signal, SIGNALS, SIGNALS_SHOWN, views.signals_view, backfill_s=HISTORY_S),
    ]
    executor: list[Feed] = [
        CurveFeed(EXEC_PNL_STREAM, expecting(records.decode, records.PnlRecord), lambda p: p.equity, ACCOUNT,
                  views.account_view, PNL_WINDOW_S, hub, renderer),
        LatestByKeyFeed(EXEC_POSITIONS_STREAM, expecting(records.decode, records.PositionRecord),
                        lambda r: r.symbol, POSITIONS, views.positions_view, hub, renderer),
        tape(EXEC_ORDERS_STREAM, expecting(records.decode, records.OrderRecord), ORDERS, EXEC_SHOWN,
             views.orders_view, backfill_s=HISTORY_S),
        tape(EXEC_FILLS_STREAM, expecting(records.decode, records.FillRecord), FILLS, EXEC_SHOWN,
             views.fills_view, backfill_s=HISTORY_S),
        tape(EXEC_RISK_STREAM, expecting(records.decode, records.RiskRecord), RISK, EXEC_SHOWN,
             views.risk_view, backfill_s=HISTORY_S),
    ]
    return Dashboard(settings, hub, renderer, {"ingest": ingest, "trainer": trainer, "executor": executor}, books)


def publish_status(dash: Dashboard, now: float) -> None:
    """The header's component strip, from the newest entry each component's streams got, and
    the empty state of every consumer panel still without data (it says whether its writer
    is running, so it changes when the trainer or executor starts or stops)."""
    seen = {name: max((f.last_entry for f in feeds if f.last_entry), default=None)
            for name, feeds in dash.components.items()}
    bus_error = next((f.error for f in dash.feeds if f.error), None)
    view = views.status_view(now, seen, bus_error)
    hub, renderer = dash.hub, dash.renderer
    hub.publish(STATUS, renderer.panel(STATUS, view))
    running = {c["name"]: c["running"] for c in view["components"]}
    for panel, (writer, _) in WRITERS.items():
        if panel not in hub.latest or panel in hub.placeholders:
            html = renderer.panel(panel, None, running=running.get(writer, False))
            if hub.latest.get(panel) != html:
                hub.publish(panel, html, placeholder=True)


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
            try:
                publish_status(dash, time.time())
            except Exception:  # noqa: BLE001 - keep ticking; the strip shows the last good state
                log.exception("dashboard: cannot render the status strip")
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
