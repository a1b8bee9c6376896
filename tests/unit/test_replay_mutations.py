"""Mutated real captures: each fault a venue's protocol can reveal is detected, counted and
resyncs that instrument alone; nothing is applied silently.

What each protocol can reveal:
- Kraken v1: the CRC32 of the top 10 levels on every update, so a lost, reordered or altered
  update that touches the top of the book fails the next checksum. An adjacent duplicate is
  harmless (sizes are absolute) and verifies.
- Binance: update-id continuity, so a lost, repeated or swapped diff is a gap. A diff whose
  size was altered keeps the ids intact; only reconciliation against a REST snapshot shows it.
- Bitstamp: microtimestamps, so a repeated or swapped diff is out of order (a gap). A lost
  or altered diff is invisible in the feed.
- Coinbase level2: no sequence at all. Lost, repeated or reordered updates cannot be seen;
  what can be is a crossed book, a malformed level, and updates without a snapshot.
"""

from collections import defaultdict
from decimal import Decimal

import orjson
import pytest

from cobstack.capture import iter_capture
from cobstack.replay import feed, summarize
from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.binance import RECONCILE_KEY
from cobstack.venues.registry import make_adapter


def load(recordings_dir, name):
    return list(iter_capture(recordings_dir / name))


def run(recs, venue):
    """Feed records; return the adapter and every effect it asked for."""
    a, effects = make_adapter(venue, None), []
    for r in recs:
        feed(a, r.kind, r.url, r.data, r.t)
        effects += a.outbox
        a.outbox.clear()
    return a, effects


def swap(recs, i, j):
    out = list(recs)
    out[i], out[j] = out[j], out[i]
    return out


def assert_only_flagged(a, native, recs, venue):
    assert a.state[native] == RESYNC
    assert all(s == LIVE for n, s in a.state.items() if n != native), a.flagged()
    assert not summarize(a, "mutated", 0).consistent


# -- Kraken v1 ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def kraken(recordings_dir):
    """The capture, and for the busiest pair the indices of updates that set one level
    inside the top 10 (so its checksum covers the change)."""
    recs = load(recordings_dir, "kraken-v1-book.jsonl")
    a, top = make_adapter("kraken-v1"), defaultdict(list)
    for i, r in enumerate(recs):
        feed(a, r.kind, r.url, r.data, r.t)
        if r.kind != "ws_recv" or not r.data.startswith("[") or '"c"' not in r.data:
            continue
        msg = orjson.loads(r.data)
        body = msg[1]
        if len(msg) != 4 or len(body) != 2:
            continue
        side = "a" if "a" in body else "b"
        (price, size, *_), = body[side] if len(body[side]) == 1 else [(None, "0")]
        if Decimal(size) == 0:
            continue
        book = a.books[msg[-1]]
        if any(lv.price_str == price for lv in (book.asks if side == "a" else book.bids).top(10)):
            top[msg[-1]].append(i)
    pair = max(top, key=lambda p: len(top[p]))
    return recs, pair, top[pair]


def kraken_resync_frames(effects, pair):
    return [orjson.loads(e[1]) for e in effects if e[0] == "ws"]


def check_kraken_fault(recs, pair):
    a, effects = run(recs, "kraken-v1")
    assert a.stats.checksum_failures == 1 and a.stats.resyncs == 1
    assert [(m["event"], m["pair"]) for m in kraken_resync_frames(effects, pair)] == [
        ("unsubscribe", [pair]), ("subscribe", [pair])]
    assert_only_flagged(a, pair, recs, "kraken-v1")
    return a


def test_kraken_dropped_update_fails_checksum(kraken):
    recs, pair, idx = kraken
    i = idx[len(idx) // 2]
    check_kraken_fault(recs[:i] + recs[i + 1:], pair)


def test_kraken_swapped_updates_fail_checksum(kraken):
    recs, pair, idx = kraken
    i, j = next((i, j) for i, j in zip(idx, idx[1:]) if i > len(recs) // 3 and
                orjson.loads(recs[i].data)[1] != orjson.loads(recs[j].data)[1])
    check_kraken_fault(swap(recs, i, j), pair)


def test_kraken_altered_size_fails_checksum(kraken):
    recs, pair, idx = kraken
    i = idx[len(idx) // 2]
    msg = orjson.loads(recs[i].data)
    side = "a" if "a" in msg[1] else "b"
    msg[1][side][0][1] = str(Decimal(msg[1][side][0][1]) * 2)
    check_kraken_fault(recs[:i] + [recs[i]._replace(data=orjson.dumps(msg).decode())] + recs[i + 1:], pair)


def one_level(rec):
    """(side, price) of a single-level Kraken update frame, else None."""
    body = orjson.loads(rec.data)[1]
    side = "a" if "a" in body else "b"
    return (side, body[side][0][0]) if len(body.get(side, ())) == 1 else None


def test_kraken_duplicates(kraken):
    recs, pair, idx = kraken
    i = idx[len(idx) // 2]
    # adjacent duplicate: absolute sizes make it a no-op, and its checksum verifies again
    a, _ = run(recs[:i + 1] + [recs[i]] + recs[i + 1:], "kraken-v1")
    assert a.stats.checksums_ok == 4270 and a.stats.checksum_failures == 0
    # a stale re-delivery after that level changed again reverts it: a checksum catches it
    i, later = next((i, j) for i in idx for j in idx if j > i and one_level(recs[j]) == one_level(recs[i]))
    check_kraken_fault(recs[:later + 1] + [recs[i]] + recs[later + 1:], pair)


# -- Binance ---------------------------------------------------------------------------------

def binance_diffs(recs, venue):
    """(symbol, indices of its depth diffs after its snapshot) for the busiest symbol."""
    snap_at, diffs = {}, defaultdict(list)
    for i, r in enumerate(recs):
        if r.kind == "http":
            snap_at[r.url.split("symbol=")[1].split("&")[0]] = i
        elif r.kind == "ws_recv" and '"depthUpdate"' in r.data:
            sym = orjson.loads(r.data)["data"]["s"]
            if sym in snap_at:
                diffs[sym].append(i)
    sym = max(diffs, key=lambda s: len(diffs[s]))
    return sym, diffs[sym][2:]  # past the bridging diff


BINANCE = [("binance-spot.jsonl", "binance"), ("binance-usdm-futures.jsonl", "binance-usdm")]


def check_binance_gap(recs, venue, sym):
    a, effects = run(recs, venue)
    assert a.stats.gaps == 1 and a.stats.resyncs == 1
    # the first request is the initial sync (the capture answers it); the second is the resync
    assert [e for e in effects if e[2] == sym] == [("http", a.snapshot_url(sym), sym)] * 2
    assert_only_flagged(a, sym, recs, venue)
    return a


@pytest.mark.parametrize("name,venue", BINANCE)
def test_binance_lost_repeated_or_swapped_diff_is_a_gap(recordings_dir, name, venue):
    recs = load(recordings_dir, name)
    sym, idx = binance_diffs(recs, venue)
    i = idx[len(idx) // 2]
    check_binance_gap(recs[:i] + recs[i + 1:], venue, sym)
    check_binance_gap(recs[:i + 1] + [recs[i]] + recs[i + 1:], venue, sym)
    check_binance_gap(swap(recs, i, idx[len(idx) // 2 + 1]), venue, sym)


def reconcile_with(a, sym, snapshot):
    """Reconcile `sym` (the whole book: the altered level may be deep) against `snapshot`."""
    a.reconcile_levels = 10**6
    a.reconcile_requests(0.0)  # schedules; the second call finds them due
    [(_, url, key)] = [e for e in a.reconcile_requests(1e12) if e[2] == RECONCILE_KEY + sym]
    a.outbox.clear()
    a.on_rest(url, snapshot, 1.0, key)
    return a.reconciliations[sym]


@pytest.mark.parametrize("name,venue", BINANCE)
def test_binance_altered_size_is_invisible_in_the_stream_but_reconciliation_finds_it(recordings_dir, name, venue):
    recs = load(recordings_dir, name)
    sym, idx = binance_diffs(recs, venue)
    i = next(j for j in reversed(idx) if orjson.loads(recs[j].data)["data"]["b"])
    msg = orjson.loads(recs[i].data)
    msg["data"]["b"][0][1] = str(Decimal(msg["data"]["b"][0][1]) + 1)
    good, _ = run(recs, venue)
    bad, _ = run(recs[:i] + [recs[i]._replace(data=orjson.dumps(msg).decode())] + recs[i + 1:], venue)
    assert bad.stats.gaps == 0 and bad.state[sym] == LIVE  # the protocol cannot tell
    book = good.books[sym]
    truth = orjson.dumps({"lastUpdateId": book.seq,
                          "bids": [[lv.price_str, lv.size_str] for lv in book.bids.top(10**6)],
                          "asks": [[lv.price_str, lv.size_str] for lv in book.asks.top(10**6)]})
    assert reconcile_with(good, sym, truth).outcome == "in_sync"
    drift = reconcile_with(bad, sym, truth)
    assert drift.outcome == "drift" and drift.drifted_levels == 1
    assert drift.update_id == drift.snapshot_update_id == book.seq  # same id, different book: drift
    assert bad.stats.drift_events == 1 and bad.outbox == [("http", bad.snapshot_url(sym), sym)]
    assert_only_flagged(bad, sym, recs, venue)


@pytest.mark.parametrize("name,venue", BINANCE)
def test_binance_malformed_size_is_rejected_and_resyncs(recordings_dir, name, venue):
    recs = load(recordings_dir, name)
    sym, idx = binance_diffs(recs, venue)
    i = next(j for j in idx if orjson.loads(recs[j].data)["data"]["b"])
    msg = orjson.loads(recs[i].data)
    msg["data"]["b"][0][1] = "-5"
    a, effects = run(recs[:i] + [recs[i]._replace(data=orjson.dumps(msg).decode())] + recs[i + 1:], venue)
    assert a.stats.rejected == {"negative_size": 1} and a.stats.resyncs == 1
    assert_only_flagged(a, sym, recs, venue)


# -- Bitstamp --------------------------------------------------------------------------------

def bitstamp_diffs(recs):
    snapped, diffs = set(), defaultdict(list)
    for i, r in enumerate(recs):
        if r.kind == "http":
            snapped.add(r.url.rstrip("/").rsplit("/", 1)[1])
        elif r.kind == "ws_recv" and "diff_order_book_" in r.data:
            pair = orjson.loads(r.data)["channel"][len("diff_order_book_"):]
            if pair in snapped:
                diffs[pair].append(i)
    pair = max(diffs, key=lambda p: len(diffs[p]))
    return pair, diffs[pair][2:]


def test_bitstamp_repeated_or_swapped_diff_is_a_gap(recordings_dir):
    recs = load(recordings_dir, "bitstamp.jsonl")
    pair, idx = bitstamp_diffs(recs)
    i = idx[len(idx) // 2]
    for mutated in (recs[:i + 1] + [recs[i]] + recs[i + 1:], swap(recs, i, idx[len(idx) // 2 + 1])):
        a, effects = run(mutated, "bitstamp")
        assert a.stats.gaps == 1 and a.stats.resyncs == 1
        assert [e for e in effects if e[2] == pair] == [("http", a.snapshot_url(pair), pair)]
        assert_only_flagged(a, pair, mutated, "bitstamp")


def test_bitstamp_malformed_level_is_rejected_and_resyncs(recordings_dir):
    recs = load(recordings_dir, "bitstamp.jsonl")
    pair, idx = bitstamp_diffs(recs)
    i = next(j for j in idx[len(idx) // 2:] if orjson.loads(recs[j].data)["data"]["asks"])
    msg = orjson.loads(recs[i].data)
    msg["data"]["asks"][0][1] = "NaN"
    a, _ = run(recs[:i] + [recs[i]._replace(data=orjson.dumps(msg).decode())] + recs[i + 1:], "bitstamp")
    assert a.stats.rejected == {"non_finite": 1}
    assert_only_flagged(a, pair, recs, "bitstamp")


# -- Coinbase --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coinbase(recordings_dir):
    recs = load(recordings_dir, "coinbase-level2.jsonl")
    updates = [i for i, r in enumerate(recs) if r.kind == "ws_recv" and '"l2update"' in r.data]
    return recs, updates[len(updates) // 2]


def test_coinbase_crossing_price_is_detected_and_resyncs_that_product(coinbase):
    recs, i = coinbase
    msg = orjson.loads(recs[i].data)
    product = msg["product_id"]
    good, _ = run(recs[:i], "coinbase")
    book = good.books[product]
    side, _, size = msg["changes"][0]
    cross = book.best_ask().price_str if side == "buy" else book.best_bid().price_str
    msg["changes"] = [[side, cross, size if Decimal(size) else "1"]]
    a, effects = run(recs[:i] + [recs[i]._replace(data=orjson.dumps(msg).decode())] + recs[i + 1:], "coinbase")
    assert a.stats.crossed == 1 and a.stats.resyncs == 1
    assert [orjson.loads(e[1])["product_ids"] for e in effects] == [[product], [product]]
    assert_only_flagged(a, product, recs, "coinbase")


def test_coinbase_malformed_size_is_rejected_and_resyncs(coinbase):
    recs, i = coinbase
    msg = orjson.loads(recs[i].data)
    msg["changes"][0][2] = "-1"
    a, _ = run(recs[:i] + [recs[i]._replace(data=orjson.dumps(msg).decode())] + recs[i + 1:], "coinbase")
    assert a.stats.rejected == {"negative_size": 1}
    assert_only_flagged(a, msg["product_id"], recs, "coinbase")


def test_coinbase_updates_without_snapshot_are_never_applied(coinbase):
    recs, i = coinbase
    product = orjson.loads(recs[i].data)["product_id"]
    mutated = [r for r in recs if not (r.kind == "ws_recv" and '"snapshot"' in r.data and product in r.data)]
    a, _ = run(mutated, "coinbase")
    assert a.stats.stale_dropped > 0 and len(a.books[product].bids) == 0
    assert a.state[product] != LIVE and not summarize(a, "mutated", 0).consistent
