"""The Bus contract: append-only streams with fan-out readers and consumer groups.

Two implementations share these semantics exactly (one contract test suite runs against
both): `RedisStreamsBus` (Redis Streams, for a cluster) and `MemoryBus` (in-process, the
embedded default of `cobstack up`). Payloads are opaque bytes; the snapshot schema owns them.

Ids are Redis stream ids, "ms-seq", strictly increasing per stream. Cursors name the last id
a reader has seen: "0" reads from the oldest retained entry, "$" only what arrives after the
call starts. Streams are bounded (MAXLEN); a reader whose position was trimmed away is told
so with a `Gap` before the entries it gets next, never skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

StreamId = tuple[int, int]  # (milliseconds, sequence)

START: StreamId = (0, 0)
NEW_ONLY = "$"
DEFAULT_MAXLEN = 10_000  # entries kept per stream when a publisher names no maxlen
BLOCK_SLICE_MS = 1_000  # longest single server-side wait; longer waits loop (socket timeouts stay short)

_ID = re.compile(r"(\d+)(?:-(\d+))?")
_MAX_SEQ = 2**64 - 1


@dataclass(frozen=True, slots=True)
class Entry:
    """One stream entry."""

    stream: str
    id: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Gap:
    """Entries after `after_id` (the reader's last id) were trimmed by retention before the
    reader got them; what it gets now resumes at `resumed_id`, the oldest retained entry."""

    stream: str
    after_id: str
    resumed_id: str


class BusUnavailable(ConnectionError):
    """The backend cannot be reached (or the bus was closed); the message says which and what to do."""


class NoSuchGroup(LookupError):
    """A consumer-group operation named a group that `ensure_group` never created."""


class StateConflict(RuntimeError):
    """`commit` found the state at another version than expected: someone else committed
    (a second consumer on the same state) or the backend lost it (restart without persistence).
    Nothing was written; reload with `load_state` and redo the work."""


def done_key(state_key: str, stream: str) -> str:
    """Where `commit` records which entries of an input stream it consumed for a state."""
    return f"{state_key}:done:{stream}"


def parse_id(text: str) -> StreamId:
    """'ms-seq' or 'ms' (sequence 0) -> (ms, seq); anything else is a ValueError naming it."""
    m = _ID.fullmatch(text)
    if m is None:
        raise ValueError(f"bad stream id {text!r}: expected 'ms-seq' digits (e.g. '1700000000000-0'), '0' or '$'")
    return int(m[1]), int(m[2] or 0)


def format_id(sid: StreamId) -> str:
    return f"{sid[0]}-{sid[1]}"


def parse_cursor(text: str) -> StreamId | None:
    """A read cursor: None for '$' (resolved to the stream's last id by the caller), else an id."""
    return None if text == NEW_ONLY else parse_id(text)


def parse_bound(text: str, *, end: bool) -> tuple[StreamId, bool]:
    """An XRANGE bound -> (id, exclusive). '-'/'+' are the extremes; '(' makes it exclusive;
    an end bound given as 'ms' covers every sequence of that millisecond, as Redis does."""
    if text == "-":
        return START, False
    if text == "+":
        return (_MAX_SEQ, _MAX_SEQ), False
    exclusive = text.startswith("(")
    body = text[1:] if exclusive else text
    ms, seq = parse_id(body)
    if end and "-" not in body:
        seq = _MAX_SEQ
    return (ms, seq), exclusive


def check_maxlen(maxlen: int) -> int:
    if not isinstance(maxlen, int) or maxlen < 1:
        raise ValueError(f"maxlen must be a positive int (entries kept per stream), got {maxlen!r}")
    return maxlen


def check_payload(data: object) -> None:
    """Payloads are opaque bytes; refusing str here keeps both buses byte-for-byte alike."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"bus payload must be bytes (encode it with core/schema), got {type(data).__name__}")


def next_id(last: StreamId, now_ms: int) -> StreamId:
    """The id Redis would give a new entry: current time, or last ms with seq+1 if the clock
    has not moved past the last entry (ids stay monotonic even if the clock steps back)."""
    if now_ms > last[0]:
        return now_ms, 0
    return last[0], last[1] + 1


def fell_behind(cursor: StreamId, first_retained: StreamId, trimmed: bool) -> bool:
    """The Gap rule both buses apply: a reader positioned before the oldest retained entry of a
    stream that has lost entries to trimming may have missed some. Trimming only removes the
    oldest entries, so a reader still at or past the oldest retained entry has missed nothing.
    A reader reading from the start ('0') asked for whatever is retained, so it gets no Gap.
    It over-reports only when the reader's own last entry was exactly the last one trimmed."""
    return trimmed and cursor != START and cursor < first_retained


@runtime_checkable
class Bus(Protocol):
    """Async stream bus. Every operation raises BusUnavailable when the backend is down."""

    async def publish(self, stream: str, data: bytes, maxlen: int | None = None) -> str:
        """Append one entry; keep about `maxlen` entries (DEFAULT_MAXLEN if None). Returns its id."""

    async def publish_many(self, items: Sequence[tuple[str, bytes]], maxlen: int | None = None) -> list[str]:
        """Append entries in order (one round trip on Redis); ids in the same order."""

    async def read(self, cursors: dict[str, str], block_ms: int | None = 1000,
                   count: int = 100) -> list[Entry | Gap]:
        """Up to `count` entries per stream after each cursor, grouped per stream in id order, a
        Gap first where the cursor fell behind retention. Waits up to block_ms for something
        to arrive (None: do not wait; 0: wait until something does); [] on timeout.
        The caller advances its cursors from the returned ids (see StreamReader)."""

    async def last_id(self, stream: str) -> str:
        """Id of the last entry ever added ('0-0' for a stream that does not exist)."""

    async def range(self, stream: str, start: str = "-", end: str = "+",
                    count: int | None = None) -> list[Entry]:
        """XRANGE: retained entries between the bounds ('(' prefix = exclusive, to resume paging)."""

    async def latest(self, stream: str) -> Entry | None:
        """The newest entry, or None if the stream is empty or absent."""

    async def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        """Create the consumer group (and the stream) unless it exists; it delivers after start_id."""

    async def read_group(self, group: str, consumer: str, streams: list[str], block_ms: int | None = 1000,
                         count: int = 100) -> list[Entry]:
        """New entries for this group (XREADGROUP '>'); they stay pending for `consumer` until acked."""

    async def pending_for(self, stream: str, group: str, consumer: str, count: int = 100) -> list[Entry]:
        """Entries delivered to `consumer` and not yet acked (re-read them after a restart).
        Pending entries that retention already trimmed are dropped from the pending list."""

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        """Acknowledge entries; returns how many were pending."""

    async def autoclaim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                        count: int = 100) -> list[Entry]:
        """Take over entries pending (for anyone) for at least min_idle_ms (XAUTOCLAIM)."""

    async def load_state(self, key: str) -> tuple[int, bytes | None]:
        """A consumer's durable state: (version, bytes), (0, None) before the first commit."""

    async def commit(self, key: str, version: int, state: bytes, *, group: str,
                     acks: dict[str, Sequence[str]], items: Sequence[tuple[str, bytes]] = (),
                     maxlen: int | None = None) -> list[str]:
        """Exactly-once step of a consumer group member, all or nothing: if the state at `key`
        is still at `version`, append `items` (as publish_many), store `state` as version + 1,
        record the `acks` (input stream -> ids) as done for this state and XACK them in `group`.
        Otherwise raise StateConflict and change nothing. Done records of entries that
        retention has trimmed from an input stream are dropped. Returns the items' ids."""

    async def done(self, key: str, stream: str, ids: Sequence[str]) -> set[str]:
        """Those of `ids` (entries of `stream`) that a `commit` to state `key` acked."""

    async def ping(self) -> bool:
        """True if the backend answers; False (never an exception) if it does not."""

    async def close(self) -> None:
        """Release connections; later operations raise BusUnavailable."""


class StreamReader:
    """The one way consumers tail streams: keeps a cursor per stream and yields Entry/Gap.

        reader = StreamReader(bus, ["cob:BTC-USD"])          # from now on ("$")
        async for item in reader: ...                        # forever, item by item
        batch = await reader.next_batch()                    # or batch by batch

    A '$' start is pinned to the stream's last id on first use, so nothing published between
    two batches is lost. BusUnavailable propagates; the cursors survive it, so calling again
    after the backend is back resumes where the reader was.
    """

    def __init__(self, bus: Bus, streams: Sequence[str] | dict[str, str], *, start: str = NEW_ONLY,
                 block_ms: int | None = 1000, count: int = 100) -> None:
        self.bus = bus
        self.cursors = dict(streams) if isinstance(streams, dict) else {s: start for s in streams}
        for cursor in self.cursors.values():
            parse_cursor(cursor)  # reject bad ids here, not on the first read
        self.block_ms = block_ms
        self.count = count
        self._unread: list[Entry | Gap] = []  # rest of the last batch, reversed, for __anext__

    async def next_batch(self) -> list[Entry | Gap]:
        for stream, cursor in self.cursors.items():
            if cursor == NEW_ONLY:
                self.cursors[stream] = await self.bus.last_id(stream)
        batch = await self.bus.read(self.cursors, self.block_ms, self.count)
        for item in batch:
            if isinstance(item, Entry):
                self.cursors[item.stream] = item.id
        return batch

    def __aiter__(self) -> StreamReader:
        return self

    async def __anext__(self) -> Entry | Gap:
        while not self._unread:
            self._unread = (await self.next_batch())[::-1]
        return self._unread.pop()
