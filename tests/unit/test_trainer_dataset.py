"""Training data sources (stream history, simulation, capture replay) and decoding."""

import numpy as np
import pytest

from cobstack.bus import MemoryBus
from cobstack.core.pipeline import PipelineConfig
from cobstack.sim.market import Market
from cobstack.trainer.dataset import BASE_FEATURES, build_series, windows
from cobstack.trainer.sources import read_history, replay_capture, simulate

CFG = PipelineConfig(buckets_per_side=5, tensor_buckets=5, ladder_levels=10)


@pytest.fixture(scope="module")
def sim_entries():
    return list(simulate(Market(["binance", "coinbase"], ["ETH-USD"], seed=3, dt=0.05), "ETH-USD", 300, cfg=CFG))


def test_series_takes_the_published_tensor_and_features(sim_entries):
    s = build_series(sim_entries)
    assert len(s) == 300 and s.symbol == "ETH-USD" and s.venues == ["binance", "coinbase"]
    assert s.book.shape == (300, 10, 2, 2) and s.book.dtype == np.float32
    assert s.feature_names[:len(BASE_FEATURES)] == list(BASE_FEATURES)
    assert s.feature_names[-2:] == ["venue_mid_bps_binance", "venue_mid_bps_coinbase"]
    assert s.feats.shape == (300, len(s.feature_names)) and np.isfinite(s.feats).all()
    assert (s.spread >= 0).all()  # a crossed consolidated touch (venue latency) counts as 0
    assert s.ids == [i for i, _ in sim_entries]
    assert windows(np.array([5, 9]), 3).tolist() == [[3, 4, 5], [7, 8, 9]]


def test_bad_records_are_counted_and_a_config_change_restarts_the_series(sim_entries):
    s = build_series([("1-0", b"garbage"), *sim_entries[:10]])
    assert len(s) == 10 and sum(s.skipped.values()) == 1
    other = list(simulate(Market(["binance"], ["ETH-USD"], seed=3, dt=0.05), "ETH-USD", 3, cfg=CFG))
    s = build_series(sim_entries[:5] + other)  # ingest was reconfigured: train on the new shape
    assert s.venues == ["binance"] and len(s) == 3 and s.skipped["older configuration"] == 5
    assert s.ids == [i for i, _ in other]
    with pytest.raises(ValueError, match="no decodable snapshot"):
        build_series([("1-0", b"x")])


async def test_history_pages_and_resumes_by_stream_id(sim_entries):
    bus = MemoryBus()
    ids = await bus.publish_many([("cob:book:ETH-USD", d) for _, d in sim_entries] * 5, maxlen=10_000)
    first = await read_history(bus, "cob:book:ETH-USD", limit=1200)
    assert [e[0] for e in first.entries] == ids[:1200] and first.last_id == ids[1199]
    rest = await read_history(bus, "cob:book:ETH-USD", after=first.last_id)
    assert [e[0] for e in rest.entries] == ids[1200:]
    bounded = await read_history(bus, "cob:book:ETH-USD", after=ids[9], until=ids[19])
    assert [e[0] for e in bounded.entries] == ids[10:20]
    empty = await read_history(bus, "cob:book:ETH-USD", after=ids[-1])
    assert empty.entries == [] and empty.last_id == ids[-1]


def test_capture_replay_yields_snapshots_on_the_capture_clock(recordings_dir):
    path = recordings_dir / "kraken-v1-book.jsonl"
    out = list(replay_capture(path, "kraken-v1", "XMR/USD", interval_s=0.1, cfg=CFG))
    assert len(out) > 20
    s = build_series(out)
    assert s.symbol == "XMR-USD" and s.venues == ["kraken-v1"]
    assert (np.diff(s.ts) >= 100_000_000).all()  # at most one per 100 ms of capture time
    assert s.feats[:, BASE_FEATURES.index("live_share")].max() == 1.0
    with pytest.raises(ValueError, match="instruments in the capture"):
        list(replay_capture(path, "kraken-v1", "BTC/USD", cfg=CFG))
