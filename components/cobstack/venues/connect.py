"""The async shell around one pure adapter: one websocket per venue, REST within limits.

Everything venue-specific lives in the adapter; this module only moves bytes and time:
it connects, feeds frames to `adapter.on_frame`, executes the adapter's effects (frames to
send, REST snapshots to fetch under the venue's request budget), starts the adapter's due
reconciliations with what that budget spares, reconnects with jittered exponential backoff,
and keeps a human-readable health record.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import aiohttp

from .base import Adapter

log = logging.getLogger("cobstack.connect")

# Reconciliations only spend the REST budget above this fraction of it: the rest stays for
# resync snapshots, which come first (a resyncing book is unusable; a reconciliation only
# double-checks a live one).
RECONCILE_RESERVE = 0.5

# Venue HTTP answers that need a person to know, not just a retry.
HTTP_MEANING = {
    429: ("rate_limited", "rate limit hit (HTTP 429); backing off as the venue asks"),
    418: ("banned", "IP temporarily banned for ignoring rate limits (HTTP 418); backing off"),
    451: ("geo_blocked", "unavailable from this location (HTTP 451, geo-block); "
                         "use another venue or run ingest where this venue serves you"),
    403: ("forbidden", "access forbidden (HTTP 403; often a regional block or WAF)"),
}


@dataclass
class VenueHealth:
    venue: str
    state: str = "connecting"  # connecting | live | backoff | rate_limited | banned | geo_blocked | stopped
    message: str = ""
    connects: int = 0
    last_msg_ts: float = 0.0  # wall clock of the last frame received
    lag_ms: float = 0.0  # receive time minus venue event time of the last book change
    rest_requests: int = 0
    errors: dict = field(default_factory=dict)

    def set(self, state: str, message: str = "") -> None:
        if (state, message) != (self.state, self.message):
            level = logging.INFO if state in ("live", "connecting") else logging.WARNING
            log.log(level, "%s: %s%s", self.venue, state, f" - {message}" if message else "")
        self.state, self.message = state, message


class Backoff:
    """Full-jitter exponential backoff (AWS architecture blog's recommendation)."""

    def __init__(self, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None):
        self.base, self.cap, self.attempt = base, cap, 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        delay = self.rng.uniform(0, min(self.cap, self.base * 2 ** self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


class RestBudget:
    """Token bucket in the venue's request-weight units, refilled per minute as documented."""

    def __init__(self, weight_per_minute: float, clock: Callable[[], float] = time.monotonic):
        self.capacity = weight_per_minute
        self.tokens = weight_per_minute
        self.rate = weight_per_minute / 60.0
        self.clock = clock
        self.stamp = clock()
        self.blocked_until = 0.0

    def _refill(self) -> float:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        return now

    def delay_for(self, weight: float) -> float:
        """Seconds to wait before spending `weight`; spends it when 0 is returned."""
        now = self._refill()
        if now < self.blocked_until:
            return self.blocked_until - now
        if self.tokens >= weight:
            self.tokens -= weight
            return 0.0
        return (weight - self.tokens) / self.rate

    def spare(self, weight: float, reserve: float) -> int:
        """How many requests of `weight` fit now without taking the bucket below `reserve`
        (0 while blocked). Spends nothing."""
        now = self._refill()
        if now < self.blocked_until or weight <= 0:
            return 0
        return max(0, int((self.tokens - reserve) // weight))

    def spend(self, weight: float) -> None:
        self._refill()
        self.tokens -= weight

    def block(self, seconds: float) -> None:
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)


def due_reconciliations(adapter: Adapter, budget: RestBudget, now: float) -> list[tuple[str, str]]:
    """(url, key) of the reconciliation fetches to start now: those the adapter has due, as
    many as the budget affords above its reserve, each paid for here. What the budget cannot
    afford stays due in the adapter, for the next call."""
    weight = adapter.snapshot_weight
    n = budget.spare(weight, budget.capacity * RECONCILE_RESERVE)
    if not n:
        return []
    fetches = adapter.reconcile_requests(now, n)
    for _ in fetches:
        budget.spend(weight)
    return [(url, key) for _, url, key in fetches]


class VenueConnection:
    """Runs one adapter against its venue until stopped. `on_frame_done` is called after
    every frame with the receive timestamp so ingest can coalesce and publish."""

    def __init__(self, adapter: Adapter, on_frame_done: Callable[[Adapter, float], None],
                 heartbeat_s: float = 15.0, stall_s: float = 30.0,
                 tap: Callable[[str, str, str], None] | None = None, reconcile_tick_s: float = 1.0):
        """tap(kind, url, data): sees all traffic in capture terms (ws_open, ws_send,
        ws_recv, http) - `cobstack record` writes it to a capture file.
        reconcile_tick_s: how often the adapter is asked for due reconciliations."""
        self.adapter = adapter
        self.tap = tap
        self.on_frame_done = on_frame_done
        self.heartbeat_s = heartbeat_s
        self.reconcile_tick_s = reconcile_tick_s
        self.stall_s = stall_s  # no frame for this long -> reconnect (a silently stalled feed)
        self.health = VenueHealth(adapter.venue)
        self.budget = RestBudget(adapter.rest_weight_per_minute)
        self.backoff = Backoff()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ws_url = ""
        self._rest_tasks: set[asyncio.Task] = set()
        self._stopped = asyncio.Event()

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=15, sock_connect=5)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            self.session = session
            while not self._stopped.is_set():
                try:
                    await self._session_once(session)
                    reason = "connection closed by the venue"
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                    reason = f"{type(e).__name__}: {e}"
                except aiohttp.WSServerHandshakeError as e:  # pragma: no cover - subclass of ClientError
                    reason = f"handshake failed: {e.status}"
                if self._stopped.is_set():
                    break
                for native in self.adapter.books:  # nothing from a dead connection is trusted
                    self.adapter.state[native] = "syncing"
                    self.adapter.dirty.add(native)
                self.on_frame_done(self.adapter, time.time())
                delay = self.backoff.next()
                self.health.set("backoff", f"{reason}; reconnecting in {delay:.1f}s")
                try:
                    await asyncio.wait_for(self._stopped.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        for t in list(self._rest_tasks):
            t.cancel()
        self.health.set("stopped")

    async def stop(self) -> None:
        self._stopped.set()
        if self._ws is not None:
            await self._ws.close()

    async def _session_once(self, session: aiohttp.ClientSession) -> None:
        adapter = self.adapter
        url = self._ws_url = adapter.ws_url()
        self.health.set("connecting", url)
        async with session.ws_connect(url, heartbeat=self.heartbeat_s, max_msg_size=0,
                                      autoping=True) as ws:
            self._ws = ws
            self.health.connects += 1
            if self.tap:
                self.tap("ws_open", url, "")
            adapter.start()
            await self._drain(ws)
            pinger = asyncio.create_task(self._app_pings(ws)) if adapter.app_ping else None
            reconciler = asyncio.create_task(self._reconciliations())
            try:
                await self._receive(ws, url)
            finally:
                reconciler.cancel()
                if pinger is not None:
                    pinger.cancel()

    async def _app_pings(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The venue's application-level ping every heartbeat interval, until the socket closes."""
        ping = self.adapter.app_ping
        while not ws.closed:
            await asyncio.sleep(self.heartbeat_s)
            if self.tap:
                self.tap("ws_send", self._ws_url, ping)
            try:
                await ws.send_str(ping)
            except (ConnectionError, aiohttp.ClientError):
                return  # the receive loop sees the closed socket and reconnects

    async def _reconciliations(self) -> None:
        """While connected, start the adapter's due reconciliations every tick."""
        while True:
            await asyncio.sleep(self.reconcile_tick_s)
            for url, key in due_reconciliations(self.adapter, self.budget, time.time()):
                self._spawn_fetch(url, key, paid=True)

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse, url: str) -> None:
        adapter = self.adapter
        first = True
        while True:
            try:
                msg = await ws.receive(timeout=self.stall_s)
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(f"no frame for {self.stall_s:.0f}s (feed stalled)") from None
            if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                now = time.time()
                self.health.last_msg_ts = now
                if self.tap:
                    self.tap("ws_recv", url, msg.data if isinstance(msg.data, str) else msg.data.decode())
                adapter.on_frame(msg.data, now)
                if adapter.outbox:
                    await self._drain(ws)
                self.on_frame_done(adapter, now)
                if first:
                    first = False
                    self.backoff.reset()
                    self.health.set("live", url)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                              aiohttp.WSMsgType.CLOSED):
                return
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise aiohttp.ClientError(f"websocket error: {ws.exception()}")

    async def _drain(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        outbox, self.adapter.outbox = self.adapter.outbox, []
        for effect in outbox:
            if effect[0] == "ws":
                if self.tap:
                    self.tap("ws_send", self._ws_url, effect[1])
                await ws.send_str(effect[1])
            elif effect[0] == "http":
                self._spawn_fetch(effect[1], effect[2] if len(effect) > 2 else None)

    def _spawn_fetch(self, url: str, key: str | None, paid: bool = False) -> None:
        task = asyncio.create_task(self._fetch(url, key, paid))
        self._rest_tasks.add(task)
        task.add_done_callback(self._rest_tasks.discard)

    async def _fetch(self, url: str, key: str | None, paid: bool = False) -> None:
        """GET a REST snapshot within the venue's budget; retry politely on errors.
        paid: a reconciliation, already paid for and tried once: if it fails, the adapter
        gives it up and asks again at its next interval."""
        adapter, backoff = self.adapter, Backoff(base=1.0, cap=60.0)
        while not self._stopped.is_set():
            if not paid:
                delay = self.budget.delay_for(adapter.snapshot_weight)
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
            self.health.rest_requests += 1
            try:
                async with self.session.get(url) as resp:
                    body = await resp.text()
                    if resp.status == 200:
                        if self.tap:
                            self.tap("http", url, body)
                        if self.health.state in ("rate_limited", "banned", "geo_blocked", "forbidden", "rest_error"):
                            self.health.set("live", f"REST recovered: {url}")
                        adapter.on_rest(url, body, time.time(), key)
                        if adapter.outbox and self._ws is not None and not self._ws.closed:
                            await self._drain(self._ws)
                        self.on_frame_done(adapter, time.time())
                        return
                    state, meaning = HTTP_MEANING.get(resp.status, ("rest_error", f"HTTP {resp.status}"))
                    retry_after = float(resp.headers.get("Retry-After", 0) or 0)
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                state, meaning, retry_after = "rest_error", f"{type(e).__name__}: {e}", 0.0
            self.health.errors[state] = self.health.errors.get(state, 0) + 1
            wait = max(retry_after, backoff.next())
            self.budget.block(wait)
            if paid:  # the books are as good as before: count and log it, leave the state alone
                log.warning("%s: reconciliation %s failed: %s; pausing REST %.1fs, trying again "
                            "at the next interval", adapter.venue, url, meaning, wait)
                return
            self.health.set(state, f"{url}: {meaning}; retrying in {wait:.1f}s")
