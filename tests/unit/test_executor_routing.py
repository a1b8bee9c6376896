"""Paper fills and smart order routing on crafted books."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobstack.core.schema import decode_snapshot
from cobstack.executor import crafted
from cobstack.executor.fills import Fill, slippage_bps, walk_book
from cobstack.executor.ledger import Position
from cobstack.executor.routing import VenueBook, market, route

ASKS = [(100.0, 1.0), (101.0, 2.0), (103.0, 5.0)]
BIDS = [(99.0, 1.0), (98.0, 2.0)]


def test_walk_book_takes_levels_in_order_with_the_fee():
    f = walk_book(ASKS, "buy", 2.0, fee=0.001)
    assert (f.qty, f.notional, f.levels) == (2.0, 100.0 + 101.0, 2)
    assert f.fee == pytest.approx(0.201) and f.avg_price == 100.5
    assert f.effective_price("buy") == pytest.approx(100.5 * 1.001)
    s = walk_book(BIDS, "sell", 1.5, fee=0.001)
    assert (s.qty, s.notional) == (1.5, 99.0 + 0.5 * 98.0)
    assert s.effective_price("sell") == pytest.approx(s.avg_price * 0.999)


def test_walk_book_partial_fill_at_depth_or_limit():
    assert walk_book(ASKS, "buy", 100.0, fee=0.0).qty == 8.0  # all visible depth
    f = walk_book(ASKS, "buy", 5.0, fee=0.0, limit=101.0)  # the 103 level is past the limit
    assert (f.qty, f.notional) == (3.0, 100.0 + 202.0)
    assert walk_book(ASKS, "buy", 1.0, fee=0.0, limit=99.9) == Fill(0.0, 0.0, 0.0, 0)
    assert walk_book(BIDS, "sell", 3.0, fee=0.0, limit=98.5).qty == 1.0


def test_walk_book_rejects_bad_orders():
    with pytest.raises(ValueError, match="side"):
        walk_book(ASKS, "long", 1.0, 0.0)
    with pytest.raises(ValueError, match="quantity"):
        walk_book(ASKS, "buy", float("nan"), 0.0)
    with pytest.raises(ValueError, match="fraction"):
        walk_book(ASKS, "buy", 1.0, 10.0)  # 10 bps given as bps


def test_slippage_is_a_cost_for_both_sides():
    assert slippage_bps("buy", 100.1, 100.0) == pytest.approx(10.0)
    assert slippage_bps("sell", 99.9, 100.0) == pytest.approx(10.0)


def test_route_prefers_the_cheaper_venue_after_fees():
    # A quotes the better raw price, but its 60 bps fee makes B (10 bps) cheaper per unit.
    a = VenueBook("A", (), ((100.0, 1.0), (100.2, 5.0)), fee=0.006)  # 100.6, 100.8012
    b = VenueBook("B", (), ((100.3, 1.0), (100.5, 5.0)), fee=0.001)  # 100.4003, 100.6005
    r = route([a, b], "buy", 1.0)
    assert [(c.venue, c.qty) for c in r.children] == [("B", 1.0)]
    r = route([a, b], "buy", 2.5)  # B's 1 @100.4003, A's 1 @100.6, then B's next @100.6005
    assert [(c.venue, c.qty, c.limit) for c in r.children] == [("A", 1.0, 100.0), ("B", 1.5, 100.5)]
    assert r.notional == pytest.approx(100.0 + 100.3 + 0.5 * 100.5)
    assert r.fee == pytest.approx(100.0 * 0.006 + (100.3 + 0.5 * 100.5) * 0.001)


def test_route_sells_into_the_best_proceeds_and_respects_the_limit():
    a = VenueBook("A", ((100.0, 1.0), (99.0, 1.0)), (), fee=0.006)  # 99.4, 98.406
    b = VenueBook("B", ((99.8, 1.0), (99.0, 1.0)), (), fee=0.001)  # 99.7002, 98.901
    r = route([a, b], "sell", 2.0)
    assert [(c.venue, c.qty) for c in r.children] == [("A", 1.0), ("B", 1.0)]
    r = route([a, b], "sell", 5.0, limit=99.5)  # only the 100.0 and 99.8 levels are marketable
    assert r.qty == 2.0 and r.requested == 5.0


def _cost(books: list[VenueBook], split: tuple[float, ...]) -> float:
    total = 0.0
    for b, q in zip(books, split):
        f = walk_book(b.asks, "buy", q, b.fee)
        assert f.qty == pytest.approx(q)
        total += f.notional + f.fee
    return total


levels = st.lists(st.tuples(st.integers(1, 50), st.integers(1, 4)), min_size=1, max_size=4)


@settings(max_examples=60, deadline=None)
@given(levels, levels, st.integers(0, 60), st.integers(0, 60), st.integers(1, 8))
def test_route_is_never_beaten_by_any_split(a_levels, b_levels, fee_a, fee_b, qty):
    """Against brute force over every whole-unit split of the order between two venues."""
    def book(name, lv, fee_bps):
        sizes = dict(lv)  # one size per distinct price step
        return VenueBook(name, (), tuple((100.0 + p / 10, float(sizes[p])) for p in sorted(sizes)), fee_bps / 1e4)

    books = [book("A", a_levels, fee_a), book("B", b_levels, fee_b)]
    depth = [int(sum(s for _, s in b.asks)) for b in books]
    qty = min(qty, sum(depth))
    r = route(books, "buy", float(qty))
    assert r.qty == pytest.approx(qty)
    routed = r.notional + r.fee
    best = min(_cost(books, (qa, qty - qa)) for qa in range(0, qty + 1)
               if qa <= depth[0] and qty - qa <= depth[1])
    assert routed <= best + 1e-9


def test_market_uses_each_venues_own_column_and_skips_flagged_venues():
    snap = decode_snapshot(crafted.encoded(
        "BTC-USD", {"binance": ([(99.0, 1.0)], [(101.0, 1.0), (102.0, 3.0)]),
                    "coinbase": ([(99.0, 2.0)], [(101.0, 4.0)])},
        ts_ns=1, flagged={"kraken-v1": "stale: no update for 6000 ms"}))
    m = market(snap, {"binance": 0.001}, default_fee=0.002, max_age_ms=1000)
    assert m.books["binance"].asks == ((101.0, 1.0), (102.0, 3.0))  # not the merged 5.0 at 101
    assert m.books["coinbase"].asks == ((101.0, 4.0),) and m.books["coinbase"].fee == 0.002
    assert m.flagged == {"kraken-v1": "stale: no update for 6000 ms"} and m.mid == 100.0


def test_position_realises_pnl_on_reductions_and_flips():
    p = Position()
    p.apply("buy", Fill(2.0, 200.0, 0.2, 1))  # long 2 @100
    p.apply("buy", Fill(2.0, 220.0, 0.0, 1))  # long 4 @105
    assert (p.qty, p.avg_cost) == (4.0, 105.0)
    p.apply("sell", Fill(1.0, 110.0, 0.0, 1))  # +5 realised
    assert (p.qty, p.realised) == (3.0, 5.0)
    p.apply("sell", Fill(5.0, 500.0, 0.0, 1))  # closes 3 at 100 (-15), opens short 2 @100
    assert (p.qty, p.avg_cost, p.realised, p.fees) == (-2.0, 100.0, -10.0, 0.2)
    assert p.unrealised(90.0) == 20.0
    p.apply("buy", Fill(2.0, 180.0, 0.0, 1))
    assert (p.qty, p.avg_cost, p.realised) == (0.0, 0.0, 10.0)

