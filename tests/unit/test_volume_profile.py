"""Session volume profile: POC, value area and session boundaries on known trades."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cobstack.core.book import L2Book
from cobstack.core.consolidate import VenueView
from cobstack.core.pipeline import PipelineConfig, SymbolPipeline
from cobstack.core.volume_profile import VolumeProfile
from cobstack.venues.base import Trade

DAY1 = datetime(2026, 3, 1, tzinfo=timezone.utc).timestamp()
DAY2 = DAY1 + 86400


def profile_of(volumes, bucket=10.0):
    """A profile with `volume` bought at price+1 of each bucket price (mid-bucket)."""
    vp = VolumeProfile(bucket)
    for price, volume in volumes.items():
        assert vp.add(price + 1, volume, "buy", DAY1 + 60)
    return vp.summary(100)


def test_poc_and_value_area_hand_computed():
    # total 100, 70 needed. POC 120 (40); up 25 > down 10: add 130 (65); up 20 > down 10:
    # add 140 (85 >= 70). Value area 120..140.
    s = profile_of({100: 5, 110: 10, 120: 40, 130: 25, 140: 20})
    assert (s["poc"], s["va_low"], s["va_high"]) == (120.0, 120.0, 140.0)
    assert s["buy_volume"] == 100.0 and s["sell_volume"] == 0.0


def test_value_area_takes_both_neighbours_on_a_tie_and_stops_at_the_edge():
    # POC 110 (30); 100 and 120 tie at 20: both (70 >= 70)
    s = profile_of({100: 20, 110: 30, 120: 20, 130: 30})  # POC tie: the lower price
    assert (s["poc"], s["va_low"], s["va_high"]) == (110.0, 100.0, 120.0)
    # POC at the bottom edge: only upward expansion is possible
    s = profile_of({100: 50, 110: 10, 120: 30, 130: 10})
    assert (s["poc"], s["va_low"], s["va_high"]) == (100.0, 100.0, 120.0)


def test_poc_tie_goes_to_lower_price_and_gaps_are_skipped():
    s = profile_of({100: 10, 200: 10})
    assert s["poc"] == 100.0 and (s["va_low"], s["va_high"]) == (100.0, 200.0)


def test_buy_sell_split_rate_and_levels():
    vp = VolumeProfile(1.0)
    vp.add(100.4, 2.0, "buy", DAY1)
    vp.add(100.9, 1.0, "sell", DAY1)
    vp.add(101.0, 0.5, "sell", DAY1, rate=0.999)  # 100.899 in USD
    s = vp.summary(10)
    assert s["levels"] == [[100.0, 2.0, 1.5]]
    assert (s["buy_volume"], s["sell_volume"]) == (2.0, 1.5)


def test_levels_are_bounded_and_centred_on_poc():
    vp = VolumeProfile(1.0)
    for i in range(100):
        vp.add(1000 + i, 10.0 if i == 70 else 1.0, "buy", DAY1)
    levels = vp.summary(10)["levels"]
    assert [row[0] for row in levels] == [float(p) for p in range(1065, 1075)]
    vp2 = VolumeProfile(1.0)
    for i in range(20):
        vp2.add(1000 + i, 5.0 if i == 19 else 1.0, "buy", DAY1)
    assert [r[0] for r in vp2.summary(4)["levels"]] == [1016.0, 1017.0, 1018.0, 1019.0]


@pytest.mark.parametrize("price, size, side, ts", [
    (float("nan"), 1.0, "buy", DAY1), (100.0, -1.0, "buy", DAY1), (0.0, 1.0, "buy", DAY1),
    (100.0, 1.0, "hold", DAY1), ("100", 1.0, "buy", DAY1), (100.0, 1.0, "buy", float("inf")),
    (100.0, float("inf"), "sell", DAY1),
])
def test_bad_trades_are_counted_not_added(price, size, side, ts):
    vp = VolumeProfile(10.0)
    assert vp.add(price, size, side, ts) is False
    s = vp.summary(10)
    assert s["rejected"] == 1 and s["levels"] == [] and s["poc"] is None


def test_session_resets_at_utc_midnight_and_late_trades_are_dropped():
    vp = VolumeProfile(10.0)
    vp.add(100.0, 1.0, "buy", DAY2 - 1)
    assert vp.summary(10)["session_start"] == int(DAY1) * 10**9
    vp.add(200.0, 2.0, "sell", DAY2 + 1)
    s = vp.summary(10)
    assert s["session_start"] == int(DAY2) * 10**9
    assert s["levels"] == [[200.0, 0.0, 2.0]] and s["poc"] == 200.0
    assert vp.add(100.0, 1.0, "buy", DAY2 - 0.5) is False  # yesterday's trade, late
    assert vp.summary(10)["late"] == 1


def test_publish_clock_rolls_the_session_without_trades():
    vp = VolumeProfile(10.0)
    vp.add(100.0, 1.0, "buy", DAY1 + 10)
    vp.roll(DAY1 + 20)
    assert vp.summary(10)["poc"] == 100.0
    vp.roll(DAY2)
    s = vp.summary(10)
    assert s["poc"] is None and s["session_start"] == int(DAY2) * 10**9


def test_custom_session_length_and_anchor():
    vp = VolumeProfile(10.0, session_seconds=3600, anchor_s=1800)  # hourly, at hh:30
    vp.add(100.0, 1.0, "buy", DAY1 + 1799)
    assert vp.summary(10)["session_start"] == int(DAY1 - 1800) * 10**9
    vp.add(100.0, 1.0, "buy", DAY1 + 1800)
    s = vp.summary(10)
    assert s["session_start"] == int(DAY1 + 1800) * 10**9 and s["buy_volume"] == 1.0


def test_invalid_profile_settings_are_refused():
    with pytest.raises(ValueError, match="bucket > 0"):
        VolumeProfile(0.0)


def test_pipeline_prices_trades_with_venue_rate_and_rejects_unknown_venues():
    book = L2Book("a", "BTCUSDT")
    book.load([("100000", "1")], [("100010", "1")])
    ref = L2Book("k", "USDT/USD")
    ref.load([("0.9985", "5")], [("0.9995", "5")])  # mid 0.999
    p = SymbolPipeline("BTC-USD", ["a"], PipelineConfig(quote_policy="rate"))
    views = [VenueView("a", book, "USDT", True, 0.1)]
    refs = {"USDT": VenueView("k", ref, "USD", True, 0.1)}
    trades = [Trade("a", "BTCUSDT", 100010.0, 0.5, "buy", DAY1 + 5),
              Trade("zz", "BTCUSDT", 100010.0, 9.0, "buy", DAY1 + 5)]
    prof = p.snapshot(views, trades, int(DAY1 + 6) * 10**9, rate_refs=refs)["profile"]
    assert prof["levels"] == [[99900.0, 0.5, 0.0]]  # 100010 * 0.999 = 99909.99
    assert prof["rejected"] == 1
    assert prof["session_start"] == int(DAY1) * 10**9
