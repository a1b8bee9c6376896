"""The paper venue's fill model: a marketable order walking one venue's own book. Pure.

Levels are (price, size) pairs, best first, from the side the order takes: asks for a buy,
bids for a sell. Prices are in the symbol's quote (USD for the consolidated books); the fee
is the venue's taker fee as a fraction of notional (0.001 = 10 bps). The trainer's RL
environment reuses `walk_book` so that training and paper trading pay the same costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

BUY, SELL = "buy", "sell"
SIDES = (BUY, SELL)
EPS = 1e-12  # below this a quantity is zero (float dust left by subtraction)


@dataclass(frozen=True, slots=True)
class Fill:
    qty: float  # base units filled (0 when nothing could be taken)
    notional: float  # sum of price * size taken, quote currency, before fees
    fee: float  # quote currency
    levels: int  # levels touched (the last one maybe partly)

    @property
    def avg_price(self) -> float | None:
        return self.notional / self.qty if self.qty > 0 else None

    def effective_price(self, side: str) -> float | None:
        """Average price per unit including the fee: what a buy pays, what a sell receives."""
        if self.qty <= 0:
            return None
        return (self.notional + self.fee) / self.qty if side == BUY else (self.notional - self.fee) / self.qty


NO_FILL = Fill(0.0, 0.0, 0.0, 0)


def check_side(side: str) -> str:
    if side not in SIDES:
        raise ValueError(f"order side must be 'buy' or 'sell', got {side!r}")
    return side


def marketable(side: str, price: float, limit: float | None) -> bool:
    """May a `side` order with this limit trade at `price`?"""
    return limit is None or (price <= limit if side == BUY else price >= limit)


def walk_book(levels: Sequence[tuple[float, float]], side: str, qty: float, fee: float,
              limit: float | None = None) -> Fill:
    """Take up to `qty` from `levels` (best first) as an immediate-or-cancel order, never past
    `limit`. Less than `qty` comes back when depth or the limit runs out (a partial fill);
    the rest is cancelled, as IOC orders are."""
    check_side(side)
    if not qty >= 0:
        raise ValueError(f"order quantity must be >= 0, got {qty!r}")
    if not -1 < fee < 1:
        raise ValueError(f"fee is a fraction of notional (0.001 = 10 bps), got {fee!r}")
    left, notional, touched = qty, 0.0, 0
    for price, size in levels:
        if left <= EPS or not marketable(side, price, limit):
            break
        take = min(left, size)
        if take <= 0:
            continue
        notional += take * price
        left -= take
        touched += 1
    filled = qty - left if left > EPS else qty
    if touched == 0:
        return NO_FILL
    return Fill(filled, notional, notional * fee, touched)


def slippage_bps(side: str, effective_price: float, reference: float) -> float:
    """Cost against a reference price (the decision-time mid), in bps: positive is worse.
    Counts the half-spread, walking the book and the fee."""
    ratio = effective_price / reference
    return (ratio - 1) * 1e4 if side == BUY else (1 - ratio) * 1e4
