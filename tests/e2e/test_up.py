"""`cobstack up --sim --duration S` as a newcomer runs it: a real process, real sockets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cobstack.bus.local_redis import free_port

COBSTACK = [sys.executable, "-m", "cobstack.cli"]


def run_up(*extra: str, duration: int = 15) -> dict:
    env = {**os.environ, "COBSTACK_DASHBOARD__PORT": str(free_port()),
           "COBSTACK_INGEST__METRICS_PORT": str(free_port())}
    proc = subprocess.run([*COBSTACK, "up", "--sim", "--duration", str(duration), *extra],
                          capture_output=True, text=True, timeout=duration + 120, env=env,
                          cwd=Path(__file__).parents[2])
    assert proc.returncode == 0, f"cobstack up failed ({proc.returncode}):\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout)


def test_up_prints_snapshots_for_both_symbols_from_several_venues():
    summary = run_up()
    for symbol in ("BTC-USD", "ETH-USD"):
        # At most one snapshot per 100 ms: a 15 s run publishes dozens per symbol.
        assert summary["snapshots_received"][symbol] >= 30, summary
        assert len(summary["venues_in_last_snapshot"][symbol]) >= 2, summary
    assert set(summary["venues_healthy"]) >= {"binance", "coinbase", "kraken-v1"}, summary
    assert summary["gaps"] == 0
    assert not any(summary["checksum_failures"].values()), summary
    assert summary["bus"]["state"] == "ok"


def test_a_bad_config_is_refused_with_a_clear_message():
    proc = subprocess.run([*COBSTACK, "up", "--venues", "binance,nasdaq", "--duration", "1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "unknown venue(s) ['nasdaq']" in proc.stderr
