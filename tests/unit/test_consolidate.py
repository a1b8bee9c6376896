"""Consolidation and price buckets on crafted books with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobstack.core.book import L2Book
from cobstack.core.buckets import bucket_side, default_size, nice_size
from cobstack.core.consolidate import (FloatMemo, VenueView, assess, gather, ladder, quote_rate,
                                       touch)
from cobstack.core.pipeline import PipelineConfig, SymbolPipeline
from cobstack.venues.base import Trade

NOW_NS = 1_700_000_000 * 10**9


def view(venue, bids, asks, quote="USD", live=True, age=0.1, state="", ts=1.7e9):
    book = L2Book(venue, f"BTC-{quote}")
    book.load([(str(p), str(s)) for p, s in bids], [(str(p), str(s)) for p, s in asks])
    book.ts = ts
    return VenueView(venue, book, quote, live, age, state)


def merged(views, venues, policy="par", refs=None, depth=200):
    members, status = assess(views, venues, policy, refs or {}, 10.0, 0.05)
    sides = {b: gather(members, b, depth, 20, None, FloatMemo()) for b in (True, False)}
    return members, status, sides


def rows(prices, sizes):
    return [[float(p), s] for p, s in zip(prices, sizes.tolist())]


def test_ladder_merges_venues_with_per_venue_sizes():
    a = view("a", [(100, 1), (99, 2)], [(101, 1), (103, 4)])
    b = view("b", [(100, 0.5), (98, 1)], [(101, 2), (102, 1)])
    members, status, sides = merged([a, b], ["a", "b"])
    assert rows(*ladder(sides[True], 20, 2, True)) == [
        [100.0, [1.0, 0.5]], [99.0, [2.0, 0.0]], [98.0, [0.0, 1.0]]]
    assert rows(*ladder(sides[False], 2, 2, False)) == [[101.0, [1.0, 2.0]], [102.0, [0.0, 1.0]]]
    t = touch(members)
    assert (t.bid, t.bid_size, t.ask, t.ask_size) == (100.0, 1.5, 101.0, 3.0)
    assert [s["included"] for s in status] == [True, True]
    assert status[0]["bid"] == 100.0 and status[1]["ask"] == 101.0


@pytest.mark.parametrize("kw, reason", [
    ({"live": False, "state": "resync"}, "not live (resync)"),
    ({"live": False}, "not live (down)"),
    ({"age": 10.5}, "stale: no update for 10.5s (limit 10s)"),
    ({"age": float("nan")}, "stale"),
])
def test_unusable_venue_drops_out_and_is_flagged(kw, reason):
    good = view("a", [(100, 1)], [(101, 1)])
    bad = view("b", [(100.5, 9)], [(100.8, 9)], **kw)
    members, status, sides = merged([good, bad], ["a", "b"])
    assert [m.view.venue for m in members] == ["a"]
    row = status[1]
    assert row["included"] is False and row["reason"].startswith(reason)
    assert row["bid"] is None and row["ask"] is None  # nothing of it lingers
    assert rows(*ladder(sides[True], 5, 2, True)) == [[100.0, [1.0, 0.0]]]


def test_missing_and_crossed_venues_are_flagged():
    crossed = view("b", [(102, 1)], [(101, 1)])
    members, status, _ = merged([crossed], ["a", "b"])
    assert members == []
    assert status[0]["state"] == "missing" and status[0]["reason"].startswith("missing")
    assert status[1]["reason"] == "crossed book"


def test_unknown_and_duplicate_views_are_errors():
    with pytest.raises(ValueError, match="not configured"):
        merged([view("zz", [(1, 1)], [(2, 1)])], ["a"])
    with pytest.raises(ValueError, match="two views"):
        merged([view("a", [(1, 1)], [(2, 1)])] * 2, ["a"])


def test_quote_outside_usd_family_is_flagged():
    _, status, _ = merged([view("a", [(1, 1)], [(2, 1)], quote="EUR")], ["a"])
    assert "not in the USD family" in status[0]["reason"]


def test_par_policy_keeps_usdt_prices():
    _, status, sides = merged([view("a", [(100, 1)], [(101, 1)], quote="USDT")], ["a"])
    assert (status[0]["rate"], status[0]["rate_source"]) == (1.0, "par")
    assert sides[True].price.tolist() == [100.0]


def test_rate_policy_multiplies_prices_by_reference_mid():
    ref = view("kraken", [("0.9990", 1000)], [("0.9992", 1000)])
    usdt = view("a", [(100000, 1)], [(100010, 2)], quote="USDT")
    usd = view("b", [(99900, 1)], [(99920, 1)])
    members, status, sides = merged([usdt, usd], ["a", "b"], "rate", {"USDT": ref})
    assert status[0]["rate"] == pytest.approx(0.9991)
    assert status[0]["rate_source"] == "mid kraken:BTC-USD"
    assert (status[1]["rate"], status[1]["rate_source"]) == (1.0, "usd")
    assert sides[True].price.tolist() == pytest.approx([100000 * 0.9991, 99900.0])
    assert sides[False].size.tolist() == [2.0, 1.0]  # sizes are base units, unchanged
    assert members[0].bid == pytest.approx(99910.0)


@pytest.mark.parametrize("refs, why", [
    ({}, "no USDT-USD reference book"),
    ({"USDT": view("k", [(0.999, 1)], [(1.0, 1)], age=60)}, "stale"),
    ({"USDT": view("k", [(0.999, 1)], [(1.0, 1)], live=False, state="syncing")}, "not live"),
    ({"USDT": view("k", [], [(1.0, 1)])}, "empty side"),
    ({"USDT": view("k", [(0.5, 1)], [(0.6, 1)])}, "outside 1±0.05"),
])
def test_rate_falls_back_to_par_and_says_why(refs, why):
    rate = quote_rate("USDT", "rate", refs, 10.0, 0.05)
    assert rate.value == 1.0
    assert rate.source.startswith("par (fallback:") and why in rate.source


def test_only_top_depth_levels_are_read_and_reach_bounds_them():
    bids = [(10000 - i, 1) for i in range(1000)]
    a = view("a", bids, [(10001, 1)])
    members, _ = assess([a], ["a"], "par", {}, 10.0, 0.05)
    assert gather(members, True, 200, 20, None, FloatMemo()).counts == [200]
    # within 50 of the touch: 51 levels; the ladder's minimum wins when reach is tighter
    assert gather(members, True, 200, 20, 9950.0, FloatMemo()).counts == [51]
    assert gather(members, True, 200, 20, 9999.5, FloatMemo()).counts == [20]


def test_float_memo_is_bounded(monkeypatch):
    monkeypatch.setattr("cobstack.core.consolidate.MEMO_LIMIT", 3)
    memo = FloatMemo()
    assert [memo[s] for s in ("1", "2.5", "3", "4")] == [1.0, 2.5, 3.0, 4.0]
    memo.trim()
    assert len(memo) == 0


# -- buckets ---------------------------------------------------------------------------------

def test_bids_floor_and_asks_ceil_with_per_venue_breakdown():
    a = view("a", [(109.99, 1), (105.5, 2), (100, 3), (99.99, 4)], [(110.01, 1), (120, 2)])
    b = view("b", [(108, 0.5), (70, 9)], [(110, 5), (131, 1)])
    _, _, sides = merged([a, b], ["a", "b"])
    labels, sizes = bucket_side(sides[True], 10.0, 3, 2, True)
    assert labels == [100.0, 90.0, 80.0]
    assert sizes.tolist() == [[6.0, 0.5], [4.0, 0.0], [0.0, 0.0]]  # 70 is beyond 3 buckets
    labels, sizes = bucket_side(sides[False], 10.0, 3, 2, False)
    assert labels == [110.0, 120.0, 130.0]
    assert sizes.tolist() == [[0.0, 5.0], [3.0, 0.0], [0.0, 0.0]]  # 131 ceils to 140


def test_grid_prices_stay_on_their_line():
    # 0.3 / 0.1 is 2.9999999999999996 in binary floating point
    a = view("a", [("0.3", 1)], [("0.7", 1)])
    _, _, sides = merged([a], ["a"])
    assert bucket_side(sides[True], 0.1, 1, 1, True)[0] == [0.3]
    assert bucket_side(sides[False], 0.1, 1, 1, False)[0] == [0.7]
    big = view("a", [("65010.0", 1)], [("65020.00", 1)])
    _, _, sides = merged([big], ["a"])
    assert bucket_side(sides[True], 10.0, 1, 1, True)[0] == [65010.0]
    assert bucket_side(sides[False], 10.0, 1, 1, False)[0] == [65020.0]


def test_empty_side_has_no_labels_but_fixed_rows():
    _, _, sides = merged([view("a", [], [(1, 1)])], ["a"])
    labels, sizes = bucket_side(sides[True], 1.0, 4, 1, True)
    assert labels == [] and sizes.shape == (4, 1) and not sizes.any()


def test_bucket_size_defaults():
    assert default_size("BTC-USD") == 10.0 and default_size("ETH-USD") == 1.0
    assert default_size("SOL-USD") is None
    assert nice_size(100_000) == 10.0
    assert nice_size(150.0) == 0.02
    assert nice_size(40_000) == 5.0
    with pytest.raises(ValueError, match="bucket size"):
        nice_size(0.0)


def test_pipeline_derives_and_then_fixes_bucket_size_for_other_symbols():
    p = SymbolPipeline("SOL-USD", ["a"])
    snap = p.snapshot([view("a", [(150, 1)], [(150.02, 1)])], [], NOW_NS)
    assert snap["buckets"]["size"] == 0.02
    snap = p.snapshot([view("a", [(300, 1)], [(300.02, 1)])], [], NOW_NS)
    assert snap["buckets"]["size"] == 0.02  # the grid never moves once set
    # with no book yet, the first sane trade price sets it; garbage prices are passed over
    p = SymbolPipeline("DOGE-USD", ["a"])
    snap = p.snapshot([view("a", [], [])], [Trade("a", "DOGEUSD", float("inf"), 1.0, "buy", 1.7e9),
                                            Trade("a", "DOGEUSD", 0.25, 4.0, "buy", 1.7e9)], NOW_NS)
    assert snap["buckets"]["size"] == 0.00002 and snap["profile"]["buy_volume"] == 4.0
    assert snap["profile"]["rejected"] == 1


def test_snapshot_flags_stale_venue_and_zeroes_its_columns():
    p = SymbolPipeline("BTC-USD", ["a", "b"], PipelineConfig(buckets_per_side=2, tensor_buckets=2))
    a = view("a", [(100005, 1)], [(100012, 2)], ts=1.7e9 + 1)
    b = view("b", [(100004, 3)], [(100011, 4)], age=30.0, ts=1.7e9 + 5)
    snap = p.snapshot([a, b], [], NOW_NS)
    assert [s["included"] for s in snap["status"]] == [True, False]
    assert snap["status"][1]["reason"] == "stale: no update for 30.0s (limit 5s)"
    assert snap["ladder"]["bids"] == [[100005.0, 1.0, [1.0, 0.0]]]
    assert snap["buckets"]["bids"] == [[100000.0, 1.0, [1.0, 0.0]], [99990.0, 0.0, [0.0, 0.0]]]
    assert snap["buckets"]["asks"] == [[100020.0, 2.0, [2.0, 0.0]], [100030.0, 0.0, [0.0, 0.0]]]
    assert snap["source_ts"] == round((1.7e9 + 1) * 1e9)  # the stale venue's time is not used
    assert snap["seq"] == 1 and p.snapshot([a], [], NOW_NS)["seq"] == 2


levels = st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 10**6)), max_size=40,
                  unique_by=lambda x: x[0])


def _covers(label: float, size: float, is_bid: bool, p: float) -> bool:
    """Whether bucket `label` holds price p: [label, label+size) for bids, (label-size, label]
    for asks, a price on a grid line belonging to the bucket labelled by that line."""
    def on(x):
        return math.isclose(p, x, abs_tol=1e-6)
    if is_bid:
        return (label <= p < label + size or on(label)) and not on(label + size)
    return (label - size < p <= label or on(label)) and not on(label - size)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(levels, levels), min_size=1, max_size=4),
       st.sampled_from([0.5, 1.0, 2.5, 10.0]))
def test_buckets_partition_levels_and_never_mix_sides(books, size):
    """Bucket totals are the sum of the levels they cover; per-venue sizes sum to totals;
    bid labels sit strictly below ask labels whenever the book is not crossed."""
    views = [view(f"v{i}", [(f"{5000 - p / 10:.1f}", f"{s / 1000:.3f}") for p, s in bids],
                  [(f"{5000.1 + p / 10:.1f}", f"{s / 1000:.3f}") for p, s in asks])
             for i, (bids, asks) in enumerate(books)]
    venues = [v.venue for v in views]
    _, _, sides = merged(views, venues)
    for is_bid in (True, False):
        side = sides[is_bid]
        labels, sizes = bucket_side(side, size, 8, len(venues), is_bid)
        if not side.price.size:
            assert labels == []
            continue
        for label, row in zip(labels, sizes):
            inside = [s for p, s in zip(side.price, side.size) if _covers(label, size, is_bid, p)]
            assert row.sum() == pytest.approx(sum(inside), abs=1e-9)
        every = bucket_side(side, size, 1200, len(venues), is_bid)[1]  # > 600 / 0.5: all
        assert every.sum() == pytest.approx(side.size.sum())
        assert np.allclose(every.sum(axis=0),
                           np.bincount(side.venue, side.size, minlength=len(venues)))
    if sides[True].price.size and sides[False].price.size:
        top_bid = bucket_side(sides[True], size, 1, len(venues), True)[0][0]
        top_ask = bucket_side(sides[False], size, 1, len(venues), False)[0][0]
        assert top_bid < top_ask


def test_pipeline_config_lists_every_problem():
    with pytest.raises(ValueError) as e:
        PipelineConfig(depth=10, ladder_levels=20, imbalance_levels=(1, 50), quote_policy="fx",
                       tensor_buckets=0, bucket_size=-1.0)
    text = str(e.value)
    for part in ("bucket_size", "imbalance_levels", "depth (10)", "quote_policy", "tensor_buckets"):
        assert part in text
    assert PipelineConfig(buckets_per_side=7).k == 7 and PipelineConfig(tensor_buckets=3).k == 3
    with pytest.raises(ValueError, match="non-empty list without repeats"):
        SymbolPipeline("BTC-USD", ["a", "a"])


def test_inverse_contract_sizes_become_base_units_at_each_level():
    """Binance COIN-M quotes sizes in 100 USD contracts: 30 contracts at 50,000 are 0.06 BTC."""
    from cobstack.core.consolidate import VenueView, assess, gather, FloatMemo
    from cobstack.core.book import L2Book

    book = L2Book("binance-coinm", "BTCUSD_PERP")
    book.load([("50000", "30"), ("49900", "10")], [("50100", "20")])
    view = VenueView("binance-coinm", book, "USD", True, 0.0, contract_value=100.0)
    members, _ = assess([view], ["binance-coinm"], "par", {}, 5.0, 0.05)
    assert members[0].bid_size == pytest.approx(30 * 100 / 50000)
    side = gather(members, True, 10, 10, None, FloatMemo())
    assert side.size.tolist() == pytest.approx([0.06, 10 * 100 / 49900])
