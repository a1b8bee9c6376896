"""Bus on Redis Streams (redis-py asyncio), for a cluster deployment.

Costs, per call: publish_many is ONE pipelined round trip of XADD ... MAXLEN ~ n; read is ONE
round trip (XREAD plus a tiny server-side Lua probe per stream, pipelined behind it) however
many entries it returns; waits longer than BLOCK_SLICE_MS loop so socket timeouts stay short.

Faults: redis-py connection and timeout errors become BusUnavailable naming the URL (password
redacted). Pooled connections are re-made on the next call, and a call that meets a dead
pooled connection retries once on a fresh one, so the same object works again as soon as
Redis is back; no process restart.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .base import (
    BLOCK_SLICE_MS, DEFAULT_MAXLEN, START, BusUnavailable, Entry, Gap, NoSuchGroup, StateConflict,
    StreamId, check_maxlen, check_payload, done_key, fell_behind, format_id, parse_bound,
    parse_cursor, parse_id,
)

FIELD = b"d"  # every entry carries its payload in this one field

# Per stream: [oldest retained id, last generated id, number of entries ever deleted], or nil.
# Runs server-side so only these three values cross the wire, not XINFO's first/last entries.
# Redis 7.0 does not move max-deleted-entry-id on MAXLEN trims, hence added - length.
_STREAM_STATE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local f = {}
for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
return {f['recorded-first-entry-id'], f['last-generated-id'], f['entries-added'] - f['length']}
"""

# Bus.commit in one atomic script. KEYS: the state hash, then per input stream the stream and
# its done set (a sorted set scored by the id's milliseconds), then the output streams.
# ARGV: expected version, state, group, input count, maxlen, then per input its id count and
# ids, then one payload per output stream.
_COMMIT = """
local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if version ~= tonumber(ARGV[1]) then
  return redis.error_reply('STALE state ' .. KEYS[1] .. ' is at version ' .. version ..
                           ', the committer expected ' .. ARGV[1])
end
local n = tonumber(ARGV[4])
local a = 6
for i = 1, n do
  local stream, done = KEYS[2 * i], KEYS[2 * i + 1]
  local c = tonumber(ARGV[a])
  a = a + 1
  if c > 0 then
    local ids, scored = {}, {}
    for j = 1, c do
      local id = ARGV[a]
      a = a + 1
      ids[j] = id
      scored[2 * j - 1] = string.match(id, '^%d+')
      scored[2 * j] = id
    end
    redis.call('ZADD', done, unpack(scored))
    redis.call('XACK', stream, ARGV[3], unpack(ids))
    local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)[1]
    if first then
      redis.call('ZREMRANGEBYSCORE', done, '-inf', '(' .. string.match(first[1], '^%d+'))
    end
  end
end
local out = {}
for k = 2 * n + 2, #KEYS do
  out[#out + 1] = redis.call('XADD', KEYS[k], 'MAXLEN', '~', ARGV[5], '*', 'd', ARGV[a])
  a = a + 1
end
redis.call('HSET', KEYS[1], 'version', version + 1, 'state', ARGV[2])
return out
"""

_SECRET = re.compile(r"//([^@/]*)@")


def redact(url: str) -> str:
    """The URL with any user:password replaced, fit for logs and error messages."""
    return _SECRET.sub("//***@", url)


def _reason(exc: Exception) -> str:
    text = str(exc)
    if isinstance(exc, RedisTimeoutError):
        return f"no answer in time: {text}"
    if "refused" in text.lower() or "Error 111" in text:
        return "connection refused"
    return text or type(exc).__name__


class RedisStreamsBus:
    def __init__(self, url: str, *, default_maxlen: int = DEFAULT_MAXLEN, socket_timeout: float = 2.0,
                 connect_timeout: float = 1.0) -> None:
        if socket_timeout * 1000 <= BLOCK_SLICE_MS:
            raise ValueError(f"socket_timeout {socket_timeout}s must exceed one blocking slice "
                             f"({BLOCK_SLICE_MS} ms) or every blocking read would time out")
        self.url = redact(url)
        self.default_maxlen = check_maxlen(default_maxlen)
        self._closed = False
        self._redis = Redis.from_url(
            url,
            socket_timeout=socket_timeout,  # a silent (partitioned) server fails a call within this
            socket_connect_timeout=connect_timeout,
            socket_keepalive=True,
            health_check_interval=10,  # PING connections idle this long before reuse
            # one immediate retry on a fresh connection: after a Redis restart the pooled
            # sockets are dead; while Redis is down the retry fails fast (refused)
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._commit = self._redis.register_script(_COMMIT)  # EVALSHA, reloaded after a restart

    @contextmanager
    def _guard(self, what: str) -> Iterator[None]:
        if self._closed:
            raise BusUnavailable(f"bus for Redis at {self.url} was closed; {what} after close()")
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise BusUnavailable(
                f"Redis at {self.url} is unreachable ({_reason(exc)}) during {what}; callers keep "
                "their state and retry; check the Redis Service/URL and that redis-server is running"
            ) from exc
        except ResponseError as exc:
            if str(exc).startswith("STALE"):
                raise StateConflict(f"{what} at {self.url}: {exc}; reload the state and redo the work") from exc
            if str(exc).startswith("NOGROUP"):
                raise NoSuchGroup(f"{what} at {self.url}: {exc}; call ensure_group first") from exc
            raise

    # --- writing ----------------------------------------------------------------------------

    async def publish(self, stream: str, data: bytes, maxlen: int | None = None) -> str:
        return (await self.publish_many([(stream, data)], maxlen))[0]

    async def publish_many(self, items: Sequence[tuple[str, bytes]], maxlen: int | None = None) -> list[str]:
        keep = self.default_maxlen if maxlen is None else check_maxlen(maxlen)
        for _, data in items:
            check_payload(data)
        if not items:
            return []
        with self._guard("XADD"):
            pipe = self._redis.pipeline(transaction=False)
            for stream, data in items:
                pipe.xadd(stream, {FIELD: data}, maxlen=keep, approximate=True)
            return [i.decode() for i in await pipe.execute()]

    # --- tailing ----------------------------------------------------------------------------

    async def read(self, cursors: dict[str, str], block_ms: int | None = 1000,
                   count: int = 100) -> list[Entry | Gap]:
        parsed = {name: parse_cursor(c) for name, c in cursors.items()}
        with self._guard("XREAD"):
            positions = {name: c for name, c in parsed.items() if c is not None}
            unresolved = [name for name, c in parsed.items() if c is None]
            if unresolved:  # '$' is pinned once so that waiting in slices loses nothing
                for name, state in zip(unresolved, await self._states(unresolved)):
                    positions[name] = parse_id(state[1].decode()) if state else START
            ids = {name: format_id(c) for name, c in positions.items()}
            probed = [name for name, c in positions.items() if c != START]

            async def attempt(block: int | None) -> list[Entry | Gap]:
                pipe = self._redis.pipeline(transaction=False)
                pipe.xread(ids, count=count, block=block)
                for name in probed:  # after XREAD: retention seen at least as late as the read
                    pipe.eval(_STREAM_STATE, 1, name)
                reply, *states = await pipe.execute()
                return self._with_gaps(reply, positions, dict(zip(probed, states)))

            return await _sliced(block_ms, attempt)

    def _with_gaps(self, reply: list, positions: dict[str, StreamId], states: dict[str, list | None]
                   ) -> list[Entry | Gap]:
        """Entries per stream, a Gap first where the probe shows the cursor before the oldest
        retained entry. The probe runs just after the read, so it never misses a trim; it can
        over-report only if the reader's own position is trimmed in that instant."""
        out: list[Entry | Gap] = []
        for raw_name, rows in reply:
            name = raw_name.decode()
            entries = [_entry(name, rid, fields) for rid, fields in rows]
            state = states.get(name)
            if entries and state and fell_behind(positions[name], parse_id(state[0].decode()), state[2] > 0):
                out.append(Gap(name, format_id(positions[name]), entries[0].id))
            out.extend(entries)
        return out

    async def _states(self, streams: list[str]) -> list[list | None]:
        pipe = self._redis.pipeline(transaction=False)
        for name in streams:
            pipe.eval(_STREAM_STATE, 1, name)
        return await pipe.execute()

    async def last_id(self, stream: str) -> str:
        with self._guard("XINFO STREAM"):
            (state,) = await self._states([stream])
        return state[1].decode() if state else format_id(START)

    async def range(self, stream: str, start: str = "-", end: str = "+",
                    count: int | None = None) -> list[Entry]:
        parse_bound(start, end=False)  # bad bounds: the same ValueError as MemoryBus
        parse_bound(end, end=True)
        with self._guard("XRANGE"):
            rows = await self._redis.xrange(stream, min=start, max=end, count=count)
        return [_entry(stream, rid, fields) for rid, fields in rows]

    async def latest(self, stream: str) -> Entry | None:
        with self._guard("XREVRANGE"):
            rows = await self._redis.xrevrange(stream, "+", "-", count=1)
        return _entry(stream, *rows[0]) if rows else None

    # --- consumer groups --------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str, start_id: str = "0") -> None:
        parse_cursor(start_id)
        with self._guard("XGROUP CREATE"):
            try:
                await self._redis.xgroup_create(stream, group, id=start_id, mkstream=True)
            except ResponseError as exc:
                if not str(exc).startswith("BUSYGROUP"):
                    raise

    async def read_group(self, group: str, consumer: str, streams: list[str], block_ms: int | None = 1000,
                         count: int = 100) -> list[Entry]:
        with self._guard("XREADGROUP"):
            async def attempt(block: int | None) -> list[Entry]:
                reply = await self._redis.xreadgroup(group, consumer, {s: ">" for s in streams},
                                                     count=count, block=block)
                return [_entry(raw.decode(), rid, f) for raw, rows in reply or [] for rid, f in rows]

            return await _sliced(block_ms, attempt)

    async def pending_for(self, stream: str, group: str, consumer: str, count: int = 100) -> list[Entry]:
        with self._guard("XREADGROUP (pending)"):
            reply = await self._redis.xreadgroup(group, consumer, {stream: "0"}, count=count)
            rows = reply[0][1] if reply else []
            trimmed = [rid for rid, fields in rows if not fields]
            if trimmed:  # gone from the stream: nothing to process, drop them as XAUTOCLAIM does
                await self._redis.xack(stream, group, *trimmed)
        return [_entry(stream, rid, fields) for rid, fields in rows if fields]

    async def ack(self, stream: str, group: str, ids: Sequence[str]) -> int:
        for i in ids:
            parse_id(i)
        if not ids:
            return 0
        with self._guard("XACK"):
            return await self._redis.xack(stream, group, *ids)

    async def autoclaim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                        count: int = 100) -> list[Entry]:
        with self._guard("XAUTOCLAIM"):
            _, claimed, *_ = await self._redis.xautoclaim(stream, group, consumer, min_idle_ms, "0-0",
                                                          count=count)
        return [_entry(stream, rid, fields) for rid, fields in claimed]

    # --- exactly-once state ----------------------------------------------------------------

    async def load_state(self, key: str) -> tuple[int, bytes | None]:
        with self._guard("HMGET (state)"):
            version, state = await self._redis.hmget(key, ["version", "state"])
        return (int(version), state) if version is not None else (0, None)

    async def commit(self, key: str, version: int, state: bytes, *, group: str,
                     acks: dict[str, Sequence[str]], items: Sequence[tuple[str, bytes]] = (),
                     maxlen: int | None = None) -> list[str]:
        keep = self.default_maxlen if maxlen is None else check_maxlen(maxlen)
        check_payload(state)
        for _, data in items:
            check_payload(data)
        keys: list[str] = [key]
        args: list = [version, bytes(state), group, len(acks), keep]
        for stream, ids in acks.items():
            for i in ids:
                parse_id(i)
            keys += [stream, done_key(key, stream)]
            args += [len(ids), *ids]
        keys += [stream for stream, _ in items]
        args += [bytes(data) for _, data in items]
        with self._guard("commit (EVALSHA)"):
            return [i.decode() for i in await self._commit(keys=keys, args=args)]

    async def done(self, key: str, stream: str, ids: Sequence[str]) -> set[str]:
        if not ids:
            return set()
        with self._guard("ZMSCORE (done)"):
            scores = await self._redis.zmscore(done_key(key, stream), list(ids))
        return {i for i, score in zip(ids, scores) if score is not None}

    # --- lifecycle --------------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            with self._guard("PING"):
                return bool(await self._redis.ping())
        except BusUnavailable:
            return False

    async def close(self) -> None:
        self._closed = True
        await self._redis.aclose()


def _entry(stream: str, rid: bytes, fields: dict[bytes, bytes]) -> Entry:
    try:
        return Entry(stream, rid.decode(), fields[FIELD])
    except KeyError:
        raise ValueError(f"stream {stream!r} entry {rid.decode()} has no {FIELD.decode()!r} field: "
                         "it was not written through the cobstack Bus; give foreign data its own stream") from None


async def _sliced(block_ms: int | None, attempt: Callable[[int | None], Awaitable[list]]) -> list:
    """attempt(block) with waits of at most BLOCK_SLICE_MS each until it returns something or
    block_ms passes (None: no wait; 0: until something arrives)."""
    if block_ms is None:
        return await attempt(None)
    deadline = None if block_ms == 0 else time.monotonic() + block_ms / 1000
    while True:
        left = BLOCK_SLICE_MS if deadline is None else math.ceil((deadline - time.monotonic()) * 1000)
        if left <= 0:
            return []
        got = await attempt(min(left, BLOCK_SLICE_MS))
        if got:
            return got
