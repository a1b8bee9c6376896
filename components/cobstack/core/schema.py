"""The one schema module: every record on the bus is encoded and decoded here.

Three record kinds share one version number: "book" (a symbol's consolidated snapshot),
"trade" and "health". Wire format: a msgpack map (use_bin_type), floats as float64, the
model tensor as raw little-endian float32 bytes with its shape. docs/streams.md documents
every field.

Writers hand `encode` a plain dict (the pipeline's snapshot, or `trade_record` /
`health_record`); it is checked by the same reader consumers use, so a malformed record
fails at the writer and never reaches the bus. Readers get typed, frozen dataclasses.
Decoding never lets bad bytes crash a consumer: anything wrong raises SchemaError saying
which field and why.

Versioning: any change to a record bumps SCHEMA_VERSION and adds UPGRADES[old], a function
that turns a record of the previous version into the current one; readers accept exactly
the current and the previous version.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, Callable, Mapping, NamedTuple, Protocol

import msgpack
import numpy as np

from .symbols import instrument

SCHEMA_VERSION = 1
# UPGRADES[n]: a v(n) record (as unpacked) -> the same record in v(n + 1).
UPGRADES: dict[int, Callable[[dict], dict]] = {}
BOOK, TRADE, HEALTH = "book", "trade", "health"
TENSOR_DTYPE = "float32"  # on the wire: little-endian IEEE 754 single
_WIRE_F32 = np.dtype("<f4")


class SchemaError(ValueError):
    """A record that cannot be encoded or decoded; the message names the field."""


# -- typed records (what readers get) --------------------------------------------------------

class Row(NamedTuple):
    """One ladder level or bucket: price (USD), total size, each venue's size (venue order)."""

    price: float
    total: float
    sizes: list[float]


class ProfileLevel(NamedTuple):
    price: float  # bucket label (lower edge)
    buy: float
    sell: float


@dataclass(frozen=True, slots=True)
class VenueStatus:
    venue: str
    state: str  # adapter sync state, "missing" when ingest had no book
    live: bool
    included: bool  # merged into this snapshot
    age_ms: float | None
    reason: str | None  # why the venue is flagged (left out); None when included
    quote: str | None
    rate: float  # USD per unit of quote
    rate_source: str
    bid: float | None  # the venue's best bid in USD (None when not included)
    ask: float | None


@dataclass(frozen=True, slots=True)
class Ladder:
    bids: list[Row]  # best first
    asks: list[Row]


@dataclass(frozen=True, slots=True)
class Buckets:
    size: float
    bids: list[Row]  # bucket 0 holds the best bid; labels floor(p / size) * size
    asks: list[Row]  # bucket 0 holds the best ask; labels ceil(p / size) * size


@dataclass(frozen=True, slots=True)
class Features:
    best_bid: float | None
    best_ask: float | None
    bid_size: float | None
    ask_size: float | None
    mid: float | None
    spread: float | None
    spread_bps: float | None
    weighted_mid: float | None
    microprice: float | None
    crossed: bool
    imbalance: dict[int, float | None]  # top-n levels -> (B - A) / (B + A)
    ofi: float
    ofi_norm: float
    ofi_steps: int


@dataclass(frozen=True, slots=True)
class Profile:
    bucket: float
    session_start: int | None  # ns
    buy_volume: float
    sell_volume: float
    poc: float | None
    va_low: float | None
    va_high: float | None
    levels: list[ProfileLevel]
    late: int
    rejected: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    v: int
    symbol: str
    seq: int
    ts: int  # publish time, ns
    source_ts: int | None  # latest venue event time among merged venues, ns
    venues: list[str]
    status: list[VenueStatus]
    ladder: Ladder
    buckets: Buckets
    features: Features
    profile: Profile
    tensor: np.ndarray  # float32 [2K, 2, V], read-only
    recv_ts: int | None = None  # when ingest received the newest venue frame in it, ns; optional


@dataclass(frozen=True, slots=True)
class TradeRecord:
    v: int
    symbol: str
    venue: str
    price: float  # in the venue's quote, as traded
    quote: str
    size: float  # base units
    side: str  # taker side: buy | sell
    ts: int  # venue time, ns


@dataclass(frozen=True, slots=True)
class VenueHealth:
    venue: str
    state: str  # see venue_health: connection state, else an instrument's, else "live"
    instruments: dict[str, str]  # native instrument -> sync state
    lag_ms: float | None  # receive time minus venue event time
    last_message_age_ms: float | None
    messages: int
    resyncs: int
    gaps: int
    checksum_failures: int
    rejected: dict[str, int]  # rejection kind -> count
    # Optional (absent from older writers): why the connection is in its state (e.g. an HTTP
    # 451 geo-block), and REST reconciliation results where the venue is reconciled.
    message: str = ""
    reconciliations: int = 0
    drift_events: int = 0


@dataclass(frozen=True, slots=True)
class BusHealth:
    state: str  # ok | degraded | down
    detail: str


@dataclass(frozen=True, slots=True)
class HealthRecord:
    v: int
    ts: int  # ns
    venues: list[VenueHealth]
    bus: BusHealth


Record = Snapshot | TradeRecord | HealthRecord


# -- field checks ----------------------------------------------------------------------------

def _fail(path: str, what: str, got: Any) -> SchemaError:
    return SchemaError(f"{path}: expected {what}, got {type(got).__name__} {_short(got)}")


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."


def _float(x: Any, path: str) -> float:
    if type(x) is float:
        return x
    if type(x) is int:
        return float(x)
    raise _fail(path, "a number", x)


def _int(x: Any, path: str) -> int:
    if type(x) is int:
        return x
    raise _fail(path, "an integer", x)


def _str(x: Any, path: str) -> str:
    if type(x) is str:
        return x
    raise _fail(path, "a string", x)


def _bool(x: Any, path: str) -> bool:
    if type(x) is bool:
        return x
    raise _fail(path, "true/false", x)


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda x, path: None if x is None else check(x, path)


def _map(x: Any, path: str) -> dict:
    if type(x) is dict:
        return x
    raise _fail(path, "a map", x)


def _list(x: Any, path: str) -> list:
    if type(x) is list:
        return x
    raise _fail(path, "a list", x)


def _field(d: dict, key: str, path: str) -> Any:
    try:
        return d[key]
    except KeyError:
        raise SchemaError(f"{path}: missing field {key!r}") from None


_SCALARS: dict[str, Callable[[Any, str], Any]] = {
    "float": _float, "int": _int, "str": _str, "bool": _bool,
    "float | None": _optional(_float), "int | None": _optional(_int),
    "str | None": _optional(_str),
}


def _record(cls: type, d: Any, path: str, **nested: Any) -> Any:
    """Build dataclass `cls` from map `d`: scalar fields are checked by their annotation,
    the others come already converted in `nested`. A field with a default may be absent.
    Unknown keys are ignored."""
    d = _map(d, path)
    values = dict(nested)
    for f in fields(cls):
        if f.name in values or (f.name not in d and f.default is not MISSING):
            continue
        values[f.name] = _SCALARS[f.type](_field(d, f.name, path), f"{path}.{f.name}")
    return cls(**values)


def _numbers(x: Any, n: int, path: str) -> list[float]:
    xs = _list(x, path)
    if len(xs) != n:
        raise SchemaError(f"{path}: expected {n} per-venue sizes, got {len(xs)}")
    if not all(type(v) is float for v in xs):
        return [_float(v, f"{path}[{i}]") for i, v in enumerate(xs)]
    return xs


def _rows(x: Any, n_venues: int, path: str) -> list[Row]:
    out = []
    for i, r in enumerate(_list(x, path)):
        p = f"{path}[{i}]"
        r = _list(r, p)
        if len(r) != 3:
            raise SchemaError(f"{p}: expected [price, total, [per-venue sizes]], got {_short(r)}")
        out.append(Row(_float(r[0], p + ".price"), _float(r[1], p + ".total"),
                       _numbers(r[2], n_venues, p + ".sizes")))
    return out


def _profile_levels(x: Any, path: str) -> list[ProfileLevel]:
    out = []
    for i, r in enumerate(_list(x, path)):
        p = f"{path}[{i}]"
        r = _list(r, p)
        if len(r) != 3:
            raise SchemaError(f"{p}: expected [price, buy, sell], got {_short(r)}")
        out.append(ProfileLevel(_float(r[0], p), _float(r[1], p), _float(r[2], p)))
    return out


def _tensor(x: Any, n_venues: int, path: str) -> np.ndarray:
    x = _map(x, path)
    shape = [_int(n, f"{path}.shape") for n in _list(_field(x, "shape", path), f"{path}.shape")]
    if len(shape) != 3 or shape[0] % 2 or shape[1] != 2 or shape[2] != n_venues:
        raise SchemaError(f"{path}.shape: expected [2K, 2, {n_venues}], got {shape}")
    if _field(x, "dtype", path) != TENSOR_DTYPE:
        raise SchemaError(f"{path}.dtype: expected {TENSOR_DTYPE!r}, got {_short(x['dtype'])}")
    data = _field(x, "data", path)
    if type(data) is not bytes or len(data) != 4 * shape[0] * shape[1] * shape[2]:
        raise SchemaError(f"{path}.data: expected {4 * shape[0] * shape[1] * shape[2]} bytes "
                          f"for shape {shape}, got {type(data).__name__} of length "
                          f"{len(data) if hasattr(data, '__len__') else '?'}")
    return np.frombuffer(data, dtype=_WIRE_F32).reshape(shape)


def _imbalance(x: Any, path: str) -> dict[int, float | None]:
    out = {}
    for k, v in _map(x, path).items():
        if not (type(k) is str and k.isascii() and k.isdigit()):
            raise SchemaError(f"{path}: keys must be level counts like '5', got {_short(k)}")
        out[int(k)] = None if v is None else _float(v, f"{path}.{k}")
    return out


def _counts(x: Any, path: str) -> dict[str, int]:
    return {_str(k, path): _int(v, f"{path}.{k}") for k, v in _map(x, path).items()}


def _states(x: Any, path: str) -> dict[str, str]:
    return {_str(k, path): _str(v, f"{path}.{k}") for k, v in _map(x, path).items()}


# -- readers per kind ------------------------------------------------------------------------

def _read_book(d: dict) -> Snapshot:
    venues = [_str(v, "venues") for v in _list(_field(d, "venues", "book"), "book.venues")]
    n = len(venues)
    status = [_record(VenueStatus, s, f"book.status[{i}]")
              for i, s in enumerate(_list(_field(d, "status", "book"), "book.status"))]
    if [s.venue for s in status] != venues:
        raise SchemaError(f"book.status: expected one row per venue in order {venues}, got "
                          f"{[s.venue for s in status]}")
    lad = _map(_field(d, "ladder", "book"), "book.ladder")
    bk = _map(_field(d, "buckets", "book"), "book.buckets")
    ft = _map(_field(d, "features", "book"), "book.features")
    pf = _map(_field(d, "profile", "book"), "book.profile")
    return _record(
        Snapshot, d, "book", venues=venues, status=status,
        ladder=Ladder(_rows(_field(lad, "bids", "book.ladder"), n, "book.ladder.bids"),
                      _rows(_field(lad, "asks", "book.ladder"), n, "book.ladder.asks")),
        buckets=_record(Buckets, bk, "book.buckets",
                        bids=_rows(_field(bk, "bids", "book.buckets"), n, "book.buckets.bids"),
                        asks=_rows(_field(bk, "asks", "book.buckets"), n, "book.buckets.asks")),
        features=_record(Features, ft, "book.features", imbalance=_imbalance(
            _field(ft, "imbalance", "book.features"), "book.features.imbalance")),
        profile=_record(Profile, pf, "book.profile", levels=_profile_levels(
            _field(pf, "levels", "book.profile"), "book.profile.levels")),
        tensor=_tensor(_field(d, "tensor", "book"), n, "book.tensor"))


def _read_trade(d: dict) -> TradeRecord:
    t = _record(TradeRecord, d, "trade")
    if t.side not in ("buy", "sell"):
        raise SchemaError(f"trade.side: expected 'buy' or 'sell', got {_short(t.side)}")
    return t


def _venue_health(x: Any, path: str) -> VenueHealth:
    x = _map(x, path)
    return _record(VenueHealth, x, path,
                   instruments=_states(_field(x, "instruments", path), f"{path}.instruments"),
                   rejected=_counts(_field(x, "rejected", path), f"{path}.rejected"))


def _read_health(d: dict) -> HealthRecord:
    venues = [_venue_health(v, f"health.venues[{i}]")
              for i, v in enumerate(_list(_field(d, "venues", "health"), "health.venues"))]
    return _record(HealthRecord, d, "health", venues=venues,
                   bus=_record(BusHealth, _field(d, "bus", "health"), "health.bus"))


_READERS: dict[str, Callable[[dict], Record]] = {
    BOOK: _read_book, TRADE: _read_trade, HEALTH: _read_health}


def _read(d: dict) -> Record:
    kind = d.get("kind")
    reader = _READERS.get(kind) if type(kind) is str else None
    if reader is None:
        raise SchemaError(f"unknown record kind {_short(kind)}; expected one of {sorted(_READERS)}")
    try:
        return reader(d)
    except SchemaError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as e:
        # a shape the field checks did not anticipate: still the record's fault, not ours
        raise SchemaError(f"{kind}: malformed record ({type(e).__name__}: {e})") from None


def _current(d: dict) -> dict:
    """The record in the current version, upgrading the previous one; else SchemaError."""
    v = d.get("v")
    if type(v) is not int:
        raise SchemaError(f"record has no integer schema version 'v' (got {_short(v)})")
    accepted = f"v{SCHEMA_VERSION}" + (
        f" and v{SCHEMA_VERSION - 1}" if SCHEMA_VERSION - 1 in UPGRADES else "")
    if v == SCHEMA_VERSION:
        return d
    if v == SCHEMA_VERSION - 1 and v in UPGRADES:
        return UPGRADES[v](d)
    if v > SCHEMA_VERSION:
        raise SchemaError(f"record is schema v{v}, newer than this reader ({accepted}); "
                          f"upgrade this consumer")
    raise SchemaError(f"record is schema v{v}, too old for this reader ({accepted}); "
                      f"replay from a stream written by a newer ingest")


# -- public API ------------------------------------------------------------------------------

def tensor_wire(tensor: np.ndarray) -> dict:
    return {"shape": list(tensor.shape), "dtype": TENSOR_DTYPE,
            "data": np.ascontiguousarray(tensor, dtype=_WIRE_F32).tobytes()}


def encode(record: Mapping[str, Any], check: bool = True) -> bytes:
    """Check and pack one record dict (any kind, current version) to msgpack bytes.

    check=False skips the full read-back check; only for the hot path of a trusted writer
    (ingest's pipeline output, whose records the test suite round-trips). Readers always
    check, so a bad record is rejected there, counted, never used."""
    if record.get("v") != SCHEMA_VERSION:
        raise SchemaError(f"writers emit schema v{SCHEMA_VERSION}, record has v={record.get('v')!r}")
    wire = dict(record)
    if isinstance(wire.get("tensor"), np.ndarray):
        wire["tensor"] = tensor_wire(wire["tensor"])
    if check:
        _read(wire)
    try:
        return msgpack.packb(wire, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as e:
        raise SchemaError(f"{record.get('kind')}: cannot pack record: {e}") from None


def unpack_map(data: bytes, what: str, version: int | None) -> dict:
    """Untrusted bytes -> the msgpack map of a `what` record of schema `version` (None: any,
    the caller upgrades); SchemaError on anything else. The first step of every stream reader
    (this module's and the other components' record modules)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SchemaError(f"{what}: expected bytes, got {type(data).__name__}")
    try:
        d = msgpack.unpackb(data, raw=False)
    except Exception as e:  # noqa: BLE001 - msgpack raises a zoo of types on garbage
        raise SchemaError(f"{what}: not a msgpack record ({type(e).__name__}: {e})") from None
    if type(d) is not dict:
        raise SchemaError(f"{what}: expected a msgpack map, got {type(d).__name__}")
    if version is not None and d.get("v") != version:
        raise SchemaError(f"{what}: schema v{d.get('v')!r} is not the supported v{version}")
    return d


def decode(data: bytes) -> Record:
    """Unpack and check one record of any kind; raises SchemaError on anything malformed."""
    return _read(_current(unpack_map(data, "record", None)))


def _decode_kind(data: bytes, cls: type, kind: str) -> Any:
    record = decode(data)
    if not isinstance(record, cls):
        raise SchemaError(f"expected a {kind} record, got {type(record).__name__}")
    return record


def _encode_kind(record: Mapping[str, Any], kind: str) -> bytes:
    if record.get("kind") != kind:
        raise SchemaError(f"expected a {kind} record, got kind={record.get('kind')!r}")
    return encode(record)


def decode_snapshot(data: bytes) -> Snapshot:
    return _decode_kind(data, Snapshot, BOOK)


def decode_trade(data: bytes) -> TradeRecord:
    return _decode_kind(data, TradeRecord, TRADE)


def decode_health(data: bytes) -> HealthRecord:
    return _decode_kind(data, HealthRecord, HEALTH)


def encode_snapshot(snapshot: Mapping[str, Any]) -> bytes:
    """`SymbolPipeline.snapshot(...)`'s dict -> bytes."""
    return _encode_kind(snapshot, BOOK)


def encode_trade(symbol: str, trade: TradeLike, quote: str | None = None) -> bytes:
    """One venue trade -> bytes (see `trade_record`)."""
    return encode(trade_record(symbol, trade, quote))


def encode_health(record: Mapping[str, Any]) -> bytes:
    """A `health_record(...)` dict -> bytes."""
    return _encode_kind(record, HEALTH)


# -- writer helpers --------------------------------------------------------------------------

class TradeLike(Protocol):
    venue: str
    instrument: str  # native, e.g. BTCUSDT
    price: float
    size: float
    side: str
    ts: float  # seconds


def trade_record(symbol: str, trade: TradeLike, quote: str | None = None) -> dict:
    """The trade stream's record for one venue trade. The price stays in the venue's quote,
    named by `quote` (default: read from the native instrument through the symbol map)."""
    if quote is None:
        try:
            quote = instrument(trade.venue, trade.instrument).quote
        except ValueError as e:
            raise SchemaError(f"trade: {e}; pass quote= explicitly") from None
    try:
        price, size, ts = float(trade.price), float(trade.size), round(trade.ts * 1e9)
    except (TypeError, ValueError, OverflowError) as e:
        raise SchemaError(f"trade from {trade.venue}: bad price, size or ts ({e})") from None
    return {"v": SCHEMA_VERSION, "kind": TRADE, "symbol": symbol, "venue": trade.venue,
            "price": price, "quote": quote, "size": size, "side": trade.side, "ts": ts}


def venue_health(venue: str, connection: str, instruments: Mapping[str, str],
                 stats: Mapping[str, Any], lag_ms: float | None,
                 last_message_age_ms: float | None, message: str = "") -> dict:
    """One venue's health row. connection: the websocket's state ("live" when connected);
    stats: `VenueStats.as_dict()`. The row's state is the connection's when it is not live,
    else the first non-live instrument state (by name), else "live"."""
    bad = [s for _, s in sorted(instruments.items()) if s != "live"]
    state = connection if connection != "live" else (bad[0] if bad else "live")
    return {"venue": venue, "state": state, "instruments": dict(instruments), "lag_ms": lag_ms,
            "last_message_age_ms": last_message_age_ms, "messages": stats["messages"],
            "resyncs": stats["resyncs"], "gaps": stats["gaps"],
            "checksum_failures": stats["checksum_failures"], "rejected": dict(stats["rejected"]),
            "message": message, "reconciliations": stats.get("reconciliations", 0),
            "drift_events": stats.get("drift_events", 0)}


def health_record(ts_ns: int, venues: list[dict], bus_state: str, bus_detail: str = "") -> dict:
    """The health stream's record. bus_state: ok | degraded | down; bus_detail: why."""
    return {"v": SCHEMA_VERSION, "kind": HEALTH, "ts": ts_ns, "venues": venues,
            "bus": {"state": bus_state, "detail": bus_detail}}
