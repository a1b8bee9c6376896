"""The trading environment the DQN learns in: recorded or simulated snapshots replayed in
order, orders filled against ONE venue's own levels with its taker fee by the executor's
fill model (executor/fills.walk_book), so training and paper trading pay the same costs.

State: (snapshot position t, held position p in {-1, 0, +1} units). Action: 0 sell, 1 hold,
2 buy, moving p by one unit within [-1, +1]. The step's reward is the change of marked-to-
mid wealth, in basis points of one unit's notional:
    trade cost at t (fill price vs mid, plus fee; walked through the venue's levels)
    + p' * (mid[t+1] - mid[t])
so summed rewards are the net PnL after fees. An order the visible levels cannot fill
completely is not sent (counted), which keeps the state space discrete.

Prices move regardless of the agent (a unit is small against the book), so every cost is
precomputed per snapshot and a whole policy is evaluated by a cheap loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..executor.fills import BUY as BUY_SIDE, SELL as SELL_SIDE, walk_book
from .dataset import Series

SELL, HOLD, BUY = 0, 1, 2
POSITIONS = (-1, 0, 1)


def venue_levels(prices: np.ndarray, sizes: np.ndarray) -> list[tuple[float, float]]:
    """One venue's own levels (price, size), best first, from the ladder's per-venue column;
    rows where the venue has nothing (or past the ladder's end) are not levels."""
    return [(float(p), float(s)) for p, s in zip(prices, sizes) if s > 0 and not np.isnan(p)]


@dataclass(frozen=True)
class Market:
    """Per-snapshot execution costs of one venue, in bps of one unit's notional at mid.

    buy_cost[t, k] / sell_cost[t, k]: what buying / selling k+1 units at t costs beyond the
    mid (spread crossed, levels walked, fee); NaN where the venue's levels cannot fill it."""

    mid: np.ndarray  # [N]
    buy_cost: np.ndarray  # [N, 2] bps
    sell_cost: np.ndarray  # [N, 2] bps
    venue: str
    unit: float
    fee: float

    @classmethod
    def from_series(cls, s: Series, venue: str, unit: float, fee: float) -> Market:
        if venue not in s.venues:
            raise ValueError(f"venue {venue!r} is not in the series ({', '.join(s.venues)})")
        v = s.venues.index(venue)
        n = len(s)
        buy, sell = np.full((n, 2), np.nan), np.full((n, 2), np.nan)
        for t in range(n):
            mid = s.mid[t]
            asks = venue_levels(s.ask_px[t], s.ask_sz[t, :, v])
            bids = venue_levels(s.bid_px[t], s.bid_sz[t, :, v])
            for k, q in enumerate((unit, 2 * unit)):
                fill = walk_book(asks, BUY_SIDE, q, fee)
                if fill.qty >= q * (1 - 1e-9):
                    buy[t, k] = (fill.notional + fill.fee - q * mid) / (unit * mid) * 1e4
                fill = walk_book(bids, SELL_SIDE, q, fee)
                if fill.qty >= q * (1 - 1e-9):
                    sell[t, k] = (q * mid - fill.notional + fill.fee) / (unit * mid) * 1e4
        return cls(s.mid, buy, sell, venue, unit, fee)

    def move_bps(self, t: int) -> float:
        """Mid change from t to t+1 in bps of the mid at t (what one unit long earns)."""
        return (self.mid[t + 1] - self.mid[t]) / self.mid[t] * 1e4

    def step(self, t: int, position: int, action: int) -> tuple[int, float, bool]:
        """(new position, reward bps, unfilled) for acting at t and holding until t+1."""
        target = min(1, max(-1, position + action - 1))
        delta = target - position
        cost, unfilled = 0.0, False
        if delta:
            table = self.buy_cost if delta > 0 else self.sell_cost
            c = table[t, abs(delta) - 1]
            if np.isnan(c):
                target, unfilled = position, True
            else:
                cost = c
        return target, target * self.move_bps(t) - cost, unfilled

    def close(self, t: int, position: int) -> tuple[float, bool]:
        """(reward bps, unfilled) of flattening one held unit at t."""
        if not position:
            return 0.0, False
        c = (self.sell_cost if position > 0 else self.buy_cost)[t, 0]
        return (0.0, True) if np.isnan(c) else (-float(c), False)


def rollout(market: Market, start: int, stop: int, policy) -> dict:
    """Run `policy(t, position) -> action` at snapshots [start, stop), then flatten at
    `stop`, and report net PnL after fees in bps of one unit and in quote currency.
    A position the book cannot close at `stop` stays marked to the mid (counted unfilled)."""
    if not 0 <= start < stop < len(market.mid):
        raise ValueError(f"rollout needs 0 <= start < stop < {len(market.mid)}, got {start}, {stop}")
    position, pnl, quote, trades, unfilled = 0, 0.0, 0.0, 0, 0
    per_bp = 1e-4 * market.unit * market.mid  # quote currency per bps of one unit, at each t
    for t in range(start, stop):
        new, reward, miss = market.step(t, position, policy(t, position))
        trades += new != position
        unfilled += miss
        position, pnl, quote = new, pnl + reward, quote + reward * per_bp[t]
    reward, miss = market.close(stop, position)
    trades += bool(position) and not miss
    pnl, quote, unfilled = pnl + reward, quote + reward * per_bp[stop], unfilled + miss
    return {"pnl_bps": float(pnl), "pnl_quote": float(quote), "trades": trades, "unfilled": unfilled,
            "steps": stop - start}


def baselines(market: Market, start: int, stop: int) -> dict:
    """Always flat (0 by construction, kept to say so) and buy-and-hold after fees."""
    return {"always_flat": rollout(market, start, stop, lambda t, p: HOLD),
            "buy_and_hold": rollout(market, start, stop, lambda t, p: BUY if p < 1 else HOLD)}
