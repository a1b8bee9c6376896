"""What a simulated venue's wire format implements; the shared server core does the rest.

A wire format is synchronous and does no I/O: it turns market events into channel frames,
client frames into replies and subscriptions, and REST requests into responses. Frames are
plain JSON-able objects until the core serialises them (once per channel frame, shared by
every subscriber), so fault switches can alter them first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple

import orjson

from ..market import BookDelta, Market, Trade

BOOK, TRADE = "book", "trade"


class Out(NamedTuple):
    """A frame for every subscriber of channel `key`; kind BOOK frames may be corrupted."""
    key: str
    msg: object
    kind: str


@dataclass(eq=False)
class Conn:
    """One client websocket as the wire format sees it."""
    id: int
    path: str
    query: dict[str, str]
    channels: set[str] = field(default_factory=set)  # channel keys this client receives
    form: str = ""  # how channel frames are wrapped for this client (binance: raw or combined)
    state: dict = field(default_factory=dict)  # the wire format's own per-connection notes


class Wire:
    venue: ClassVar[str]
    ws_paths: ClassVar[tuple[str, ...]]  # aiohttp route paths upgraded to websockets
    rest_paths: ClassVar[tuple[str, ...]] = ()
    heartbeat_s: ClassVar[float | None] = None  # idle time after which `heartbeat()` is sent

    def __init__(self, market: Market, symbols: list[str]):
        self.market = market
        self.natives = {s: market.book(self.venue, s).native for s in symbols}  # symbol -> native
        self.books = {market.book(self.venue, s).native: market.book(self.venue, s) for s in symbols}

    def open(self, conn: Conn) -> list[object]:
        """Frames sent when a client connects (subscriptions in the URL are set up here)."""
        return []

    def receive(self, conn: Conn, text: str) -> list[object]:
        """Replies to one client frame; may change `conn.channels`. A str reply is sent as
        that text (OKX answers "ping" with a bare "pong"); anything else as JSON."""
        raise NotImplementedError

    def publish(self, events: list[BookDelta | Trade]) -> list[Out]:
        """Channel frames for one market step's events of this venue."""
        raise NotImplementedError

    def tick(self, t: float) -> list[Out]:
        """Channel frames due at venue time t regardless of events (batched streams)."""
        return []

    def heartbeat(self) -> object | None:
        return None

    def rest(self, path: str, query: dict[str, str]) -> tuple[int, object]:
        return 404, {"error": f"{self.venue} simulator serves no REST path {path}"}

    def encode(self, form: str, key: str, msg: object) -> str:
        return orjson.dumps(msg).decode()

    def corrupt_level(self, msg: object, pick: int) -> object | None:
        """A copy of book frame `msg` with one level's size altered, or None if it has none.
        `pick` is a random non-negative integer choosing which level."""
        return None

    def corrupt_checksum(self, msg: object) -> object | None:
        """A copy of book frame `msg` with a wrong checksum, or None if it carries none."""
        return None


class Batch:
    """Book changes accumulated for one interval-batched channel until its next push: the
    ids of the first and last change and each changed level's final size."""

    __slots__ = ("first", "last", "bids", "asks")

    def __init__(self):
        self.first = self.last = 0
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def add(self, delta: BookDelta) -> None:
        if not self.first:
            self.first = delta.first_id
        self.last = delta.last_id
        for is_bid, price, size in delta.changes:
            (self.bids if is_bid else self.asks)[price] = size


def bump_size(size: str) -> str:
    """A different, still valid size string of the same format (the corruption a client
    cannot tell from the frame alone)."""
    return size[:-1] + str((int(size[-1]) + 1) % 10)
