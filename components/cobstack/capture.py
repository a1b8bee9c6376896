"""The capture JSONL format (see ../shared/recordings/README.md): one object per line,
{"t": seconds, "kind": ws_open|ws_send|ws_recv|http, "url": ..., "data": raw text}.

`iter_capture` reads it for replay; `CaptureWriter` appends it for `cobstack record`.
"""

from __future__ import annotations

import os

import time
from pathlib import Path
from typing import Iterator, NamedTuple

import orjson

KINDS = frozenset({"ws_open", "ws_send", "ws_recv", "http"})


class Record(NamedTuple):
    t: float
    kind: str
    url: str
    data: str


class CaptureError(ValueError):
    """A capture line that is not a valid record; names the file and line."""


def parse_record(line: bytes | str) -> Record:
    """One capture line -> Record; ValueError saying what is wrong."""
    obj = orjson.loads(line)
    if obj.__class__ is not dict:
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    missing = {"t", "kind", "url", "data"} - obj.keys()
    if missing:
        raise ValueError(f"missing field(s) {', '.join(sorted(missing))}")
    t, kind, url, data = obj["t"], obj["kind"], obj["url"], obj["data"]
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
    if t.__class__ not in (int, float) or url.__class__ is not str or data.__class__ is not str:
        raise ValueError("t must be a number, url and data strings")
    return Record(float(t), kind, url, data)


def iter_capture(path: str | Path) -> Iterator[Record]:
    """Records of a capture file in order; CaptureError on the first corrupt line."""
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield parse_record(line)
            except ValueError as e:  # orjson.JSONDecodeError is a ValueError
                raise CaptureError(f"{path}:{n}: corrupt capture line: {e}; "
                                   "the file is not capture JSONL (see recordings/README.md)") from None


class CaptureWriter:
    """Append-only capture writer. Lines are flushed at most `flush_s` apart (and on close),
    so a crash loses at most that much while recording stays cheap per frame."""

    def __init__(self, path: str | Path, flush_s: float = 1.0, clock=time.time):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "ab")
        self.flush_s = flush_s
        self.clock = clock
        self._last_flush = clock()
        self.records = 0

    def write(self, t: float, kind: str, url: str, data: str | bytes = "") -> None:
        """Append one record (fields in the format's order); t is the send/receive time."""
        if kind not in KINDS:
            raise ValueError(f"capture kind {kind!r} is not one of {', '.join(sorted(KINDS))}")
        if isinstance(data, bytes):
            # Capture data is text; venues send UTF-8 JSON. Undecodable bytes are replaced
            # (visible as U+FFFD) rather than dropping the frame.
            data = data.decode("utf-8", "replace")
        self._f.write(orjson.dumps({"t": t, "kind": kind, "url": url, "data": data}) + b"\n")
        self.records += 1
        if self.clock() - self._last_flush >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        self._f.flush()
        self._last_flush = self.clock()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._f.close()

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


RECORDINGS_ENV = "COBSTACK_RECORDINGS"


def recordings_dir() -> Path:
    """The shared real-traffic captures: $COBSTACK_RECORDINGS, else <repo>/../shared/recordings.
    Raises FileNotFoundError saying where it looked."""
    env = os.environ.get(RECORDINGS_ENV)
    repo = Path(__file__).resolve().parents[2]
    path = Path(env) if env else repo.parent / "shared" / "recordings"
    if not path.is_dir():
        raise FileNotFoundError(f"recorded exchange traffic not found at {path}; set {RECORDINGS_ENV} "
                                "to the shared recordings folder (see its README.md)")
    return path
