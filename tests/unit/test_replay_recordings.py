"""Every shared capture of real exchange traffic replays consistently, and the capture
format reads and writes as documented in recordings/README.md."""

import json

import pytest

from cobstack.capture import CaptureError, CaptureWriter, iter_capture
from cobstack.replay import bench_throughput, replay


def test_kraken_v1_book_every_checksum_verifies(recordings_dir):
    s = replay(recordings_dir / "kraken-v1-book.jsonl", "kraken-v1")
    d = s.as_dict()
    assert d["checksums_ok"] == 4269 and d["checksum_failures"] == 0
    assert d["snapshots"] == 10 and d["updates"] == 4269 and d["resyncs"] == 0 and not d["rejected"]
    assert s.consistent and len(d["instruments"]) == 10
    assert all(i["state"] == "live" and len(i["bids"]) == 5 for i in d["instruments"].values())
    json.dumps(d)  # machine-readable for `cobstack replay --json`


def test_kraken_v1_trades_parsed(recordings_dir):
    d = replay(recordings_dir / "kraken-v1-trades.jsonl", "kraken-v1").as_dict()
    assert d["trades"] == 10 and not d["rejected"] and d["instruments"] == {} and d["consistent"]


@pytest.mark.parametrize("name,venue,stale", [
    ("binance-spot.jsonl", "binance", 5),
    ("binance-usdm-futures.jsonl", "binance-usdm", 12),
])
def test_binance_syncs_from_recorded_snapshots_as_documented(recordings_dir, name, venue, stale):
    d = replay(recordings_dir / name, venue).as_dict()
    assert d["snapshots"] == 4 and d["gaps"] == 0 and d["crossed"] == 0 and d["resyncs"] == 0
    assert d["stale_dropped"] == stale  # diffs the snapshot already contained
    assert d["updates"] > 150 and d["ignored"] > 0 and not d["rejected"] and d["trades"] > 0
    assert all(i["state"] == "live" for i in d["instruments"].values()) and len(d["instruments"]) == 4
    assert d["consistent"]


@pytest.mark.parametrize("name,venue,updates,trades", [
    ("coinbase-level2.jsonl", "coinbase", 9719, 107),  # 97 match + 10 last_match
    ("bitstamp.jsonl", "bitstamp", 615, 10),
])
def test_snapshot_venues_stay_consistent(recordings_dir, name, venue, updates, trades):
    d = replay(recordings_dir / name, venue).as_dict()
    assert d["crossed"] == 0 and d["gaps"] == 0 and d["resyncs"] == 0 and not d["rejected"]
    assert d["updates"] == updates and d["trades"] == trades
    assert len(d["instruments"]) == 10 and d["snapshots"] == 10
    assert all(i["state"] == "live" for i in d["instruments"].values()) and d["consistent"]


def test_bench_throughput_reports_the_replayed_work(recordings_dir):
    r = bench_throughput(recordings_dir / "kraken-v1-book.jsonl", "kraken-v1", repeat=1)
    assert r["msgs"] == 4321 and r["checksums"] == 4269 and r["msgs_per_s"] > 0


def test_capture_round_trip_and_flush_policy(tmp_path):
    now = [100.0]
    path = tmp_path / "sub" / "c.jsonl"
    with CaptureWriter(path, flush_s=5.0, clock=lambda: now[0]) as w:
        w.write(1.5, "ws_open", "wss://x")
        w.write(1.6, "ws_recv", "wss://x", b'{"a":"\xc3\xa9"}')
        assert path.read_bytes() == b""  # buffered until flush_s has passed
        now[0] += 5.0
        w.write(1.7, "http", "https://x/api?symbol=A", '{"b":1}')
        assert path.read_bytes().count(b"\n") == 3
        with pytest.raises(ValueError, match="capture kind 'nope'"):
            w.write(1.8, "nope", "u")
    recs = list(iter_capture(path))
    assert [(r.t, r.kind, r.data) for r in recs] == [
        (1.5, "ws_open", ""), (1.6, "ws_recv", '{"a":"é"}'), (1.7, "http", '{"b":1}')]
    with CaptureWriter(path) as w:  # append-only
        w.write(2.0, "ws_send", "wss://x", "hi")
    assert len(list(iter_capture(path))) == 4


@pytest.mark.parametrize("line,why", [
    ('{"t":1,"kind":"ws_recv","url":"u"', "corrupt capture line"),
    ('{"t":1,"kind":"ws_recv","url":"u"}', "missing field"),
    ('{"t":1,"kind":"bogus","url":"u","data":""}', "kind 'bogus'"),
    ('{"t":"1","kind":"http","url":"u","data":""}', "t must be a number"),
    ('[1,2]', "expected a JSON object"),
])
def test_corrupt_capture_line_names_file_and_line(tmp_path, line, why):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t":1,"kind":"ws_open","url":"u","data":""}\n\n' + line + "\n")
    with pytest.raises(CaptureError, match=rf"bad.jsonl:3: .*{why}"):
        list(iter_capture(path))
