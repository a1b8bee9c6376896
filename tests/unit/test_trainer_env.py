"""The RL environment: fills walk one venue's own levels with the taker fee; PnL is exact."""

import numpy as np
import pytest

from cobstack.trainer.dataset import Series
from cobstack.trainer.env import BUY, HOLD, SELL, Market, baselines, rollout, venue_levels


def test_venue_levels_are_the_venues_own_rows_of_the_ladder():
    prices = np.array([100.0, 101.0, 102.0, np.nan])
    sizes = np.array([1.0, 0.0, 2.0, 5.0])
    assert venue_levels(prices, sizes) == [(100.0, 1.0), (102.0, 2.0)]


def series(mids: list[float], half_spread: float = 0.5) -> Series:
    """Two venues; venue "a" quotes mid +- half_spread with 1 unit, then 10 units 1 further."""
    n = len(mids)
    mid = np.array(mids)
    bid_px = np.stack([mid - half_spread, mid - half_spread - 1], axis=1)
    ask_px = np.stack([mid + half_spread, mid + half_spread + 1], axis=1)
    sz = np.zeros((n, 2, 2))
    sz[:, 0, 0], sz[:, 1, 0] = 1.0, 10.0
    sz[:, :, 1] = 3.0
    return Series("X-USD", ["a", "b"], [], [f"{i}-0" for i in range(n)], np.arange(n), np.zeros((n, 2, 2, 2), np.float32),
                  np.zeros((n, 1), np.float32), mid, np.full(n, 2 * half_spread), bid_px, sz, ask_px, sz.copy())


def test_costs_walk_the_chosen_venue_only():
    m = Market.from_series(series([100.0, 100.0]), "a", unit=1.0, fee=0.0)
    assert m.buy_cost[0, 0] == pytest.approx(0.5 / 100 * 1e4)  # half-spread, in bps of the unit
    # two units: 1 at 100.5, 1 at 101.5 -> 1.0 + 1.5 beyond the mid, per one unit's notional
    assert m.buy_cost[0, 1] == pytest.approx(2.0 / 100 * 1e4)
    thin = Market.from_series(series([100.0, 100.0]), "a", unit=20.0, fee=0.0)
    assert np.isnan(thin.buy_cost[0, 0])  # 11 units visible, 20 asked: not sent
    with pytest.raises(ValueError, match="venue"):
        Market.from_series(series([100.0]), "c", 1.0, 0.0)


def test_buy_and_hold_pnl_is_the_move_less_both_crossings_and_fees():
    s = series([100.0, 101.0, 102.0, 103.0])
    fee = 0.001
    m = Market.from_series(s, "a", unit=1.0, fee=fee)
    out = baselines(m, 0, 3)
    bh = out["buy_and_hold"]
    paid = 100.5 * (1 + fee)
    got = 102.5 * (1 - fee)
    assert bh["pnl_quote"] == pytest.approx(got - paid)
    assert bh["trades"] == 2
    assert out["always_flat"]["pnl_quote"] == 0.0 and out["always_flat"]["trades"] == 0


def test_short_round_trip_and_position_limits():
    m = Market.from_series(series([100.0, 99.0, 98.0]), "a", unit=1.0, fee=0.0)
    pos, r, miss = m.step(0, 0, SELL)
    assert (pos, miss) == (-1, False)
    assert m.step(0, -1, SELL)[0] == -1  # no deeper than one unit short
    assert m.step(0, 1, HOLD)[0] == 1
    pnl = rollout(m, 0, 2, lambda t, p: SELL if t == 0 else HOLD)
    assert pnl["pnl_quote"] == pytest.approx((100 - 0.5) - (98 + 0.5))
    with pytest.raises(ValueError, match="rollout"):
        rollout(m, 0, 3, lambda t, p: BUY)
