"""Consolidation: one symbol's venue books merged into one USD ladder with per-venue sizes.

Each venue comes in as a `VenueView` (its book plus what ingest knows about it). A venue
that is not live, is stale or shows a crossed book is left out of the merge and flagged
with the reason in its status row: it never lingers with old levels. USDT and USDC prices
are normalised to USD by the venue's rate (policy "par": 1; policy "rate": the mid of a
reference book such as USDT-USD, falling back to par and saying why). Sizes are base units
and stay as they are.

The venue books stay exact (see core/book.py); from here on everything is float64, and a publish
reads only the levels it needs: the top `depth` per venue, fewer when the buckets and the
ladder are already covered (found by bisecting the book's sorted prices, never walking it).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Mapping, Sequence

import numpy as np

from .book import L2Book

PAR, RATE = "par", "rate"
QUOTE_POLICIES = (PAR, RATE)
STABLE_QUOTES = ("USDT", "USDC")  # quotes a USD symbol normalises; USD itself is the unit

_PRICE_STR, _SIZE_STR = itemgetter(2), itemgetter(3)
MEMO_LIMIT = 200_000  # level strings remembered per pipeline before the memo starts over


@dataclass(frozen=True, slots=True)
class VenueView:
    venue: str
    book: L2Book
    quote: str  # the instrument's real quote: USD, USDT or USDC
    live: bool  # the adapter's sync state is "live"
    age_s: float  # seconds since the book last changed or was confirmed
    state: str = ""  # the adapter's state name for the status row ("" = live / "down")
    # Inverse (coin-margined) contracts: sizes on the wire are contracts worth this many units
    # of the quote each, so a level's base size is contracts * contract_value / price. 0: sizes
    # are already in base units.
    contract_value: float = 0.0


@dataclass(frozen=True, slots=True)
class Rate:
    value: float  # USD per unit of the venue's quote
    source: str  # where it came from, including why a fallback was taken


@dataclass(frozen=True, slots=True)
class Member:
    """A venue that takes part in this publish, with its best prices already in USD."""

    index: int  # position in the configured venue order (the per-venue column)
    view: VenueView
    rate: float
    bid: float | None
    bid_size: float
    ask: float | None
    ask_size: float


@dataclass(frozen=True, slots=True)
class Touch:
    """Consolidated top of book: best prices and the total size of every venue at them."""

    bid: float
    bid_size: float
    ask: float
    ask_size: float


@dataclass(frozen=True, slots=True)
class Side:
    """One side of every member's levels in USD, each venue's levels best first."""

    price: np.ndarray  # float64
    size: np.ndarray  # float64, base units
    venue: np.ndarray  # intp, column in the venue order
    counts: list[int]  # levels per member, in member order


def exclusion(view: VenueView, stale_after_s: float) -> str | None:
    """Why this venue must not be merged now, or None when it may."""
    if not view.live:
        return f"not live ({view.state or 'down'})"
    if not view.age_s <= stale_after_s:  # also catches NaN
        return f"stale: no update for {view.age_s:.1f}s (limit {stale_after_s:g}s)"
    if view.book.is_crossed():
        return "crossed book"
    return None


def quote_rate(quote: str, policy: str, refs: Mapping[str, VenueView], stale_after_s: float,
               band: float) -> Rate:
    """USD per unit of `quote`. refs: quote -> live view of the QUOTE-USD reference book."""
    if quote == "USD":
        return Rate(1.0, "usd")
    if policy == PAR:
        return Rate(1.0, "par")
    ref = refs.get(quote)
    if ref is None:
        return Rate(1.0, f"par (fallback: no {quote}-USD reference book)")
    where = f"{ref.venue}:{ref.book.instrument}"
    why = exclusion(ref, stale_after_s)
    mid = ref.book.mid() if why is None else None
    if why is None and mid is None:
        why = "has an empty side"
    if why is not None:
        return Rate(1.0, f"par (fallback: reference {where} {why})")
    rate = float(mid)
    if abs(rate - 1.0) > band:
        return Rate(1.0, f"par (fallback: reference {where} mid {rate:g} outside 1±{band:g})")
    return Rate(rate, f"mid {where}")


def _best(view: VenueView, rate: float, is_bid: bool) -> tuple[float | None, float]:
    level = view.book.side(is_bid).best()
    if level is None:
        return None, 0.0
    price, size = float(level.price_str), float(level.size_str)
    if view.contract_value:
        size *= view.contract_value / price
    return price * rate, size


def assess(views: Sequence[VenueView], venues: Sequence[str], policy: str,
           refs: Mapping[str, VenueView], stale_after_s: float,
           band: float) -> tuple[list[Member], list[dict]]:
    """Decide who is merged and describe every configured venue (in `venues` order).

    Returns the members and one status row per venue: state, live, included, age_ms,
    reason (why it is flagged, None when merged), quote, rate, rate_source, bid, ask.
    """
    column = {v: i for i, v in enumerate(venues)}
    by_venue: dict[str, VenueView] = {}
    for view in views:
        if view.venue not in column:
            raise ValueError(f"view for venue {view.venue!r} which is not configured for this "
                             f"symbol ({', '.join(venues)}); add it to the pipeline's venues")
        if view.venue in by_venue:
            raise ValueError(f"two views for venue {view.venue!r}; pass one book per venue")
        by_venue[view.venue] = view
    members: list[Member] = []
    status: list[dict] = []
    for venue in venues:
        view = by_venue.get(venue)
        if view is None:
            status.append({"venue": venue, "state": "missing", "live": False, "included": False,
                           "age_ms": None, "reason": "missing: no book from this venue",
                           "quote": None, "rate": 1.0, "rate_source": "none", "bid": None,
                           "ask": None})
            continue
        if view.quote == "USD" or view.quote in STABLE_QUOTES:
            # flagged venues get a rate too: their trades still count in the volume profile
            rate = quote_rate(view.quote, policy, refs, stale_after_s, band)
            reason = exclusion(view, stale_after_s)
        else:
            rate = Rate(1.0, "none")
            reason = f"quote {view.quote!r} is not in the USD family (USD, USDT, USDC)"
        bid = ask = None
        if reason is None:
            bid, bid_size = _best(view, rate.value, True)
            ask, ask_size = _best(view, rate.value, False)
            members.append(Member(column[venue], view, rate.value, bid, bid_size, ask, ask_size))
        status.append({"venue": venue, "state": view.state or ("live" if view.live else "down"),
                       "live": view.live, "included": reason is None,
                       "age_ms": float(view.age_s) * 1e3, "reason": reason, "quote": view.quote,
                       "rate": rate.value, "rate_source": rate.source, "bid": bid, "ask": ask})
    return members, status


def touch(members: Sequence[Member]) -> Touch | None:
    """The consolidated top of book, or None while either side is empty everywhere."""
    bids = [(m.bid, m.bid_size) for m in members if m.bid is not None]
    asks = [(m.ask, m.ask_size) for m in members if m.ask is not None]
    if not (bids and asks):
        return None
    bid = max(p for p, _ in bids)
    ask = min(p for p, _ in asks)
    return Touch(bid, sum(s for p, s in bids if p == bid), ask, sum(s for p, s in asks if p == ask))


def _count(prices: list[float], is_bid: bool, reach: float, rate: float) -> int:
    """How many of the best levels lie at or beyond `reach` (USD) toward the touch."""
    cut = reach / rate
    if is_bid:
        return len(prices) - bisect_left(prices, cut)
    return bisect_right(prices, cut)


class FloatMemo(dict):
    """Level string -> float. Most levels survive from one publish to the next and a dict
    hit costs half a parse; misses are parsed on the spot (dict's __missing__ hook), so the
    hit path stays in C. Owned by one pipeline; `trim` keeps it bounded."""

    def __missing__(self, text: str) -> float:
        value = self[text] = float(text)
        return value

    def trim(self) -> None:
        if len(self) > MEMO_LIMIT:
            self.clear()


def gather(members: Sequence[Member], is_bid: bool, depth: int, min_levels: int,
           reach: float | None, memo: FloatMemo) -> Side:
    """Each member's best levels of one side in USD.

    Per venue: every level from the touch out to `reach` (USD; None = no bound), at least
    `min_levels` (the ladder needs them wherever they are), never more than `depth`.
    """
    tops = []
    for m in members:
        side = m.view.book.side(is_bid)
        n = depth
        if reach is not None:
            n = min(depth, max(min_levels, _count(side.prices, is_bid, reach, m.rate)))
        tops.append(side.top(n))
    counts = list(map(len, tops))
    total = sum(counts)
    columns = np.repeat(np.array([m.index for m in members], dtype=np.intp), counts)
    memo.trim()
    get = memo.__getitem__
    price = np.fromiter(map(get, map(_PRICE_STR, chain.from_iterable(tops))), np.float64, total)
    size = np.fromiter(map(get, map(_SIZE_STR, chain.from_iterable(tops))), np.float64, total)
    if any(m.view.contract_value for m in members):  # contracts -> base units, at native prices
        value = np.repeat([m.view.contract_value for m in members], counts)
        inverse = value > 0
        size[inverse] *= value[inverse] / price[inverse]
    if any(m.rate != 1.0 for m in members):
        price *= np.repeat([m.rate for m in members], counts)
    return Side(price, size, columns, counts)


def ladder(side: Side, n: int, n_venues: int, is_bid: bool) -> tuple[np.ndarray, np.ndarray]:
    """The best `n` distinct prices (best first) and each venue's size there: ([m], [m, V]).

    Only each venue's first n levels can reach the consolidated top n, so only they are read.
    """
    if not side.price.size:
        return np.empty(0), np.zeros((0, n_venues))
    counts = side.counts
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    pick = np.arange(side.price.size) - starts < n  # position within its venue < n
    uniq, inv = np.unique(side.price[pick], return_inverse=True)
    rank = len(uniq) - 1 - inv if is_bid else inv
    keep = rank < n
    m = min(n, len(uniq))
    sizes = np.bincount(rank[keep] * n_venues + side.venue[pick][keep],
                        weights=side.size[pick][keep], minlength=m * n_venues)
    prices = uniq[::-1][:m] if is_bid else uniq[:m]
    return prices, sizes.reshape(m, n_venues)
