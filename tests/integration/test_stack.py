"""The stack runner: a consumer that crashes is reported and never takes ingest down."""

from __future__ import annotations

import sys

from cobstack import stack
from cobstack.config import Settings


async def test_a_crashing_consumer_is_reported_and_the_rest_keeps_running(tmp_path, monkeypatch):
    (tmp_path / "boom_consumer.py").write_text(
        "import asyncio\n"
        "async def serve(settings, bus, stop):\n"
        "    await asyncio.sleep(0.5)\n"
        "    raise RuntimeError('model file is corrupt')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(stack.CONSUMERS, "boom", "boom_consumer")
    settings = Settings(venues=["binance", "coinbase"], symbols=["BTC-USD"],
                        ingest={"metrics_port": 0, "publish_interval_ms": 50})
    summary = await stack.run_components(settings, ["ingest", "boom"], duration=4)
    assert summary["failed"] == {"boom": "RuntimeError: model file is corrupt"}
    assert summary["snapshots_received"]["BTC-USD"] >= 20  # ingest kept publishing after the crash
    sys.modules.pop("boom_consumer", None)


async def test_consumers_alone_finish_when_they_are_done(tmp_path, monkeypatch):
    """A training Job runs one consumer and must exit when it has finished its work."""
    (tmp_path / "job_consumer.py").write_text(
        "async def serve(settings, bus, stop):\n"
        "    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(stack.CONSUMERS, "job", "job_consumer")
    summary = await stack.run_components(Settings(), ["job"], duration=60)
    assert summary["failed"] == {} and summary["duration_s"] < 10
    sys.modules.pop("job_consumer", None)
