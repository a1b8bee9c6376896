"""Panels, their names, and the one Jinja environment that renders them.

A panel is one SSE event name and one partial template: `ladder.BTC-USD` is rendered by
partials/ladder.html. The full page includes exactly the fragment the SSE stream sends
(the hub's latest) or, before any data arrived, the same partial in its empty state.
"""

from __future__ import annotations

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from ..streams import (EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_PNL_STREAM, EXEC_POSITIONS_STREAM,
                       EXEC_RISK_STREAM, HEALTH_STREAM, SIGNALS_STREAM, TRAIN_METRICS_STREAM, TRAIN_REPORT_STREAM,
                       book_stream, trades_stream)

# Per-symbol panels fed by the book stream, then the trades panel, then global panels.
BOOK_PANELS = ("ladder", "stats", "venues", "heatmap", "profile")
SYMBOL_PANELS = (*BOOK_PANELS, "trades")
STATUS = "status"
HEALTH = "health"
SIGNALS, TRAIN, REPORT = "signals", "train", "report"
ACCOUNT, POSITIONS, ORDERS, FILLS, RISK = "account", "positions", "orders", "fills", "risk"
MODEL_PANELS = (TRAIN, REPORT, SIGNALS)
EXECUTOR_PANELS = (ACCOUNT, POSITIONS, ORDERS, FILLS, RISK)
# Who writes each consumer-page panel's stream, and how to start it (for the empty state).
WRITERS = {**{p: ("trainer", "cobstack train") for p in MODEL_PANELS},
           **{p: ("executor", "cobstack execute") for p in EXECUTOR_PANELS}}
# The stream each global panel is drawn from, for its empty state.
PANEL_STREAMS = {HEALTH: HEALTH_STREAM, SIGNALS: SIGNALS_STREAM, TRAIN: TRAIN_METRICS_STREAM,
                 REPORT: TRAIN_REPORT_STREAM, ACCOUNT: EXEC_PNL_STREAM,
                 POSITIONS: EXEC_POSITIONS_STREAM, ORDERS: EXEC_ORDERS_STREAM, FILLS: EXEC_FILLS_STREAM,
                 RISK: EXEC_RISK_STREAM}


def panel_name(kind: str, symbol: str | None = None) -> str:
    return f"{kind}.{symbol}" if symbol else kind


def source_stream(panel: str) -> str | None:
    """The stream a panel is drawn from (for its empty state), None for derived panels."""
    kind, _, symbol = panel.partition(".")
    if kind in BOOK_PANELS:
        return book_stream(symbol)
    if kind == "trades":
        return trades_stream(symbol)
    return PANEL_STREAMS.get(kind)


class Renderer:
    def __init__(self) -> None:
        self.env = Environment(loader=PackageLoader("cobstack.dashboard", "templates"),
                               autoescape=select_autoescape(["html"]), undefined=StrictUndefined,
                               trim_blocks=True, lstrip_blocks=True, auto_reload=False)

    def panel(self, panel: str, view: dict | None, running: bool = False, **context) -> str:
        """One panel's fragment; `view` None renders its empty state, which says whether the
        stream's writer is `running` (and only quiet) or how to start it."""
        kind, _, symbol = panel.partition(".")
        template = self.env.get_template(f"partials/{kind}.html")
        writer, start = WRITERS.get(kind, ("ingest", "cobstack ingest"))
        return template.render(v=view, symbol=symbol, stream=source_stream(panel), writer=writer,
                               start=start, running=running, **context)

    def page(self, name: str, **context) -> str:
        return self.env.get_template(f"{name}.html").render(**context)

    @staticmethod
    def safe(html: str) -> Markup:
        """A fragment this renderer produced (already escaped), for inclusion in a page."""
        return Markup(html)
