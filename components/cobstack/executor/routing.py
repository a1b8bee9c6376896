"""Smart order routing over the consolidated snapshot: each venue's own book, split by
fee-adjusted marginal price. Pure.

The snapshot's ladder carries every venue's size at each consolidated price, so a venue's
own book is its column of the ladder (USD prices, quote-normalised by ingest). Only venues
that ingest merged (`included`) and whose book is fresh are routable; the others come back
with the reason they were left out.

Routing a buy of q: every level of every venue costs price * (1 + fee) per unit; taking the
cheapest units first, across venues, until q is reached (or the limit price stops it) is the
cheapest split there is, because each venue's marginal cost only rises as its book is
walked. Sells mirror it with price * (1 - fee) received.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..core.schema import Row, Snapshot
from .fills import BUY, EPS, check_side, marketable

Levels = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class VenueBook:
    venue: str
    bids: Levels  # best first, USD
    asks: Levels
    fee: float  # taker fee, fraction of notional

    def side(self, side: str) -> Levels:
        """The levels an order of `side` takes."""
        return self.asks if side == BUY else self.bids


@dataclass(frozen=True, slots=True)
class Market:
    """What the executor knows of one symbol from its latest snapshot."""

    symbol: str
    ts: int  # snapshot publish time, ns
    mid: float | None
    books: dict[str, VenueBook]  # routable venues
    flagged: dict[str, str]  # venue -> why it is not routable


def _column(rows: Sequence[Row], i: int) -> Levels:
    return tuple((r.price, r.sizes[i]) for r in rows if r.sizes[i] > 0)


def market(snap: Snapshot, fees: Mapping[str, float], default_fee: float, max_age_ms: float) -> Market:
    """The routable venue books of a snapshot: included by ingest and younger than max_age_ms."""
    books, flagged = {}, {}
    for i, st in enumerate(snap.status):
        if not st.included:
            flagged[st.venue] = st.reason or f"left out by ingest (state {st.state})"
        elif st.age_ms is not None and st.age_ms > max_age_ms:
            flagged[st.venue] = f"book {st.age_ms:.0f} ms old at publish (limit {max_age_ms:.0f} ms)"
        else:
            books[st.venue] = VenueBook(st.venue, _column(snap.ladder.bids, i), _column(snap.ladder.asks, i),
                                        fees.get(st.venue, default_fee))
    return Market(snap.symbol, snap.ts, snap.features.mid, books, flagged)


@dataclass(frozen=True, slots=True)
class Child:
    """One venue's part of a routed order, as the router expects it to fill."""

    venue: str
    qty: float
    limit: float  # worst price planned on this venue: the IOC limit sent there
    notional: float
    fee: float


@dataclass(frozen=True, slots=True)
class Route:
    side: str
    requested: float
    children: tuple[Child, ...]  # in venue order of the books given

    @property
    def qty(self) -> float:
        return sum(c.qty for c in self.children)

    @property
    def notional(self) -> float:
        return sum(c.notional for c in self.children)

    @property
    def fee(self) -> float:
        return sum(c.fee for c in self.children)


def route(books: Sequence[VenueBook], side: str, qty: float, limit: float | None = None) -> Route:
    """Split `qty` across `books` taking the best fee-adjusted prices first, never past `limit`
    (a raw price). Less than `qty` is routed when visible depth within the limit runs out."""
    check_side(side)
    sign = 1.0 if side == BUY else -1.0  # sort key: ascending cost for buys, descending proceeds for sells
    per_venue = [
        [(sign * price * (1 + sign * b.fee), i, price, size)
         for price, size in b.side(side) if marketable(side, price, limit)]
        for i, b in enumerate(books)]
    taken = [[0.0, 0.0, 0.0] for _ in books]  # qty, notional, worst price
    left = qty
    for _, i, price, size in heapq.merge(*per_venue):
        if left <= EPS:
            break
        take = min(left, size)
        t = taken[i]
        t[0] += take
        t[1] += take * price
        t[2] = price
        left -= take
    children = tuple(Child(b.venue, t[0], t[2], t[1], t[1] * b.fee)
                     for b, t in zip(books, taken) if t[0] > 0)
    return Route(side, qty, children)
