"""Dashboard view models and panel fragments, from snapshots the real pipeline produced."""

from dataclasses import dataclass

from cobstack.core import schema
from cobstack.core.book import L2Book
from cobstack.core.consolidate import VenueView
from cobstack.core.pipeline import PipelineConfig, SymbolPipeline
from cobstack.dashboard import views
from cobstack.dashboard.render import Renderer

VENUES = ["binance", "coinbase", "kraken-v1"]
NOW_NS = 1_700_000_000_000_000_000


@dataclass
class Trade:
    venue: str
    price: float
    size: float
    side: str
    ts: float


def book(venue: str, bids, asks) -> L2Book:
    b = L2Book(venue, "BTC-USD")
    b.load(bids, asks)
    return b


def pipeline() -> SymbolPipeline:
    return SymbolPipeline("BTC-USD", VENUES, PipelineConfig(bucket_size=10.0, ladder_levels=5,
                                                             imbalance_levels=(1, 5)))


def encoded(pipe: SymbolPipeline, now_ns: int = NOW_NS, trades=(), kraken_live=True) -> bytes:
    """A snapshot as ingest publishes it: binance and coinbase share the best bid 100.00;
    kraken (when live) holds the best ask."""
    views_ = [
        VenueView("binance", book("binance", [("100.00", "1.5"), ("99.00", "2")], [("102.00", "1")]), "USDT", True, 0.05),
        VenueView("coinbase", book("coinbase", [("100.00", "0.5"), ("98.00", "4")], [("103.00", "2")]), "USD", True, 0.2),
        VenueView("kraken-v1", book("kraken-v1", [("99.50", "1")], [("101.00", "0.25")]), "USD", kraken_live, 0.1,
                  "" if kraken_live else "resync"),
    ]
    return schema.encode(pipe.snapshot(views_, list(trades), now_ns, recv_ns=now_ns - 3_000_000))


def snapshot(trades=(), kraken_live=True) -> schema.Snapshot:
    return schema.decode_snapshot(encoded(pipeline(), trades=trades, kraken_live=kraken_live))


def test_ladder_shows_each_venues_share_of_a_level_scaled_to_the_largest_level():
    v = views.ladder_view(snapshot(), levels=5)
    best_bid = v["bids"][0]
    assert best_bid["price"] == "100.00" and best_bid["size"] == "2.0000"
    # the largest level shown is coinbase's 98.00 x 4: the 100.00 level (1.5 + 0.5) is half as wide
    assert best_bid["segments"] == [(0, 1.5 / 4 * 100), (1, 0.5 / 4 * 100)]
    assert best_bid["tip"] == "binance 1.5000 · coinbase 0.5000"
    assert [r["price"] for r in v["asks"]] == ["103.00", "102.00", "101.00"]  # far to near
    assert v["spread"] == "1.00"


def test_stats_show_the_published_features_unchanged():
    snap = snapshot()
    v = views.stats_view(snap)
    f = snap.features
    assert (v["best_bid_value"], v["best_ask_value"], v["mid_value"]) == (f.best_bid, f.best_ask, f.mid)
    assert v["mid"] == "100.50" and v["microprice"] == f"{f.microprice:,.2f}"
    assert [m["levels"] for m in v["imbalance"]] == [1, 5]
    assert v["stamp"]["recv_ts"] == f"{(NOW_NS - 3_000_000) / 1e9:.3f}"


def test_venue_rows_mark_the_best_quotes_and_a_left_out_venue_with_its_reason():
    rows = views.venues_view(snapshot(kraken_live=False))["rows"]
    by = {r["venue"]: r for r in rows}
    assert by["binance"]["best_bid"] and by["coinbase"]["best_bid"]
    assert by["binance"]["best_ask"]  # kraken, with the better ask, is not merged
    assert not by["kraken-v1"]["included"] and "resync" in by["kraken-v1"]["reason"]
    assert by["coinbase"]["ask_off_bps"] == f"{(103 - 102) / 103 * 1e4:.1f}"


def test_heatmap_column_is_total_size_per_bucket_in_a_time_slot():
    col = views.heatmap_column(snapshot(), slot_s=0.5)
    assert col["t"] == 1_700_000_000.0 and col["step"] == 10.0
    # bids floor onto the $10 grid: 100.00 -> 100; 99.50, 99.00, 98.00 -> 90. Asks ceil: all -> 110
    assert (col["b0"], col["bids"][:2]) == (100.0, [2.0, 1.0 + 2.0 + 4.0])
    assert (col["a0"], col["asks"][0]) == (110.0, 0.25 + 1.0 + 2.0)
    assert col["mid"] == 100.5
