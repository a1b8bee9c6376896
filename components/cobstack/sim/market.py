"""The simulated market: one latent fair price per symbol, one order book per venue.

Pure and deterministic: no clocks, no I/O, one `random.Random(seed)`. Each `step()` advances
simulated time by `dt` and returns, per venue, the book changes and trades it produced.

Why prices move (so models have something real to learn):
- A persistent taker "pressure" per symbol (AR(1), a few seconds of memory) skews the
  arrival of taker buys versus sells on every venue.
- Realised net taker flow moves the latent fair price (linear impact), plus diffusion.
- Venue makers quote around the fair price as they saw it `latency_ms` ago and lean their
  touch sizes with the pressure (they retreat from the side being hit). So top-of-book
  imbalance and order-flow imbalance lead the mid by a few steps, as in real books.

Books are kept in integer ticks and lots, so they never cross, sizes stay > 0 and prices
sit on the venue's tick grid by construction; strings are formatted the way each venue
prints them (checksums are computed over those strings).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, insort
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from ..core.symbols import venue_instrument


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    price: float  # starting fair price, USD
    trade_size: float  # typical taker order, base units
    level_size: float  # typical resting size of one price level, base units
    level_gap: float  # typical price distance between resting levels, USD
    vol_bp: float = 1.0  # diffusion of the fair price, basis points per sqrt(second)


SYMBOLS = {
    "BTC-USD": SymbolSpec(price=60_000.0, trade_size=0.05, level_size=0.4, level_gap=0.5),
    "ETH-USD": SymbolSpec(price=3_000.0, trade_size=0.8, level_size=6.0, level_gap=0.03),
    "SOL-USD": SymbolSpec(price=150.0, trade_size=10.0, level_size=80.0, level_gap=0.01),
}


@dataclass(frozen=True, slots=True)
class VenueSpec:
    price_dp: int  # decimals the venue prints prices with
    size_dp: int
    ticks: dict  # base asset -> tick size (string, exact)
    lots: dict  # base asset -> size increment (string, exact)
    liquidity: float = 1.0  # scales resting sizes and taker arrival
    spread_ticks: int = 1  # quoted spread when makers are settled
    latency_ms: float = 0.0  # how stale the fair price is that this venue's makers quote around
    basis: float = 1.0  # venue quote currency per USD (USDT slightly off par, say)
    # Base asset -> price decimals where the venue prints an instrument's prices with its own
    # precision (Kraken v2's price_precision, Bitstamp's whole-dollar BTC); else price_dp.
    price_dp_by_base: dict = field(default_factory=dict)


VENUES = {
    "binance": VenueSpec(8, 8, {"BTC": "0.01", "ETH": "0.01", "SOL": "0.01"},
                         {"BTC": "0.00001", "ETH": "0.0001", "SOL": "0.001"}, liquidity=1.5),
    "coinbase": VenueSpec(2, 8, {"BTC": "0.01", "ETH": "0.01", "SOL": "0.01"},
                          {"BTC": "0.00000001", "ETH": "0.00000001", "SOL": "0.00000001"},
                          liquidity=1.0, latency_ms=40.0),
    "kraken-v1": VenueSpec(5, 8, {"BTC": "0.1", "ETH": "0.01", "SOL": "0.01"},
                           {"BTC": "0.00000001", "ETH": "0.00000001", "SOL": "0.00000001"},
                           liquidity=0.6, latency_ms=80.0),
    "kraken": VenueSpec(2, 8, {"BTC": "0.1", "ETH": "0.01", "SOL": "0.01"},
                        {"BTC": "0.00000001", "ETH": "0.00000001", "SOL": "0.00000001"},
                        liquidity=0.6, latency_ms=80.0, price_dp_by_base={"BTC": 1}),
    "bitstamp": VenueSpec(2, 8, {"BTC": "1", "ETH": "0.01", "SOL": "0.01"},
                          {"BTC": "0.00000001", "ETH": "0.00000001", "SOL": "0.00000001"},
                          liquidity=0.4, latency_ms=120.0, price_dp_by_base={"BTC": 0}),
    "binance-usdm": VenueSpec(2, 3, {"BTC": "0.1", "ETH": "0.01", "SOL": "0.01"},
                              {"BTC": "0.001", "ETH": "0.001", "SOL": "1"}, liquidity=2.0, latency_ms=10.0),
    # COIN-M sizes are base units here; the wire prints them as contracts (sim.venues.binance).
    "binance-coinm": VenueSpec(2, 8, {"BTC": "0.1", "ETH": "0.01", "SOL": "0.001"},
                               {"BTC": "0.00000001", "ETH": "0.00000001", "SOL": "0.00000001"},
                               liquidity=0.8, latency_ms=20.0, price_dp_by_base={"BTC": 1, "SOL": 3}),
    "okx": VenueSpec(2, 8, {"BTC": "0.1", "ETH": "0.01", "SOL": "0.01"},
                     {"BTC": "0.00000001", "ETH": "0.000001", "SOL": "0.000001"},
                     liquidity=1.2, latency_ms=30.0, price_dp_by_base={"BTC": 1}),
    "bybit": VenueSpec(2, 6, {"BTC": "0.01", "ETH": "0.01", "SOL": "0.01"},
                       {"BTC": "0.000001", "ETH": "0.00001", "SOL": "0.001"}, liquidity=1.0, latency_ms=30.0),
}


# -- events ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BookDelta:
    """One atomic book event (a quote placed, pulled, resized or filled). `changes` are
    (is_bid, price, new size) with the venue's strings; a zero size removes the level.
    `first_id..last_id` number the changes, one id per change, per (venue, symbol)."""
    symbol: str
    t: float
    changes: tuple[tuple[bool, str, str], ...]
    first_id: int
    last_id: int


@dataclass(frozen=True, slots=True)
class Trade:
    symbol: str
    t: float
    price: str
    size: str
    taker_buy: bool
    trade_id: int  # per (venue, symbol), from 1


def fmt_units(units: int, dp: int) -> str:
    """An integer count of 10**-dp as a fixed-point string: (6000001, 2) -> '60000.01'."""
    if dp == 0:
        return str(units)
    whole, frac = divmod(units, 10**dp)
    return f"{whole}.{frac:0{dp}d}"


def _units(value: str, dp: int, what: str) -> int:
    scaled = Decimal(value) * 10**dp
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise ValueError(f"{what} {value!r} is not a positive multiple of 1e-{dp}")
    return int(scaled)


class _Side:
    """One side of a simulated book: lots by tick, sorted ticks, last-change time per tick."""

    __slots__ = ("is_bid", "lots", "ticks", "times")

    def __init__(self, is_bid: bool):
        self.is_bid = is_bid
        self.lots: dict[int, int] = {}
        self.ticks: list[int] = []  # ascending
        self.times: dict[int, float] = {}

    def __len__(self) -> int:
        return len(self.ticks)

    def best(self) -> int | None:
        if not self.ticks:
            return None
        return self.ticks[-1] if self.is_bid else self.ticks[0]

    def worst(self) -> int:
        return self.ticks[0] if self.is_bid else self.ticks[-1]

    def nth(self, k: int) -> int:
        """The k-th best tick (0 = best)."""
        return self.ticks[-1 - k] if self.is_bid else self.ticks[k]

    def set(self, tick: int, lots: int, t: float) -> None:
        if lots:
            if tick not in self.lots:
                insort(self.ticks, tick)
            self.lots[tick] = lots
            self.times[tick] = t
        else:
            del self.lots[tick], self.times[tick]
            del self.ticks[bisect_left(self.ticks, tick)]


class VenueBook:
    """One venue's book for one symbol plus the venue's id counters and string formats."""

    def __init__(self, venue: str, symbol: str, spec: VenueSpec, native: str):
        base = symbol.split("-")[0]
        if base not in spec.ticks:
            raise ValueError(f"sim venue {venue} has no tick size for {base}; known: {sorted(spec.ticks)}")
        self.venue, self.symbol, self.native, self.spec = venue, symbol, native, spec
        self.price_dp = spec.price_dp_by_base.get(base, spec.price_dp)
        self.tick_units = _units(spec.ticks[base], self.price_dp, f"{venue} {base} tick")
        self.lot_units = _units(spec.lots[base], spec.size_dp, f"{venue} {base} lot")
        self.tick = float(Decimal(spec.ticks[base]))
        self.lot = float(Decimal(spec.lots[base]))
        self.bids, self.asks = _Side(True), _Side(False)
        self.update_id = 0  # last book change id (Binance's lastUpdateId / U / u)
        self.trade_id = 0

    def side(self, is_bid: bool) -> _Side:
        return self.bids if is_bid else self.asks

    def price_str(self, tick: int) -> str:
        return fmt_units(tick * self.tick_units, self.price_dp)

    def size_str(self, lots: int) -> str:
        return fmt_units(lots * self.lot_units, self.spec.size_dp)

    def top(self, is_bid: bool, n: int) -> list[tuple[str, str, float]]:
        """The best n levels, best first, as (price, size, time of last change)."""
        side = self.side(is_bid)
        ticks = side.ticks[: -n - 1: -1] if is_bid else side.ticks[:n]
        return [(self.price_str(k), self.size_str(side.lots[k]), side.times[k]) for k in ticks]

    def mid(self) -> float:
        return (self.bids.best() + self.asks.best()) * self.tick / 2


class _SymbolState:
    __slots__ = ("spec", "log_fair", "pressure", "history")

    def __init__(self, spec: SymbolSpec, keep: int):
        self.spec = spec
        self.log_fair = math.log(spec.price)
        self.pressure = 0.0
        self.history: deque[float] = deque([spec.price] * keep, maxlen=keep)  # fair per step


class Market:
    """All simulated venues for all symbols, driven by one seed.

    rate: multiplier of the event rates (1.0 gives about 100 book events and 20 trades per
    second per venue and symbol; a bench raises it; volume and volatility do not change). dt: simulated seconds per step. t0: venue time of step 0.
    """

    BOOK_EVENTS_PER_S = 60.0  # random resting-order activity per venue and symbol at rate 1
    TAKERS_PER_S = 4.0  # taker orders per venue and symbol at rate 1, liquidity 1
    PRESSURE_MEMORY_S = 3.0
    PRESSURE_SKEW = 1.0  # log-intensity skew of taker buys vs sells per unit pressure
    LEAN = 0.8  # log-size lean of touch quotes per unit pressure
    IMPACT_BP = 0.05  # fair-price move per typical-trade-size of net taker flow
    REFILL_S = 0.08  # how quickly makers re-quote a touch that moved away
    PICKOFF = 0.3  # share of stale quotes taken by takers rather than cancelled

    def __init__(self, venues: list[str], symbols: list[str], seed: int = 7, *, rate: float = 1.0,
                 dt: float = 0.02, t0: float = 1_700_000_000.0, depth: int = 150,
                 venue_specs: dict[str, VenueSpec] | None = None,
                 symbol_specs: dict[str, SymbolSpec] | None = None):
        if rate <= 0 or dt <= 0 or depth < 10:
            raise ValueError(f"need rate > 0, dt > 0 and depth >= 10 (got rate={rate}, dt={dt}, depth={depth})")
        vspecs = {**VENUES, **(venue_specs or {})}
        sspecs = {**SYMBOLS, **(symbol_specs or {})}
        for v in venues:
            if v not in vspecs:
                raise ValueError(f"no simulated venue {v!r}; simulated: {', '.join(sorted(vspecs))}")
        for s in symbols:
            if s not in sspecs:
                raise ValueError(f"no simulated symbol {s!r}; pass a SymbolSpec for it "
                                 f"(known: {', '.join(sorted(sspecs))})")
        self.venues, self.symbols = list(venues), list(symbols)
        self.rng = random.Random(seed)
        self.rate, self.dt, self.t, self.depth = rate, dt, t0, depth
        self._lag = {v: round(vspecs[v].latency_ms / 1000 / dt) for v in venues}
        keep = max(self._lag.values(), default=0) + 1
        self.state = {s: _SymbolState(sspecs[s], keep) for s in symbols}
        self.books = {(v, s): VenueBook(v, s, vspecs[v], venue_instrument(v, s).native)
                      for v in venues for s in symbols}
        self._phi = math.exp(-dt / self.PRESSURE_MEMORY_S)
        for book in self.books.values():
            self._seed_book(book)

    # -- public reads ------------------------------------------------------------------------

    def book(self, venue: str, symbol: str) -> VenueBook:
        return self.books[(venue, symbol)]

    def fair(self, symbol: str) -> float:
        return math.exp(self.state[symbol].log_fair)

    # -- the step ------------------------------------------------------------------------------

    def step(self) -> dict[str, list[BookDelta | Trade]]:
        self.t += self.dt
        out: dict[str, list[BookDelta | Trade]] = {v: [] for v in self.venues}
        gauss = self.rng.gauss
        for sym in self.symbols:
            st = self.state[sym]
            st.pressure = self._phi * st.pressure + math.sqrt(1 - self._phi**2) * gauss(0, 1)
            flow = sum(self._venue_step(self.books[(v, sym)], st, out[v]) for v in self.venues)
            flow /= max(1, len(self.venues))
            st.log_fair += (self.IMPACT_BP * flow + st.spec.vol_bp * math.sqrt(self.dt) * gauss(0, 1)) * 1e-4
            st.history.append(math.exp(st.log_fair))
        return out

    def _venue_step(self, book: VenueBook, st: _SymbolState, out: list) -> float:
        """Advance one venue's book by one step; returns its net taker flow in typical trades."""
        rng, spec = self.rng, book.spec
        lagged = st.history[-1 - self._lag[book.venue]] * spec.basis
        target = lagged / book.tick
        bid_q = math.floor(target - (spec.spread_ticks - 1) / 2)
        ask_q = bid_q + spec.spread_ticks
        lean = math.exp(self.LEAN * st.pressure)

        # Quotes the fair price has run through: picked off by takers or pulled by makers.
        while book.asks.best() < ask_q and len(book.asks) > 1:
            self._remove_stale(book, False, out)
        while book.bids.best() > bid_q and len(book.bids) > 1:
            self._remove_stale(book, True, out)

        # Takers, skewed by the pressure; their net flow is what moves the fair price.
        skew = math.exp(self.PRESSURE_SKEW * st.pressure)
        arrivals = self.TAKERS_PER_S * self.rate * spec.liquidity * self.dt
        flow_lots = 0
        for _ in range(_poisson(rng, arrivals * skew)):
            flow_lots += self._take(book, True, out)
        for _ in range(_poisson(rng, arrivals / skew)):
            flow_lots -= self._take(book, False, out)

        for _ in range(_poisson(rng, self.BOOK_EVENTS_PER_S * self.rate * self.dt)):
            self._resting_activity(book, st, lean, (bid_q, ask_q), out)

        # Makers re-quote the touch toward the fair price, leaning with the pressure.
        # (As many new quotes as the rate brings cancels and takers that erode the touch.)
        for _ in range(_poisson(rng, self.dt * self.rate / self.REFILL_S)):
            best_bid, best_ask = book.bids.best(), book.asks.best()
            if best_bid < bid_q and best_bid < best_ask - 1:
                tick = rng.randint(best_bid + 1, min(bid_q, best_ask - 1))
                self._emit(book, out, [(True, tick, self._size(book, st, lean))])
                best_bid = tick
            if best_ask > ask_q and best_ask > best_bid + 1:
                tick = rng.randint(max(ask_q, best_bid + 1), best_ask - 1)
                self._emit(book, out, [(False, tick, self._size(book, st, 1 / lean))])

        self._keep_depth(book, st, out)
        return flow_lots * book.lot / (st.spec.trade_size * spec.liquidity)

    # -- book operations -----------------------------------------------------------------------

    def _emit(self, book: VenueBook, out: list, changes: list[tuple[bool, int, int]]) -> None:
        """Apply (is_bid, tick, lots) changes to the book and record them as one BookDelta."""
        first = book.update_id + 1
        wire = []
        for is_bid, tick, lots in changes:
            book.side(is_bid).set(tick, lots, self.t)
            wire.append((is_bid, book.price_str(tick), book.size_str(lots)))
        book.update_id += len(changes)
        out.append(BookDelta(book.symbol, self.t, tuple(wire), first, book.update_id))

    def _trade(self, book: VenueBook, out: list, tick: int, lots: int, taker_buy: bool) -> None:
        book.trade_id += 1
        out.append(Trade(book.symbol, self.t, book.price_str(tick), book.size_str(lots), taker_buy,
                         book.trade_id))

    def _remove_stale(self, book: VenueBook, is_bid: bool, out: list) -> None:
        """The best quote the fair price ran through: a taker may hit part of it before its
        maker pulls the rest. (Not counted as flow: it follows the move, it does not cause it.)"""
        side = book.side(is_bid)
        tick = side.best()
        if self.rng.random() < self.PICKOFF:
            self._trade(book, out, tick, min(side.lots[tick], self._taker_lots(book)), not is_bid)
        self._emit(book, out, [(is_bid, tick, 0)])

    def _take(self, book: VenueBook, buy: bool, out: list) -> int:
        """A taker order sweeping the opposite side from the touch; returns lots filled.
        The last level of a side is never emptied, so a book always has both sides."""
        side = book.side(not buy)
        want = self._taker_lots(book)
        filled = 0
        while want > filled:
            tick = side.best()
            avail = side.lots[tick] - (1 if len(side) == 1 else 0)
            fill = min(want - filled, avail)
            if fill <= 0:
                break
            self._trade(book, out, tick, fill, buy)
            self._emit(book, out, [(not buy, tick, side.lots[tick] - fill)])
            filled += fill
        return filled

    def _resting_activity(self, book: VenueBook, st: _SymbolState, lean: float, quotes: tuple[int, int],
                          out: list) -> None:
        """One random maker action, more likely near the touch: cancel, add a level near
        another one (never through the makers' quotes), or resize."""
        rng = self.rng
        is_bid = rng.random() < 0.5
        side = book.side(is_bid)
        k = min(int(rng.expovariate(0.35)), len(side) - 1)
        tick = side.nth(k)
        lean_side = (lean if is_bid else 1 / lean) if k < 5 else 1.0
        action = rng.random()
        if action < 0.25 and len(side) > self.depth // 2:
            self._emit(book, out, [(is_bid, tick, 0)])
            return
        if action < 0.5:
            offset = rng.randint(1, 2 * self._gap_ticks(book, st)) * (1 if rng.random() < 0.5 else -1)
            if is_bid:
                new, ok = tick + offset, tick + offset <= min(max(quotes[0], book.bids.best()), book.asks.best() - 1)
            else:
                new, ok = tick - offset, tick - offset >= max(min(quotes[1], book.asks.best()), book.bids.best() + 1)
            if ok and new > 0 and new not in side.lots:
                self._emit(book, out, [(is_bid, new, self._size(book, st, lean_side))])
                return
        # Geometric mean of old and fresh size: sizes wander but revert to the typical size.
        new = max(1, round(math.sqrt(side.lots[tick] * self._size(book, st, lean_side))))
        self._emit(book, out, [(is_bid, tick, new)])

    def _keep_depth(self, book: VenueBook, st: _SymbolState, out: list) -> None:
        """Keep each side between depth and 1.25 depth levels, adding/pulling at the far end."""
        for side in (book.bids, book.asks):
            while len(side) < self.depth:
                far = side.worst() + (-1 if side.is_bid else 1) * self.rng.randint(1, 2 * self._gap_ticks(book, st))
                if far <= 0:
                    break
                self._emit(book, out, [(side.is_bid, far, self._size(book, st, 1.0))])
            while len(side) > self.depth * 5 // 4:
                self._emit(book, out, [(side.is_bid, side.worst(), 0)])

    def _seed_book(self, book: VenueBook) -> None:
        """The initial book: `depth` levels a side around the fair price, no events."""
        st = self.state[book.symbol]
        mid = st.spec.price * book.spec.basis / book.tick
        bid, ask = math.floor(mid), math.floor(mid) + book.spec.spread_ticks
        for _ in range(self.depth):
            book.bids.set(bid, self._size(book, st, 1.0), self.t)
            book.asks.set(ask, self._size(book, st, 1.0), self.t)
            bid -= self.rng.randint(1, 2 * self._gap_ticks(book, st))
            ask += self.rng.randint(1, 2 * self._gap_ticks(book, st))
            if bid <= 0:
                raise ValueError(f"{book.venue} {book.symbol}: tick too coarse for the price "
                                 f"({book.tick} at {st.spec.price})")

    def _gap_ticks(self, book: VenueBook, st: _SymbolState) -> int:
        return max(1, round(st.spec.level_gap / book.tick))

    def _taker_lots(self, book: VenueBook) -> int:
        # Sizes shrink as the rate knob adds takers: it multiplies messages, not volume.
        typical = self.state[book.symbol].spec.trade_size / self.rate
        return max(1, round(book.spec.liquidity * self._lognormal(typical) / book.lot))

    def _size(self, book: VenueBook, st: _SymbolState, lean: float) -> int:
        return max(1, round(self._lognormal(st.spec.level_size) * book.spec.liquidity * lean / book.lot))

    def _lognormal(self, mean: float) -> float:
        # sigma 0.8: sizes spread over an order of magnitude, mean `mean`.
        return mean * self.rng.lognormvariate(-0.32, 0.8)


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method for small means; the normal approximation for large ones (a bench's
    high rates), where Knuth's exp(-lam) would underflow."""
    if lam <= 0:
        return 0
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
