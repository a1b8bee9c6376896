"""L2 order book for one (venue, instrument): exact levels, sorted price ladders.

Exactness without Decimal's cost: every decimal number of at most 15 significant digits
maps to a distinct IEEE-754 double, in the same order, and equal decimals ("0.3513" and
"0.35130000") map to the same one. So levels are keyed by the parsed double, which is exact
for identity and ordering, and the parser REJECTS (counts) any price with more than 15
significant digits instead of letting two levels collide. Sizes are never keys: a size of
more digits (Bitstamp sends 16) is kept as the nearest double, its exact text beside it. No
arithmetic is done on venue levels here. Each level also keeps the venue's original strings, because checksums (Kraken,
OKX) are computed over the text exactly as the venue sent it.

Each side is a dict (price -> level) plus an ascending list of prices kept sorted with
`bisect`: best price is O(1), lookup O(log n), top-N a slice. Insertion shifts the list in C,
which for the bounded depths venues publish (<= a few thousand levels) beats any tree.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from functools import partial
from typing import Iterable, NamedTuple

_INF = float("inf")
MAX_DIGITS = 15  # significant digits a double holds exactly for identity and order
_SHORT = MAX_DIGITS + 1  # a price this long or shorter cannot have more than MAX_DIGITS digits


class BadLevel(ValueError):
    """A price level that must never enter a book; `kind` is the rejection counter name."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


class Level(NamedTuple):
    price: float  # exact for identity and order (see the module docstring)
    size: float
    price_str: str  # as the venue sent it
    size_str: str


# new_level((price, size, price_str, size_str)) -> Level, without NamedTuple's Python-level
# __new__ (a C-level call, ~40% cheaper): books create a Level per wire level.
new_level = partial(tuple.__new__, Level)


def significant_digits(text: str) -> int:
    """Significant digits of a decimal string ("0.0012300" -> 3, "1.5e-8" -> 2)."""
    mantissa = text.strip().lower().partition("e")[0].lstrip("+-").replace(".", "")
    return len(mantissa.strip("0"))


def parse_level(price_str: str, size_str: str) -> tuple[float, float]:
    """Validate one venue level; raise BadLevel for NaN, infinities, price <= 0, size < 0,
    or a price too precise to key a level exactly (more than 15 significant digits)."""
    try:
        price = float(price_str)
        size = float(size_str)
    except (TypeError, ValueError):
        raise BadLevel("malformed_number", f"price={price_str!r} size={size_str!r}") from None
    if 0.0 < price < _INF and 0.0 <= size < _INF and len(price_str) <= _SHORT:
        return price, size  # the common case: plainly valid, and a price short enough to be exact
    if not (price - price == 0.0 and size - size == 0.0):  # NaN or an infinity
        raise BadLevel("non_finite", f"price={price_str!r} size={size_str!r}")
    if price <= 0.0:
        raise BadLevel("non_positive_price", f"price={price_str!r}")
    if size < 0.0:
        raise BadLevel("negative_size", f"size={size_str!r}")
    if significant_digits(price_str) > MAX_DIGITS:
        raise BadLevel("precision_exceeded", f"price={price_str!r} has more than {MAX_DIGITS} "
                       "significant digits: it could not be kept apart from its neighbours")
    return price, size


class BookSide:
    """One side of a book.

    `top_cache` lets a checksum reuse its text of the best `watch` levels: it is dropped by
    any change that can alter those levels, so a deep update costs the checksum nothing.
    """

    __slots__ = ("is_bid", "prices", "levels", "watch", "top_cache")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.prices: list[float] = []  # ascending
        self.levels: dict[float, Level] = {}
        self.watch = 0
        self.top_cache: object | None = None

    def _touches_top(self, price: float) -> bool:
        """Can a change at `price` alter the best `watch` levels? (Evaluated before the change.)"""
        prices, n = self.prices, self.watch
        if len(prices) <= n:
            return True
        return price >= prices[-n] if self.is_bid else price <= prices[n - 1]

    def __len__(self) -> int:
        return len(self.prices)

    def set(self, price: float, size: float, price_str: str, size_str: str) -> None:
        """Set a level's size; size 0 removes it (deleting an absent level is a no-op)."""
        levels = self.levels
        if self.top_cache is not None and self._touches_top(price):
            self.top_cache = None
        if size:
            if price not in levels:
                insort(self.prices, price)
            levels[price] = new_level((price, size, price_str, size_str))
        elif levels.pop(price, None) is not None:
            del self.prices[bisect_left(self.prices, price)]

    def get(self, price: float) -> Level | None:
        return self.levels.get(price)

    def best(self) -> Level | None:
        if not self.prices:
            return None
        return self.levels[self.prices[-1] if self.is_bid else self.prices[0]]

    def top(self, n: int) -> list[Level]:
        """The best n levels, best first."""
        prices = self.prices
        keys = prices[: -n - 1 : -1] if self.is_bid else prices[:n]
        levels = self.levels
        return [levels[p] for p in keys]

    def truncate(self, depth: int) -> None:
        """Keep only the best `depth` levels (venues that publish a bounded book)."""
        excess = len(self.prices) - depth
        if excess <= 0:
            return
        if depth <= self.watch:
            self.top_cache = None
        if self.is_bid:
            dropped, self.prices = self.prices[:excess], self.prices[excess:]
        else:
            dropped, self.prices = self.prices[depth:], self.prices[:depth]
        for p in dropped:
            del self.levels[p]

    def clear(self) -> None:
        self.prices.clear()
        self.levels.clear()
        self.top_cache = None


class L2Book:
    """One venue's book for one instrument. Pure data structure; no I/O, no clocks."""

    __slots__ = ("venue", "instrument", "bids", "asks", "seq", "ts", "max_depth")

    def __init__(self, venue: str, instrument: str, max_depth: int | None = None):
        self.venue = venue
        self.instrument = instrument
        self.bids = BookSide(True)
        self.asks = BookSide(False)
        self.seq: int | None = None  # venue sequence id of the last applied update
        self.ts: float = 0.0  # venue or receive time of the last applied update (s)
        self.max_depth = max_depth

    def side(self, is_bid: bool) -> BookSide:
        return self.bids if is_bid else self.asks

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.seq = None

    def update(self, is_bid: bool, price_str: str, size_str: str) -> None:
        """Apply one level from the wire (validated; raises BadLevel)."""
        price, size = parse_level(price_str, size_str)
        (self.bids if is_bid else self.asks).set(price, size, price_str, size_str)

    def load(self, bids: Iterable[tuple[str, str]], asks: Iterable[tuple[str, str]]) -> None:
        """Replace the whole book with a snapshot; all-or-nothing on bad input."""
        new = L2Book(self.venue, self.instrument, self.max_depth)
        for p, s in bids:
            new.update(True, p, s)
        for p, s in asks:
            new.update(False, p, s)
        self.bids, self.asks = new.bids, new.asks
        self.truncate()

    def truncate(self) -> None:
        depth = self.max_depth  # checked inline: this runs after every update of a bounded book
        if depth and (len(self.bids.prices) > depth or len(self.asks.prices) > depth):
            self.bids.truncate(depth)
            self.asks.truncate(depth)

    def best_bid(self) -> Level | None:
        return self.bids.best()

    def best_ask(self) -> Level | None:
        return self.asks.best()

    def is_crossed(self) -> bool:
        bids, asks = self.bids.prices, self.asks.prices
        return bool(bids and asks and bids[-1] >= asks[0])

    def mid(self) -> float | None:
        bids, asks = self.bids.prices, self.asks.prices
        if not (bids and asks):
            return None
        return (bids[-1] + asks[0]) / 2

    def __repr__(self) -> str:
        bb, ba = self.best_bid(), self.best_ask()
        return (
            f"L2Book({self.venue}:{self.instrument} bids={len(self.bids)} asks={len(self.asks)} "
            f"best={bb.price if bb else None}/{ba.price if ba else None})"
        )
