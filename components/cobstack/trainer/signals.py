"""The signal record: what the trainer publishes to `cob:signals` and the executor reads.

Same conventions as core/schema.py (msgpack map, `v` version, SchemaError naming the field,
readers get a frozen dataclass) and torch-free, so the executor imports it without the
`train` extra. One signal per book snapshot the model saw:

    v              int    SIGNAL_VERSION
    symbol         str    canonical symbol, e.g. BTC-USD
    ts             int    publish time of the signal, ns
    source_id      str    stream id of the snapshot it was computed from (cob:book:{symbol})
    source_ts      int    that snapshot's publish time `ts`, ns (signal age = now - source_ts)
    model_version  str    which weights produced it, e.g. "tiny-3f2a9c1e@400"
    horizon        int    prediction horizon, in snapshots
    probs          [down, flat, up] probabilities (sum to 1)
    direction      int    -1 down, 0 flat, +1 up: the model's decision (the argmax of probs
                          after the decision bias tuned on validation data, so a move can
                          be called below 50%)
    action         str    "sell" | "hold" | "buy" (direction as an order intent)
    confidence     float  the probability of the decided direction, probs[direction + 1]
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import msgpack

from ..core.schema import SchemaError, unpack_map

SIGNAL_VERSION = 1
ACTIONS = ("sell", "hold", "buy")  # index = direction + 1 = argmax class (down, flat, up)
_SUM_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True)
class Signal:
    v: int
    symbol: str
    ts: int
    source_id: str
    source_ts: int
    model_version: str
    horizon: int
    probs: tuple[float, float, float]
    direction: int
    action: str
    confidence: float


def make_signal(symbol: str, ts_ns: int, source_id: str, source_ts: int, model_version: str,
                horizon: int, probs: list[float], direction: int | None = None) -> Signal:
    """A checked Signal from the model's class probabilities [down, flat, up] and its
    decision (default: the most probable class)."""
    if direction not in (None, -1, 0, 1):
        raise SchemaError(f"signal.direction: expected -1, 0 or 1, got {direction!r}")
    p = tuple(float(x) for x in probs)
    k = max(range(3), key=p.__getitem__) if direction is None else direction + 1
    sig = Signal(SIGNAL_VERSION, symbol, ts_ns, source_id, source_ts, model_version, horizon,
                 p, k - 1, ACTIONS[k], p[k])
    _check(sig)
    return sig


def encode_signal(sig: Signal) -> bytes:
    _check(sig)
    d = asdict(sig)
    d["probs"] = list(sig.probs)
    return msgpack.packb(d, use_bin_type=True)


def decode_signal(data: bytes) -> Signal:
    """Unpack and check one signal; SchemaError (naming the field) on anything malformed."""
    d = unpack_map(data, "signal", SIGNAL_VERSION)
    missing = [f for f in Signal.__dataclass_fields__ if f not in d]
    if missing:
        raise SchemaError(f"signal: missing field(s) {', '.join(missing)}")
    probs = d["probs"]
    if type(probs) is not list or len(probs) != 3:
        raise SchemaError(f"signal.probs: expected [down, flat, up], got {probs!r:.60}")
    try:
        sig = Signal(**{**{k: d[k] for k in Signal.__dataclass_fields__},
                        "probs": tuple(float(x) for x in probs),
                        "confidence": float(d["confidence"])})
    except (TypeError, ValueError) as e:
        raise SchemaError(f"signal: {e}") from None
    _check(sig)
    return sig


def _check(sig: Signal) -> None:
    for name, typ in (("symbol", str), ("source_id", str), ("model_version", str), ("action", str),
                      ("ts", int), ("source_ts", int), ("horizon", int), ("direction", int)):
        value = getattr(sig, name)
        if type(value) is not typ:
            raise SchemaError(f"signal.{name}: expected {typ.__name__}, got {type(value).__name__} {value!r:.60}")
    if not all(math.isfinite(p) and 0.0 <= p <= 1.0 for p in sig.probs) or \
            abs(sum(sig.probs) - 1.0) > _SUM_TOLERANCE:
        raise SchemaError(f"signal.probs: expected 3 probabilities summing to 1, got {list(sig.probs)}")
    if sig.direction not in (-1, 0, 1) or sig.action != ACTIONS[sig.direction + 1]:
        raise SchemaError(f"signal.direction/action: {sig.direction}/{sig.action!r} must be "
                          f"-1/sell, 0/hold or 1/buy")
    if not math.isclose(sig.confidence, sig.probs[sig.direction + 1], abs_tol=1e-9):
        raise SchemaError(f"signal.confidence: {sig.confidence} is not probs[{sig.direction + 1}] "
                          f"= {sig.probs[sig.direction + 1]}")
    if sig.horizon < 1:
        raise SchemaError(f"signal.horizon: expected >= 1 snapshot, got {sig.horizon}")
