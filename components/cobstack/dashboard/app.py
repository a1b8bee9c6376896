"""The read-only web app: full pages, one SSE stream per page, health and metrics.

Pages render the hub's latest fragments (the same partials SSE sends), so a page load reads
nothing from the bus. `/sse/{page}` subscribes the browser to its page's panels in the hub:
it first gets every panel's current fragment (a reconnect after a restart is brought up to
date at once), then each change, conflated to the pace it reads at. Each fragment is
encoded as an SSE event once, when published; every browser is sent the same bytes. The
status strip, on every page, is republished each second, which doubles as the keep-alive.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.sse import format_sse_event
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ..config import Settings
from .feeds import BookFeed, Feed
from .hub import Hub
from .render import EXECUTOR_PANELS, HEALTH, MODEL_PANELS, STATUS, SYMBOL_PANELS, Renderer, panel_name

STATIC = __file__.rsplit("/", 1)[0] + "/static"


@dataclass
class Dashboard:
    """Everything the web app reads: settings, the hub and the feeds that fill it."""

    settings: Settings
    hub: Hub
    renderer: Renderer
    components: dict[str, list[Feed]]  # ingest / trainer / executor -> the feeds of its streams
    books: dict[str, BookFeed] = field(default_factory=dict)  # symbol -> its book feed
    started: float = field(default_factory=time.time)

    @property
    def feeds(self) -> list[Feed]:
        return [f for feeds in self.components.values() for f in feeds]

    def page_panels(self, page: str, symbol: str | None = None) -> list[str]:
        if page == "overview" and symbol is not None:
            return [*(panel_name(k, symbol) for k in SYMBOL_PANELS), HEALTH, STATUS]
        if page == "model":
            return [*MODEL_PANELS, STATUS]
        if page == "executor":
            return [*EXECUTOR_PANELS, STATUS]
        raise HTTPException(404, f"no SSE stream for page {page!r}; pages: overview?symbol=S, model, executor")

    def fragment(self, panel: str) -> str:
        html = self.hub.latest.get(panel)
        return html if html is not None else self.renderer.panel(panel, None)


def create_app(dash: Dashboard) -> FastAPI:
    settings, hub, renderer = dash.settings, dash.hub, dash.renderer
    app = FastAPI(title="cobstack dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    registry = CollectorRegistry()
    registry.register(DashboardCollector(dash))

    def page(name: str, title: str, sse_url: str, **context) -> HTMLResponse:
        html = renderer.page(name, title=title, page=name, sse_url=sse_url, symbols=settings.symbols,
                             venues=settings.venues, frag=lambda p: renderer.safe(dash.fragment(p)),
                             **context)
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    def known(symbol: str) -> str:
        if symbol not in settings.symbols:
            raise HTTPException(404, f"symbol {symbol!r} is not published by this stack; "
                                     f"symbols: {', '.join(settings.symbols)}")
        return symbol

    @app.get("/")
    async def index() -> RedirectResponse:
        return RedirectResponse(f"/book/{settings.symbols[0]}")

    @app.get("/book/{symbol}", response_class=HTMLResponse)
    async def overview(symbol: str) -> HTMLResponse:
        symbol = known(symbol)
        return page("overview", symbol, f"/sse/overview?symbol={symbol}", symbol=symbol,
                    heatmap_seconds=settings.dashboard.heatmap_seconds,
                    heatmap_slot_s=settings.dashboard.heatmap_resolution_ms / 1000,
                    heatmap_page=renderer.safe(dash.books[symbol].heatmap_page()))

    @app.get("/model", response_class=HTMLResponse)
    async def model() -> HTMLResponse:
        return page("model", "Model", "/sse/model")

    @app.get("/executor", response_class=HTMLResponse)
    async def executor() -> HTMLResponse:
        return page("executor", "Executor", "/sse/executor")

    def sse_panels(name: str, symbol: str | None = None) -> list[str]:
        """The page's panels, checked before the stream starts (a bad page is a plain 404)."""
        return dash.page_panels(name, known(symbol) if symbol is not None else None)

    @app.get("/sse/{name}")
    async def sse(panels: list[str] = Depends(sse_panels)) -> StreamingResponse:
        sub = hub.subscribe(panels)

        async def events() -> AsyncIterator[bytes]:
            try:
                yield format_sse_event(comment="cobstack", retry=settings.dashboard.sse_retry_ms)
                while names := await sub.next():
                    yield b"".join(hub.wire[n] for n in names)
            finally:
                sub.close()

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/healthz")
    async def healthz() -> dict:
        now = time.time()
        return {"status": "ok", "uptime_s": round(now - dash.started, 1), "sse_clients": hub.subscribers,
                "feeds": {f.stream: {"records": f.records, "rejected": f.rejected, "gaps": f.gaps,
                                     "render_errors": f.render_errors,
                                     "last_entry_age_s": None if f.last_entry is None else round(now - f.last_entry, 3),
                                     "error": f.error} for f in dash.feeds}}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class DashboardCollector:
    """Reads the hub's and feeds' counters at scrape time (nothing on the update path)."""

    def __init__(self, dash: Dashboard):
        self.dash = dash

    def collect(self):
        hub, feeds = self.dash.hub, self.dash.feeds
        yield GaugeMetricFamily("cobstack_dashboard_sse_clients", "Browsers connected over SSE",
                                value=hub.subscribers)
        for name, value, text in (
                ("published", hub.stats.published, "Fragments rendered and published by feeds"),
                ("delivered", hub.stats.delivered, "Fragments sent to browsers"),
                ("conflated", hub.stats.conflated, "Fragments replaced by a newer one before a browser read them")):
            yield CounterMetricFamily(f"cobstack_dashboard_fragments_{name}", text, value=value)
        per_stream = (("records", "Stream entries read since start (history excluded)"), ("rejected", "Malformed records skipped"),
                      ("gaps", "Retention gaps seen"), ("render_errors", "Records that failed to render"))
        for attr, text in per_stream:
            c = CounterMetricFamily(f"cobstack_dashboard_{attr}", text, labels=["stream"])
            for f in feeds:
                c.add_metric([f.stream], getattr(f, attr))
            yield c
        up = GaugeMetricFamily("cobstack_dashboard_feed_up", "1 while the feed's bus reads succeed",
                               labels=["stream"])
        for f in feeds:
            up.add_metric([f.stream], 0.0 if f.error else 1.0)
        yield up


def sse_event(panel: str, html: str) -> bytes:
    """One panel update on the wire: the SSE event named after the panel, its fragment as data."""
    return format_sse_event(data_str=html, event=panel)
