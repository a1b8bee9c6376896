"""In-process Bus: the embedded default for single-process runs (`cobstack up`).

Same observable semantics as Redis Streams (the contract suite runs against both): ms-seq
ids, bounded streams (trimmed to exactly maxlen, where Redis keeps about maxlen), the same
Gap rule, blocking reads, consumer groups with pending lists, acks and autoclaim by idle
time. Single event loop, no threads: every method runs to completion between awaits, so
state needs no locks and a reader cannot miss a wake-up.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .base import (
    DEFAULT_MAXLEN, START, BusUnavailable, Entry, Gap, NoSuchGroup, StateConflict, StreamId,
    check_maxlen, check_payload, done_key, fell_behind, format_id, next_id, parse_bound, parse_cursor,
    parse_id,
)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class _Pending:
    consumer: str
    since: float  # monotonic seconds of the last delivery
    deliveries: int = 1


@dataclass(slots=True)
class _Group:
    last_delivered: StreamId
    pel: dict[StreamId, _Pending] = field(default_factory=dict)  # insertion order is id order


@dataclass(slots=True)
class _Stream:
    ids: list[StreamId] = field(default_factory=list)  # parallel to entries, for bisect
    entries: list[Entry] = field(default_factory=list)
    last: StreamId = START  # last id ever added (survives trimming, like last-generated-id)
    trimmed: bool = False
    groups: dict[str, _Group] = field(default_factory=dict)

    def after(self, cursor: StreamId, count: int) -> tuple[list[StreamId], list[Entry]]:
        i = bisect_right(self.ids, cursor)
        return self.ids[i:i + count], self.entries[i:i + count]

    def get(self, sid: StreamId) -> Entry | None:
        i = bisect_left(self.ids, sid)
        return self.entries[i] if i < len(self.ids) and self.ids[i] == sid else None


class MemoryBus:
    def __init__(self, default_maxlen: int = DEFAULT_MAXLEN, clock_ms: Callable[[], int] = _wall_ms) -> None:
        self.default_maxlen = check_maxlen(default_maxlen)
        self._clock_ms = clock_ms
        self._streams: dict[str, _Stream] = {}
        self._states: dict[str, tuple[int, bytes]] = {}
        self._done: dict[str, dict[str, StreamId]] = {}  # done key -> acked ids, about in id order
        self._arrived = asyncio.Event()  # replaced on every publish; waiters hold the old one
        self._closed = False

    # --- writing ----------------------------------------------------------------------------

    async def publish(self, stream: str, data: bytes, maxlen: int | None = None) -> str:
        return (await self.publish_many([(stream, data)], maxlen))[0]

    async def publish_many(self, items: Sequence[tuple[str, bytes]], maxlen: int | None = None) -> list[str]:
        self._check_open()
        keep = self.default_maxlen if maxlen is None else check_maxlen(maxlen)
        for _, data in items:
            check_payload(data)
        ids = []
        for name, data in items:
            s = self._streams.setdefault(name, _Stream())
            s.last = next_id(s.last, self._clock_ms())
            entry = Entry(name, format_id(s.last), bytes(data))
            s.ids.append(s.last)
            s.entries.append(entry)
            if len(s.ids) > keep:
                del s.ids[:-keep], s.entries[:-keep]
                s.trimmed = True
            ids.append(entry.id)
        if items:
            self._arrived.set()
            self._arrived = asyncio.Event()
        return ids

    # --- tailing ----------------------------------------------------------------------------

    async def read(self, cursors: dict[str, str], block_ms: int | None = 1000,
                   count: int = 100) -> list[Entry | Gap]:
        self._check_open()
        positions = {name: self._resolve(name, parse_cursor(c)) for name, c in cursors.items()}
        return await self._wait(block_ms, lambda: self._read_now(positions, count))

    def _resolve(self, name: str, cursor: StreamId | None) -> StreamId:
        if cursor is not None:
            return cursor
        s = self._streams.get(name)
        return s.last if s else START

    def _read_now(self, positions: dict[str, StreamId], count: int) -> list[Entry | Gap]:
        out: list[Entry | Gap] = []
        for name, cursor in positions.items():
            s = self._streams.get(name)
            if s is None:
                continue
            _, entries = s.after(cursor, count)
            if not entries:
                continue
            if fell_behind(cursor, s.ids[0], s.trimmed):
                out.append(Gap(name, format_id(cursor), entries[0].id))
            out.extend(entries)
        return out

    async def _wait(self, block_ms: int | None, attempt: Callable[[], list]) -> list:
        """Run attempt() now and again after each publish until it returns something or
        block_ms passes (None: once; 0: until something arrives)."""
        loop = asyncio.get_running_loop()
        deadline = None if not block_ms else loop.time() + block_ms / 1000
        while True:
            arrived = self._arrived  # taken before attempt(): a publish after it sets this one
            got = attempt()
            if got or block_ms is None:
                return got
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return got
            try:
                async with asyncio.timeout(left):
                    await arrived.wait()
            except TimeoutError:
                return []
            self._check_open()

    async def last_id(self, stream: str) -> str:
        self._check_open()
        return format_id(self._resolve(stream, None))

    async def range(self, stream: str, start: str = "-", end: str = "+",
                    count: int | None = None) -> list[Entry]:
        self._check_open()
        lo, lo_excl = parse_bound(start, end=False)
        hi, hi_excl = parse_bound(end, end=True)
        s = self._streams.get(stream)
        if s is None:
            return []
        i = (bisect_right if lo_excl else bisect_left)(s.ids, lo)
        j = (bisect_left if hi_excl else bisect_right)(s.ids, hi)
        return s.entries[i:j] if count is None else s.entries[i:min(j, i + count)]

    async def latest(self, stream: str) -> Entry | None:
        self._check_open()
        s = self._streams.get(stream)
        return s.entries[-1] if s and s.entries else None

    # --- consumer groups --------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        self._check_open()
        start = parse_cursor(start_id)
        s = self._streams.setdefault(stream, _Stream())
        if group not in s.groups:
            s.groups[group] = _Group(s.last if start is None else start)

    def _group(self, stream: str, group: str) -> tuple[_Stream, _Group]:
        s = self._streams.get(stream)
        if s is None or group not in s.groups:
            raise NoSuchGroup(f"stream {stream!r} has no consumer group {group!r}: call ensure_group first")
        return s, s.groups[group]

    async def read_group(self, group: str, consumer: str, streams: list[str], block_ms: int | None = 1000,
                         count: int = 100) -> list[Entry]:
        self._check_open()
        for name in streams:
            self._group(name, group)
        return await self._wait(block_ms, lambda: self._deliver_new(group, consumer, streams, count))

    def _deliver_new(self, group: str, consumer: str, streams: list[str], count: int) -> list[Entry]:
        out: list[Entry] = []
        now = time.monotonic()
        for name in streams:
            s, g = self._group(name, group)
            ids, entries = s.after(g.last_delivered, count)
            for sid in ids:
                g.pel[sid] = _Pending(consumer, now)
            if ids:
                g.last_delivered = ids[-1]
            out.extend(entries)
        return out

    async def pending_for(self, stream: str, group: str, consumer: str, count: int = 100) -> list[Entry]:
        self._check_open()
        s, g = self._group(stream, group)
        return self._redeliver(s, g, lambda p: p.consumer == consumer, consumer, count)

    async def autoclaim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                        count: int = 100) -> list[Entry]:
        self._check_open()
        s, g = self._group(stream, group)
        idle_since = time.monotonic() - min_idle_ms / 1000
        return self._redeliver(s, g, lambda p: p.since <= idle_since, consumer, count)

    @staticmethod
    def _redeliver(s: _Stream, g: _Group, wanted: Callable[[_Pending], bool], consumer: str,
                   count: int) -> list[Entry]:
        """Deliver pending entries again (to `consumer`); drop those already trimmed, as Redis does."""
        out: list[Entry] = []
        now = time.monotonic()
        for sid, p in list(g.pel.items()):
            if len(out) == count:
                break
            if not wanted(p):
                continue
            entry = s.get(sid)
            if entry is None:
                del g.pel[sid]
                continue
            p.consumer, p.since, p.deliveries = consumer, now, p.deliveries + 1
            out.append(entry)
        return out

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        self._check_open()
        sids = [parse_id(i) for i in ids]
        s = self._streams.get(stream)
        g = s.groups.get(group) if s else None
        if g is None:
            return 0
        return sum(g.pel.pop(sid, None) is not None for sid in sids)

    # --- exactly-once state ----------------------------------------------------------------

    async def load_state(self, key: str) -> tuple[int, bytes | None]:
        self._check_open()
        return self._states.get(key, (0, None))

    async def commit(self, key: str, version: int, state: bytes, *, group: str,
                     acks: dict[str, Sequence[str]], items: Sequence[tuple[str, bytes]] = (),
                     maxlen: int | None = None) -> list[str]:
        self._check_open()
        check_payload(state)
        parsed = {stream: [(i, parse_id(i)) for i in ids] for stream, ids in acks.items()}
        current = self._states.get(key, (0, None))[0]
        if current != version:
            raise StateConflict(f"commit: state {key!r} is at version {current}, the committer "
                                f"expected {version}; reload the state and redo the work")
        ids = await self.publish_many(items, maxlen)  # checks every payload before writing any
        for stream, pairs in parsed.items():
            done = self._done.setdefault(done_key(key, stream), {})
            done.update(pairs)
            s = self._streams.get(stream)
            g = s.groups.get(group) if s else None
            if g is not None:
                for _, sid in pairs:
                    g.pel.pop(sid, None)
            oldest = s.ids[0] if s and s.ids else None
            while done and oldest is not None and next(iter(done.values())) < oldest:
                del done[next(iter(done))]  # trimmed from the stream: can never come back
        self._states[key] = (version + 1, bytes(state))
        return ids

    async def done(self, key: str, stream: str, ids: Sequence[str]) -> set[str]:
        self._check_open()
        done = self._done.get(done_key(key, stream), {})
        return {i for i in ids if i in done}

    # --- lifecycle --------------------------------------------------------------------------

    async def ping(self) -> bool:
        return not self._closed

    async def close(self) -> None:
        self._closed = True
        self._arrived.set()  # blocked readers wake and see the bus closed

    def _check_open(self) -> None:
        if self._closed:
            raise BusUnavailable("the in-process MemoryBus was closed; this component is shutting down "
                                 "or used the bus after close()")
