"""Records the trainer publishes for the dashboard: `cob:train:metrics` (progress,
validation, per-fold scores, RL results, state changes) and `cob:train:report` (the whole
evaluation report). msgpack maps like every other record; torch-free for readers.

    v        int   RECORD_VERSION
    kind     str   collecting | progress | resumed | validation | fold | rl | report | serving | plan
    ts       int   ns
    symbol   str
    preset   str
    ...      the kind's own fields (docs/trainer.md)
"""

from __future__ import annotations

import msgpack

from ..core.schema import SchemaError, unpack_map

RECORD_VERSION = 1
KINDS = frozenset({"collecting", "progress", "resumed", "validation", "fold", "rl", "report", "serving",
                   "plan"})


def encode_record(kind: str, ts_ns: int, symbol: str, preset: str, fields: dict) -> bytes:
    if kind not in KINDS:
        raise SchemaError(f"train record: unknown kind {kind!r}; expected one of {sorted(KINDS)}")
    return msgpack.packb({**fields, "v": RECORD_VERSION, "kind": kind, "ts": ts_ns, "symbol": symbol,
                          "preset": preset}, use_bin_type=True)


def decode_record(data: bytes) -> dict:
    d = unpack_map(data, "train record", RECORD_VERSION)
    if d.get("kind") not in KINDS:
        raise SchemaError(f"train record: unknown kind {d.get('kind')!r}")
    return d
