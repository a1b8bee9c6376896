"""Book features on crafted books with hand-computed answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cobstack.core.book import L2Book
from cobstack.core.consolidate import Touch, VenueView
from cobstack.core.features import (OFIState, imbalance, model_tensor, ofi_flush, ofi_increment,
                                    ofi_step, top_features)
from cobstack.core.pipeline import PipelineConfig, SymbolPipeline

NOW_NS = 1_700_000_000 * 10**9


def view(venue, bids, asks, live=True, age=0.1):
    book = L2Book(venue, "BTC-USD")
    book.load([(str(p), str(s)) for p, s in bids], [(str(p), str(s)) for p, s in asks])
    return VenueView(venue, book, "USD", live, age)


def test_top_features_hand_computed():
    f = top_features(Touch(bid=100.0, bid_size=3.0, ask=102.0, ask_size=1.0))
    assert f["mid"] == 101.0
    assert f["spread"] == 2.0
    assert f["spread_bps"] == pytest.approx(2 / 101 * 1e4)  # 198.0198...
    assert f["weighted_mid"] == pytest.approx((100 * 3 + 102 * 1) / 4)  # 100.5: leans to size
    assert f["microprice"] == pytest.approx((100 * 1 + 102 * 3) / 4)  # 101.5: leans away
    assert f["crossed"] is False


def test_crossed_and_empty_books():
    f = top_features(Touch(101.0, 1.0, 100.0, 1.0))
    assert f["crossed"] is True and f["spread"] == -1.0
    empty = top_features(None)
    assert empty["mid"] is None and empty["microprice"] is None and empty["crossed"] is False


def test_imbalance_over_several_depths():
    bids, asks = np.array([3.0, 1.0, 2.0]), np.array([1.0, 1.0, 1.0])
    assert imbalance(bids, asks, (1, 3, 5)) == {
        "1": pytest.approx(0.5), "3": pytest.approx(1 / 3), "5": pytest.approx(1 / 3)}
    assert imbalance(np.array([]), np.array([2.0]), (1,)) == {"1": -1.0}
    assert imbalance(np.array([]), np.array([]), (1,)) == {"1": None}


BASE = Touch(100.0, 3.0, 102.0, 1.0)


@pytest.mark.parametrize("cur, e", [
    (Touch(100.0, 3.0, 102.0, 1.0), 0.0),  # nothing changed
    (Touch(101.0, 2.0, 102.0, 1.0), 2.0),  # new better bid: +qb
    (Touch(100.0, 5.0, 102.0, 1.0), 2.0),  # bid size up 3 -> 5 at the same price
    (Touch(99.0, 4.0, 102.0, 1.0), -3.0),  # bid level taken out: -qb'
    (Touch(100.0, 3.0, 101.5, 4.0), -4.0),  # new better ask: -qa
    (Touch(100.0, 3.0, 102.5, 7.0), 1.0),  # ask level taken out: +qa'
    (Touch(100.0, 3.0, 102.0, 0.25), 0.75),  # ask size down 1 -> 0.25
])
def test_ofi_increment_cases(cur, e):
    assert ofi_increment(BASE, cur) == pytest.approx(e)


def test_ofi_accumulates_normalises_and_flushes():
    s = OFIState()
    s = ofi_step(s, BASE, (0,))  # first observation is the baseline
    s = ofi_step(s, Touch(101.0, 2.0, 102.0, 1.0), (0,))  # +2, depth (2+1)/2
    s = ofi_step(s, Touch(101.0, 2.0, 101.5, 4.0), (0,))  # -4, depth (2+4)/2
    s, out = ofi_flush(s)
    assert out == {"ofi": -2.0, "ofi_norm": pytest.approx(-2.0 / ((1.5 + 3.0) / 2)),
                   "ofi_steps": 2}
    s, out = ofi_flush(ofi_step(s, Touch(101.0, 2.0, 101.5, 4.0), (0,)))
    assert out == {"ofi": 0.0, "ofi_norm": 0.0, "ofi_steps": 1}  # baseline kept across flush


def test_ofi_rebaselines_when_venues_join_or_leave():
    s = ofi_step(OFIState(), BASE, (0, 1))
    s = ofi_step(s, Touch(100.0, 1.0, 102.0, 1.0), (0,))  # venue 1 left: not order flow
    assert (s.ofi, s.steps, s.rebaselines) == (0.0, 0, 1)
    s = ofi_step(s, Touch(100.0, 1.5, 102.0, 1.0), (0,))
    assert (s.ofi, s.steps) == (0.5, 1)
    s = ofi_step(s, None, (0,))  # a side went empty: the next observation is a new baseline
    s = ofi_step(s, BASE, (0,))
    assert s.steps == 1 and s.prev == BASE


def test_pipeline_ofi_uses_observations_between_publishes():
    p = SymbolPipeline("BTC-USD", ["a", "b"])
    first = [view("a", [(100, 3)], [(102, 1)]), view("b", [(99, 1)], [(103, 1)])]
    assert p.snapshot(first, [], NOW_NS)["features"]["ofi_steps"] == 0  # baseline only
    p.observe([view("a", [(101, 2)], [(102, 1)]), view("b", [(99, 1)], [(103, 1)])])  # +2
    snap = p.snapshot([view("a", [(101, 2)], [(101.5, 4)]), view("b", [(99, 1)], [(103, 1)])],
                      [], NOW_NS)  # -4
    assert (snap["features"]["ofi"], snap["features"]["ofi_steps"]) == (-2.0, 2)


def test_tensor_layout_rows_channels_venues():
    bid = np.array([[1.0, 3.0], [2.0, 0.0], [5.0, 5.0]])  # bucket 0 holds the best bid
    ask = np.array([[0.0, 4.0], [6.0, 2.0], [9.0, 9.0]])
    t = model_tensor(bid, ask, 2)
    assert t.shape == (4, 2, 2) and t.dtype == np.float32
    assert t[:, 0, :].tolist() == [[2.0, 0.0], [1.0, 3.0], [0.0, 4.0], [6.0, 2.0]]
    assert t[:, 1, :].tolist() == [[1.0, 0.0], [0.25, 0.75], [0.0, 1.0], [0.75, 0.25]]
    empty = model_tensor(np.zeros((2, 2)), np.zeros((2, 2)), 2)
    assert not empty.any()  # empty rows: zero share, not NaN


def test_tensor_shape_is_fixed_when_a_venue_drops():
    cfg = PipelineConfig(tensor_buckets=3, buckets_per_side=2)
    p = SymbolPipeline("BTC-USD", ["a", "b", "c"], cfg)
    a = view("a", [(100005, 1), (99995, 2)], [(100012, 2)])
    b = view("b", [(100004, 3)], [(100011, 4), (100031, 1)])
    both = p.snapshot([a, b], [], NOW_NS)["tensor"]
    assert both.shape == (6, 2, 3)
    # row 2 = bid bucket 0 (100000), row 3 = ask bucket 0 (100020), row 5 = ask bucket 2
    assert both[2, 0].tolist() == [1.0, 3.0, 0.0] and both[1, 0].tolist() == [2.0, 0.0, 0.0]
    assert both[3, 0].tolist() == [2.0, 4.0, 0.0] and both[5, 0].tolist() == [0.0, 1.0, 0.0]
    assert both[3, 1].tolist() == pytest.approx([1 / 3, 2 / 3, 0.0])
    dropped = p.snapshot([a, view("b", [(100004, 3)], [(100011, 4)], live=False)], [], NOW_NS)
    assert dropped["tensor"].shape == (6, 2, 3)
    assert not dropped["tensor"][:, :, 1].any()  # b's slice is zeros ...
    assert dropped["status"][1]["reason"] == "not live (down)"  # ... and its flag says why
    nobody = p.snapshot([], [], NOW_NS)
    assert nobody["tensor"].shape == (6, 2, 3) and nobody["features"]["mid"] is None


side_levels = st.lists(st.tuples(st.integers(1, 10**4), st.integers(1, 10**6)), min_size=1,
                       max_size=30, unique_by=lambda x: x[0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(side_levels, side_levels), min_size=1, max_size=3),
       st.sampled_from(["BTC-USD", "ETH-USD", "DOGE-USD"]))
def test_no_nan_in_features_for_any_non_crossed_book(books, symbol):
    p = SymbolPipeline(symbol, [f"v{i}" for i in range(len(books))])
    views = [view(f"v{i}", [(f"{1000 - b / 100:.2f}", f"{s / 1000:.3f}") for b, s in bids],
                  [(f"{1000.01 + a / 100:.2f}", f"{s / 1000:.3f}") for a, s in asks])
             for i, (bids, asks) in enumerate(books)]
    snap = p.snapshot(views, [], NOW_NS)
    snap = p.snapshot(views, [], NOW_NS + 10**8)
    f = snap["features"]
    for key in ("mid", "spread", "spread_bps", "weighted_mid", "microprice", "ofi", "ofi_norm"):
        assert math.isfinite(f[key]), key
    assert f["best_bid"] < f["microprice"] < f["best_ask"]
    assert all(v is not None and -1 <= v <= 1 for v in f["imbalance"].values())
    assert np.isfinite(snap["tensor"]).all()
