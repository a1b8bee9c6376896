"""When ingest publishes: at the first change one interval after the last snapshot, at the
latest two intervals after it, never more than once per interval."""

import pytest

from cobstack.bus import MemoryBus
from cobstack.config import Settings
from cobstack.ingest.service import Ingest


def ingest() -> Ingest:
    return Ingest(Settings(symbols=["BTC-USD", "ETH-USD"], ingest={"publish_interval_ms": 100}), MemoryBus())


def test_a_change_after_the_interval_publishes_at_once_with_that_frame():
    ing = ingest()
    ing.published_at = {"BTC-USD": 10.0, "ETH-USD": 10.0}
    ing.pending = {"BTC-USD": 10.101}  # the frame arrived 101 ms after the last snapshot
    assert ing._due(now=10.102) == (["BTC-USD"], None)


def test_changes_inside_the_interval_wait_for_the_next_frame_or_the_trailing_flush():
    ing = ingest()
    ing.published_at = {"BTC-USD": 10.0, "ETH-USD": 10.0}
    ing.pending = {"BTC-USD": 10.05}
    due, next_at = ing._due(now=10.15)
    assert due == [] and next_at == pytest.approx(10.2)  # no newer frame yet: flush at 2 intervals
    assert ing._due(now=10.2) == (["BTC-USD"], None)


def test_a_periodic_refresh_without_frames_publishes_once_the_interval_has_passed():
    ing = ingest()
    ing.published_at = {"BTC-USD": 10.0, "ETH-USD": 10.95}
    ing.pending = {"BTC-USD": None, "ETH-USD": None}
    due, next_at = ing._due(now=11.0)
    assert due == ["BTC-USD"] and next_at == pytest.approx(11.15)


async def test_a_lone_change_inside_the_interval_is_flushed_within_two_intervals():
    """A quiet market: one change right after a snapshot, then nothing. It must go out by
    the trailing flush (2 intervals), not wait for the once-a-second refresh."""
    import asyncio
    import time

    from cobstack.streams import book_stream

    ing = ingest()
    publisher = asyncio.create_task(ing._publisher())
    try:
        adapter = ing.adapters["binance"]
        adapter.dirty.add("BTCUSDT")
        ing._on_frame_done(adapter, time.time())  # first change: published at once
        await asyncio.sleep(0.02)
        assert ing.published["BTC-USD"] == 1
        adapter.dirty.add("BTCUSDT")
        ing._on_frame_done(adapter, time.time())  # 20 ms later, then silence
        await asyncio.sleep(0.3)
        assert ing.published["BTC-USD"] == 2
        assert len(await ing.bus.range(book_stream("BTC-USD"))) == 2
    finally:
        publisher.cancel()
