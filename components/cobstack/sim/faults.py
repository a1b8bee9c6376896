"""Fault switches of one simulated venue, flipped at runtime by tests or over HTTP.

Pure state plus a seeded RNG: the server core asks `draw(name)` for every frame that could
be affected, in the order frames go out, so the same seed and the same traffic give the
same faults. Every fault that fires is counted in `counts`.
"""

from __future__ import annotations

import random
import time
import zlib
from collections import Counter
from typing import Callable

# Probabilities, per frame (or per REST request for rate_limit).
RATES = {
    "drop_frames": "a channel frame is never sent (clients see a gap)",
    "malformed": "a channel frame is cut in half (invalid JSON)",
    "corrupt_level": "one level's size in a book frame is altered",
    "corrupt_checksum": "a book frame carries a wrong checksum (venues that send one)",
    "rate_limit": "a REST request is refused with 429 and Retry-After",
}


class Faults:
    def __init__(self, seed: int, venue: str, clock: Callable[[], float] = time.monotonic):
        self.venue = venue
        self.rng = random.Random(seed * 1_000_003 + zlib.crc32(venue.encode()))
        self.clock = clock
        self.rates = dict.fromkeys(RATES, 0.0)
        self.geo_block = False  # every request (REST and websocket handshake) gets 451
        self.retry_after = 1  # seconds, sent with 429
        self.stall_until = 0.0  # clock() time until which nothing is sent
        self._disconnect = False
        self.counts: Counter = Counter()

    def update(self, changes: dict) -> None:
        """Apply switch changes, all or nothing. Keys: the RATES names (0..1), geo_block
        (bool), retry_after (s), stall (s from now), disconnect (true: close every client)."""
        known = {*RATES, "geo_block", "retry_after", "stall", "disconnect"}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ValueError(f"unknown fault switch(es) {unknown}; known: {', '.join(sorted(known))}")
        for name in RATES.keys() & changes.keys():
            p = changes[name]
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        for name in ("retry_after", "stall"):
            v = changes.get(name, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"{name} must be a number of seconds >= 0, got {v!r}")
        for name in ("geo_block", "disconnect"):
            if not isinstance(changes.get(name, False), bool):
                raise ValueError(f"{name} must be true or false, got {changes[name]!r}")
        for name in RATES.keys() & changes.keys():
            self.rates[name] = float(changes[name])
        self.geo_block = changes.get("geo_block", self.geo_block)
        self.retry_after = int(changes.get("retry_after", self.retry_after))
        if "stall" in changes:
            self.stall(changes["stall"])
        if changes.get("disconnect"):
            self._disconnect = True

    def draw(self, name: str) -> bool:
        """Whether fault `name` hits this frame; counted when it does."""
        p = self.rates[name]
        if p and self.rng.random() < p:
            self.counts[name] += 1
            return True
        return False

    def pick(self) -> int:
        """A random non-negative integer (which level to corrupt)."""
        return self.rng.getrandbits(31)

    def stall(self, seconds: float) -> None:
        """Send nothing for `seconds`, keeping sockets open."""
        self.stall_until = self.clock() + seconds

    def stalled(self) -> bool:
        if self.clock() < self.stall_until:
            self.counts["stalled"] += 1
            return True
        return False

    def disconnect(self) -> None:
        """Close every client connection at the next market step."""
        self._disconnect = True

    def take_disconnect(self) -> bool:
        pending, self._disconnect = self._disconnect, False
        if pending:
            self.counts["disconnects"] += 1
        return pending

    def rest_refusal(self, handshake: bool) -> tuple[int, dict[str, str], dict] | None:
        """(status, headers, body) when this HTTP request must be refused, else None.
        Geo-blocking refuses websocket handshakes too (as real venues do); rate limiting
        applies to REST requests only."""
        if self.geo_block:
            self.counts["geo_blocked"] += 1
            return 451, {}, {"code": 0, "msg": f"simulated {self.venue}: service unavailable from a "
                                               "restricted location (geo_block fault)"}
        if not handshake and self.draw("rate_limit"):
            return 429, {"Retry-After": str(self.retry_after)}, {
                "code": -1003, "msg": f"simulated {self.venue}: too many requests (rate_limit fault); "
                                      f"retry after {self.retry_after} s"}
        return None

    def as_dict(self) -> dict:
        return {**self.rates, "geo_block": self.geo_block, "retry_after": self.retry_after,
                "stalled_for_s": round(max(0.0, self.stall_until - self.clock()), 3),
                "counts": dict(self.counts)}
