"""The executor's records: what it writes to the cob:exec:* streams and reads from the
control stream. Same conventions as core/schema.py: a msgpack map with `v` and `kind`,
SchemaError naming the field, readers get frozen dataclasses. Torch-free and I/O-free, so
the dashboard imports it alone. docs/executor.md documents every field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import msgpack

from ..core.schema import SchemaError, unpack_map

EXEC_VERSION = 1
ORDER, FILL, POSITION, PNL, RISK, CONTROL = "order", "fill", "position", "pnl", "risk", "control"
COMMANDS = ("halt", "resume")


@dataclass(frozen=True, slots=True)
class OrderRecord:
    """A signal turned into a routed order (children: one dict per venue, see ChildPlan)."""

    v: int
    kind: str
    id: str  # the signal's stream id: one order per signal, ever
    symbol: str
    side: str
    requested: float  # base units the sizing asked for
    qty: float  # base units routed (less when visible depth within the limit ran out)
    ts: int  # decision time, ns
    signal_ts: int  # the signal's publish time, ns
    model_version: str
    confidence: float
    ref_mid: float  # consolidated mid at decision: the slippage reference
    limit: float  # worst price the router would accept
    expected_price: float  # planned average price, before fees
    expected_fee: float
    expected_slippage_bps: float  # planned cost against ref_mid, fees included
    children: list  # [{venue, qty, limit, price, fee, due}] (due: arrival at the venue, ns)


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One venue child order at the paper venue: filled, partly filled or not at all."""

    v: int
    kind: str
    order_id: str
    symbol: str
    venue: str
    side: str
    requested: float  # the child's quantity
    qty: float  # filled
    price: float | None  # average fill price (None when nothing filled)
    notional: float
    fee: float
    status: str  # filled | partial | unfilled
    reason: str | None  # why not (fully) filled
    ts: int  # fill time (decision + venue latency), ns
    decided_ts: int
    signal_ts: int
    expected_price: float
    expected_slippage_bps: float
    realised_slippage_bps: float | None


@dataclass(frozen=True, slots=True)
class PositionRecord:
    v: int
    kind: str
    ts: int
    symbol: str
    qty: float  # base units, negative = short
    avg_cost: float  # average entry price of the open quantity
    realised: float  # quote currency, before fees
    fees: float  # paid on this symbol, quote currency
    cash: float  # account cash after the fill


@dataclass(frozen=True, slots=True)
class PnlRecord:
    v: int
    kind: str
    ts: int
    equity: float  # cash + positions at mark
    cash: float
    realised: float
    unrealised: float
    fees: float
    peak: float  # highest equity seen
    drawdown: float  # peak - equity
    halted: str | None
    killed: str | None
    marks: dict  # symbol -> {qty, mark, unrealised}
    counters: dict  # signals, orders, fills, blocked, holds, rejected, ...


@dataclass(frozen=True, slots=True)
class RiskRecord:
    v: int
    kind: str
    ts: int
    input_id: str  # the input that was blocked (or that triggered the event)
    symbol: str | None
    rule: str  # e.g. max_position, stale_book, halted, kill_switch
    reason: str  # human-readable: what, value, limit
    value: float | None
    limit: float | None


@dataclass(frozen=True, slots=True)
class ControlRecord:
    v: int
    kind: str
    command: str  # halt | resume
    reason: str
    ts: int


ExecRecord = OrderRecord | FillRecord | PositionRecord | PnlRecord | RiskRecord | ControlRecord
_CLASSES: dict[str, type] = {ORDER: OrderRecord, FILL: FillRecord, POSITION: PositionRecord,
                             PNL: PnlRecord, RISK: RiskRecord, CONTROL: ControlRecord}
_NAMES = {cls: tuple(f.name for f in fields(cls)) for cls in _CLASSES.values()}
_TYPES = {"int": (int,), "float": (float, int), "str": (str,), "list": (list,), "dict": (dict,)}


def _check(cls: type, d: dict) -> None:
    for f in fields(cls):
        if f.name not in d:
            raise SchemaError(f"{d.get('kind')}: missing field {f.name!r}")
        value, typ = d[f.name], str(f.type)
        optional = typ.endswith(" | None")
        if value is None and optional:
            continue
        allowed = _TYPES[typ.removesuffix(" | None")]
        if type(value) not in allowed:
            raise SchemaError(f"{d.get('kind')}.{f.name}: expected {typ}, got {type(value).__name__} {value!r:.60}")


def record(kind: str, **values: Any) -> dict:
    """A record dict of `kind` (v and kind filled in)."""
    return {"v": EXEC_VERSION, "kind": kind, **values}


def encode(rec: dict) -> bytes:
    """Check and pack one record dict; a malformed record fails here, at the writer."""
    cls = _CLASSES.get(rec.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise SchemaError(f"unknown executor record kind {rec.get('kind')!r}; expected one of {sorted(_CLASSES)}")
    _check(cls, rec)
    return msgpack.packb(rec, use_bin_type=True)


def decode(data: bytes) -> ExecRecord:
    """Unpack and check one record of any kind; SchemaError (naming the field) if malformed."""
    d = unpack_map(data, "executor record", EXEC_VERSION)
    cls = _CLASSES.get(d.get("kind"))  # type: ignore[arg-type]
    if cls is None:
        raise SchemaError(f"executor record: unknown kind {d.get('kind')!r}")
    _check(cls, d)
    return cls(*(d[name] for name in _NAMES[cls]))


def control(command: str, reason: str, ts_ns: int) -> bytes:
    """A halt/resume command for the control stream."""
    if command not in COMMANDS:
        raise ValueError(f"executor control command must be one of {COMMANDS}, got {command!r}")
    return encode(record(CONTROL, command=command, reason=reason, ts=ts_ns))
