"""Prometheus metrics and health endpoints for ingest (aiohttp, off the hot path).

Counters live in the adapters and the ingest object already; a custom collector reads them
at scrape time, so the per-frame path pays nothing for metrics.
"""

from __future__ import annotations

import time

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .service import Ingest

_COUNTERS = ("messages", "updates", "snapshots", "checksums_ok", "checksum_failures", "gaps",
             "resyncs", "crossed", "stale_dropped")


class IngestCollector:
    def __init__(self, ingest: Ingest):
        self.ingest = ingest

    def collect(self):
        ingest = self.ingest
        for name in _COUNTERS:
            c = CounterMetricFamily(f"cobstack_venue_{name}", f"Venue {name.replace('_', ' ')}", labels=["venue"])
            for venue, adapter in ingest.adapters.items():
                c.add_metric([venue], getattr(adapter.stats, name))
            yield c
        rej = CounterMetricFamily("cobstack_venue_rejected", "Rejected venue input by kind", labels=["venue", "kind"])
        up = GaugeMetricFamily("cobstack_venue_up", "1 when the venue connection is live", labels=["venue"])
        live = GaugeMetricFamily("cobstack_instrument_live", "1 when the instrument book is consistent",
                                 labels=["venue", "instrument"])
        age = GaugeMetricFamily("cobstack_venue_last_message_age_seconds", "Seconds since the last frame",
                                labels=["venue"])
        now = time.time()
        for venue, adapter in ingest.adapters.items():
            health = ingest.connections[venue].health
            for kind, n in adapter.stats.rejected.items():
                rej.add_metric([venue, kind], n)
            up.add_metric([venue], 1.0 if health.state == "live" else 0.0)
            for inst, state in adapter.state.items():
                live.add_metric([venue, inst], 1.0 if state == "live" else 0.0)
            if health.last_msg_ts:
                age.add_metric([venue], now - health.last_msg_ts)
        yield from (rej, up, live, age)
        pub = CounterMetricFamily("cobstack_snapshots_published", "Snapshots published", labels=["symbol"])
        for symbol, n in ingest.published.items():
            pub.add_metric([symbol], n)
        yield pub
        yield GaugeMetricFamily("cobstack_bus_up", "1 when the bus accepts writes", value=1.0 if ingest.bus_up else 0.0)
        yield GaugeMetricFamily("cobstack_trade_backlog", "Trades waiting for the bus", value=len(ingest.trade_backlog))


def metrics_app(ingest: Ingest) -> web.Application:
    registry = CollectorRegistry()
    registry.register(IngestCollector(ingest))

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain", charset="utf-8")

    async def healthz(_: web.Request) -> web.Response:
        # Liveness: the process answers. Readiness below says whether data flows.
        return web.Response(body=orjson.dumps(ingest.health(time.time())), content_type="application/json")

    async def readyz(_: web.Request) -> web.Response:
        h = ingest.health(time.time())
        live = [v["venue"] for v in h["venues"] if v["state"] == "live"]
        ok = bool(live) and ingest.bus_up and not ingest.failures
        body = {"ready": ok, "live_venues": live, "bus": h["bus"], "failed": ingest.failures}
        return web.Response(status=200 if ok else 503, body=orjson.dumps(body), content_type="application/json")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_metrics(ingest: Ingest, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(metrics_app(ingest), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
