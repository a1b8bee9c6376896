"""The Bus: how ingest publishes and every consumer tails (see base.py for the contract)."""

from __future__ import annotations

from .base import (
    DEFAULT_MAXLEN, Bus, BusUnavailable, Entry, Gap, NoSuchGroup, StateConflict, StreamReader,
)
from .memory import MemoryBus
from .redis_streams import RedisStreamsBus


def make_bus(redis_url: str | None, *, default_maxlen: int = DEFAULT_MAXLEN) -> Bus:
    """A RedisStreamsBus for a URL (redis://host:port/db), the in-process MemoryBus for None."""
    if redis_url is None:
        return MemoryBus(default_maxlen)
    return RedisStreamsBus(redis_url, default_maxlen=default_maxlen)


__all__ = [
    "DEFAULT_MAXLEN", "Bus", "BusUnavailable", "Entry", "Gap", "MemoryBus", "NoSuchGroup",
    "RedisStreamsBus", "StateConflict", "StreamReader", "make_bus",
]
