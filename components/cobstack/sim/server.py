"""The shared simulated-venue server core: market clock, client registry, fan-out, faults.

One aiohttp server per venue on loopback (port 0 = a free port), all fed by ONE market. The
venue's wire format (sim.venues) decides paths, frames and replies; this module only moves
text: it serialises each channel frame once, applies the venue's fault switches and queues
the text to every subscriber. A client that cannot keep up is disconnected rather than
allowed to grow memory without bound, as real venues do.

Control endpoint on every sim server:
  GET  /_sim/faults   current switches, fault counters and client count
  POST /_sim/faults   {"drop_frames": 0.01, "malformed": 0.0, "corrupt_level": 0.0,
                       "corrupt_checksum": 0.0, "rate_limit": 0.0, "retry_after": 1,
                       "geo_block": false, "stall": 2.0, "disconnect": true}  (any subset)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import orjson
from aiohttp import WSCloseCode, WSMsgType, web

from .faults import Faults
from .market import Market
from .venues import WIRES
from .venues.wire import BOOK, Conn, Out, Wire

log = logging.getLogger("cobstack.sim")

MAX_QUEUED = 50_000  # frames queued to one client before it is dropped as too slow


class _Client:
    def __init__(self, conn: Conn, ws: web.WebSocketResponse, now: float):
        self.conn, self.ws = conn, ws
        self.queue: deque[str] = deque()
        self.ready = asyncio.Event()
        self.last_sent = now

    def send(self, text: str, now: float) -> bool:
        """Queue a frame; False when the client is too far behind to keep."""
        if len(self.queue) >= MAX_QUEUED:
            return False
        self.queue.append(text)
        self.last_sent = now
        self.ready.set()
        return True

    async def write_loop(self) -> None:
        while not self.ws.closed:
            await self.ready.wait()
            self.ready.clear()
            try:
                while self.queue and not self.ws.closed:
                    await self.ws.send_str(self.queue.popleft())
            except ConnectionError:  # the client went away; its handler cleans up
                return


class VenueServer:
    """One simulated venue: HTTP + websocket server around a wire format."""

    def __init__(self, wire: Wire, faults: Faults):
        self.wire, self.faults = wire, faults
        self.venue = wire.venue
        self.clients: set[_Client] = set()
        self.subs: dict[str, set[_Client]] = {}
        self.stats: Counter = Counter()
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task] = set()
        self.runner: web.AppRunner | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, host: str, port: int = 0) -> tuple[str, str]:
        app = web.Application(middlewares=[self._refusals])
        app.router.add_get("/_sim/faults", self._get_faults)
        app.router.add_post("/_sim/faults", self._post_faults)
        for path in self.wire.rest_paths:
            app.router.add_get(path, self._rest)
        for path in self.wire.ws_paths:
            app.router.add_get(path, self._ws)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port)
        try:
            await site.start()
        except OSError as e:
            await self.runner.cleanup()
            raise OSError(f"simulated {self.venue}: cannot listen on {host}:{port}: {e}") from e
        bound = self.runner.addresses[0][1]
        return f"ws://{host}:{bound}", f"http://{host}:{bound}"

    async def stop(self) -> None:
        await self.close_all(WSCloseCode.GOING_AWAY, b"simulator stopping")
        if self.runner:
            await self.runner.cleanup()

    async def close_all(self, code: int, reason: bytes) -> None:
        await asyncio.gather(*(c.ws.close(code=code, message=reason) for c in list(self.clients)),
                             return_exceptions=True)

    # -- the market step --------------------------------------------------------------------

    def step(self, events: list, t: float, now: float) -> None:
        """Publish one market step's events (t: venue time; now: loop time)."""
        if self.faults.take_disconnect():
            self._spawn(self.close_all(WSCloseCode.GOING_AWAY, b"disconnect fault"))
        outs = self.wire.publish(events)
        outs += self.wire.tick(t)
        for out in outs:
            self._fan_out(out, now)
        if self.wire.heartbeat_s:
            stale = [c for c in self.clients if now - c.last_sent >= self.wire.heartbeat_s]
            if stale and not self.faults.stalled():
                text = orjson.dumps(self.wire.heartbeat()).decode()
                for c in stale:
                    self._send(c, text, now)

    def _fan_out(self, out: Out, now: float) -> None:
        clients = self.subs.get(out.key)
        if not clients or self.faults.stalled():
            return
        msg, faults = out.msg, self.faults
        if out.kind == BOOK:
            if faults.draw("corrupt_level"):
                msg = self.wire.corrupt_level(msg, faults.pick()) or msg
            if faults.draw("corrupt_checksum"):
                msg = self.wire.corrupt_checksum(msg) or msg
        if faults.draw("drop_frames"):
            return
        malformed = faults.draw("malformed")
        texts: dict[str, str] = {}
        for c in list(clients):
            text = texts.get(c.conn.form)
            if text is None:
                text = texts[c.conn.form] = self.wire.encode(c.conn.form, out.key, msg)
                if malformed:
                    text = texts[c.conn.form] = text[: len(text) // 2]
            self._send(c, text, now)
        self.stats["frames"] += 1

    def _send(self, client: _Client, text: str, now: float) -> None:
        if not client.send(text, now):
            self.stats["slow_clients_dropped"] += 1
            log.warning("simulated %s: client %d fell %d frames behind; disconnecting it",
                        self.venue, client.conn.id, MAX_QUEUED)
            self._forget(client)
            self._spawn(client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"client too slow"))

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- clients ----------------------------------------------------------------------------

    def _index(self, client: _Client, before: set[str]) -> None:
        after = client.conn.channels
        for key in before - after:
            self.subs.get(key, set()).discard(client)
        for key in after - before:
            self.subs.setdefault(key, set()).add(client)

    def _forget(self, client: _Client) -> None:
        self.clients.discard(client)
        for key in client.conn.channels:
            self.subs.get(key, set()).discard(client)

    def _reply(self, client: _Client, msgs: list[object], now: float) -> None:
        if msgs and self.faults.stalled():
            return
        for msg in msgs:
            self._send(client, msg if isinstance(msg, str) else orjson.dumps(msg).decode(), now)

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 20)
        await ws.prepare(request)
        loop = asyncio.get_running_loop()
        client = _Client(Conn(next(self._ids), request.path, dict(request.query)), ws, loop.time())
        self.clients.add(client)
        writer = asyncio.ensure_future(client.write_loop())
        try:
            self._reply(client, self.wire.open(client.conn), loop.time())
            self._index(client, set())
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                text = msg.data if msg.type == WSMsgType.TEXT else msg.data.decode("utf-8", "replace")
                before = set(client.conn.channels)
                replies = self.wire.receive(client.conn, text)
                self._index(client, before)
                self._reply(client, replies, loop.time())
        finally:
            self._forget(client)
            writer.cancel()
        return ws

    # -- HTTP -------------------------------------------------------------------------------

    @web.middleware
    async def _refusals(self, request: web.Request, handler):
        if not request.path.startswith("/_sim/"):
            handshake = request.headers.get("Upgrade", "").lower() == "websocket"
            refusal = self.faults.rest_refusal(handshake)
            if refusal:
                status, headers, body = refusal
                return web.json_response(body, status=status, headers=headers)
        return await handler(request)

    async def _rest(self, request: web.Request) -> web.Response:
        status, body = self.wire.rest(request.path, dict(request.query))
        return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")

    def _control_state(self) -> dict:
        return {"venue": self.venue, "faults": self.faults.as_dict(), "clients": len(self.clients),
                "stats": dict(self.stats)}

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self._control_state())

    async def _post_faults(self, request: web.Request) -> web.Response:
        try:
            changes = orjson.loads(await request.read())
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object of fault switches")
            self.faults.update(changes)
        except (ValueError, orjson.JSONDecodeError) as e:
            return web.json_response({"error": f"simulated {self.venue}: bad fault request: {e}"}, status=400)
        log.info("simulated %s: faults now %s", self.venue, self.faults.as_dict())
        return web.json_response(self._control_state())


@dataclass
class SimHandle:
    """Running simulated venues: `endpoints[venue] == (ws_url, rest_url)` base URLs."""
    market: Market
    servers: dict[str, VenueServer]
    endpoints: dict[str, tuple[str, str]] = field(default_factory=dict)
    clock: asyncio.Task | None = None

    def faults(self, venue: str) -> Faults:
        return self.servers[venue].faults

    async def stop(self) -> None:
        if self.clock:
            self.clock.cancel()
            await asyncio.gather(self.clock, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self.servers.values()))


async def _run_clock(market: Market, servers: list[VenueServer], speed: float) -> None:
    """Step the market in real time at `speed`; if the host falls more than a second behind,
    skip ahead instead of bursting the backlog (a venue would not replay it either)."""
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        events = market.step()
        now = loop.time()
        for server in servers:
            server.step(events[server.venue], market.t, now)
        due += market.dt / speed
        delay = due - loop.time()
        if delay < -1.0:
            due, delay = loop.time(), 0.0
        await asyncio.sleep(max(0.0, delay))


def _clock_died(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception():
        log.error("simulated market clock failed; simulated venues stopped publishing",
                  exc_info=task.exception())


async def start_sim(venues: list[str], symbols: list[str], seed: int = 7, speed: float = 1.0,
                    host: str = "127.0.0.1", rate: float = 1.0, **market_options) -> SimHandle:
    """Start one server per venue sharing one market; market_options go to `Market`."""
    unknown = [v for v in venues if v not in WIRES]
    if unknown:
        raise ValueError(f"no simulated venue for {unknown}; simulated: {', '.join(sorted(WIRES))}")
    if speed <= 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    market = Market(venues, symbols, seed, rate=rate, t0=time.time(), **market_options)
    handle = SimHandle(market, {})
    try:
        for venue in venues:
            server = VenueServer(WIRES[venue](market, symbols), Faults(seed, venue))
            handle.servers[venue] = server
            handle.endpoints[venue] = await server.start(host)
    except BaseException:
        await handle.stop()
        raise
    handle.clock = asyncio.ensure_future(_run_clock(market, list(handle.servers.values()), speed))
    handle.clock.add_done_callback(_clock_died)
    log.info("simulated venues up: %s", handle.endpoints)
    return handle
