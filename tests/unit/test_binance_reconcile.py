"""Periodic reconciliation of Binance books against REST snapshots (pure), and its scheduling
within the REST budget (pure, on a fake clock)."""

import logging

import orjson
import pytest

from cobstack.venues.base import LIVE, RESYNC
from cobstack.venues.binance import (RECONCILE_KEY, BinanceAdapter, BinanceCoinmAdapter,
                                     BinanceUsdmAdapter)
from cobstack.venues.connect import RECONCILE_RESERVE, RestBudget, due_reconciliations

BTC, ETH = "BTCUSDT", "ETHUSDT"


def diff(U, u, b=(), a=(), sym=BTC, pu=None) -> bytes:
    data = {"e": "depthUpdate", "E": u, "s": sym, "U": U, "u": u, "pu": U - 1 if pu is None else pu,
            "b": [list(x) for x in b], "a": [list(x) for x in a]}
    return orjson.dumps({"stream": f"{sym.lower()}@depth@100ms", "data": data})


def snap(last, bids, asks) -> bytes:
    return orjson.dumps({"lastUpdateId": last, "bids": [list(x) for x in bids], "asks": [list(x) for x in asks]})


BIDS, ASKS = [("100.0", "1.0"), ("99.0", "2.0")], [("101.0", "1.0"), ("102.0", "3.0")]


def live(cls=BinanceAdapter, syms=(BTC,), **kw):
    """An adapter whose instruments are LIVE at update id 100 (BIDS / ASKS)."""
    a = cls(list(syms), **kw)
    for sym in syms:
        a.on_rest(a.snapshot_url(sym), snap(100, BIDS, ASKS), 0.0, sym)
        a.on_frame(diff(100, 100, sym=sym), 0.0)  # futures: the diff that bridges 100; spot: stale
    assert all(s == LIVE for s in a.state.values())
    return a


def start(a, *syms):
    """Make reconciliations of `syms` due now and take their fetches: {native: key}."""
    a.reconcile_requests(0.0)
    fetches = a.reconcile_requests(1e9)
    assert all(url == a.snapshot_url(key[len(RECONCILE_KEY):]) for _, url, key in fetches)
    return {key[len(RECONCILE_KEY):]: key for _, _, key in fetches if key[len(RECONCILE_KEY):] in syms}


# pu chains futures diffs; spot checks U == previous u + 1: these frames satisfy both.
@pytest.mark.parametrize("cls", [BinanceAdapter, BinanceUsdmAdapter, BinanceCoinmAdapter])
def test_in_sync_when_the_snapshot_lands_in_the_middle_of_a_diff(cls):
    a = live(cls)
    key = start(a, BTC)[BTC]
    a.on_frame(diff(101, 103, b=[("99.0", "2.5")], pu=100), 1.0)
    a.on_frame(diff(104, 106, b=[("100.0", "1.5")], a=[("102.0", "0")], pu=103), 1.1)
    # Taken at 105: 100.0 already changed (by id 104), 102.0 not yet removed (id 106).
    # Diff 101..103 is in it (dropped); 104..106 brackets it and brings the shadow to 106.
    a.on_rest(a.snapshot_url(BTC), snap(105, [("100.0", "1.50"), ("99.0", "2.5")], ASKS), 1.2, key)
    r = a.reconciliations[BTC]
    assert (r.outcome, r.update_id, r.snapshot_update_id, r.drifted_levels) == ("in_sync", 106, 105, 0)
    assert r.live_depth == (2, 1) and r.snapshot_depth == (2, 2) and r.levels_compared == 50
    assert a.stats.reconciliations == 1 and a.stats.drift_events == 0 and a.state[BTC] == LIVE
    assert a.stats.snapshots == 1 and not a.outbox  # the shadow never touches the live book


def test_a_snapshot_ahead_of_the_stream_waits_for_the_diff_that_reaches_it():
    a = live()
    key = start(a, BTC)[BTC]
    a.on_frame(diff(101, 102, b=[("99.0", "2.5")]), 1.0)
    a.on_rest(a.snapshot_url(BTC), snap(104, [("100.0", "1.0"), ("99.0", "2.5"), ("98.0", "7")], ASKS), 1.1, key)
    assert BTC not in a.reconciliations  # live is at 102, the shadow at 104
    a.on_frame(diff(103, 105, b=[("98.0", "7")]), 1.2)
    r = a.reconciliations[BTC]
    assert (r.outcome, r.update_id, r.snapshot_update_id) == ("in_sync", 105, 104)


def test_a_snapshot_at_exactly_the_live_id_compares_at_once():
    a = live(BinanceUsdmAdapter)
    key = start(a, BTC)[BTC]
    a.on_rest(a.snapshot_url(BTC), snap(100, BIDS, ASKS), 1.0, key)
    assert a.reconciliations[BTC].outcome == "in_sync" and a.stats.reconciliations == 1


def test_silently_corrupted_level_is_drift_and_resyncs_that_instrument_only(caplog):
    a = live(syms=(BTC, ETH))
    keys = start(a, BTC, ETH)
    # The venue set 99.0 to 4.0, but this diff says 5.0: the ids are intact, the stream cannot tell.
    a.on_frame(diff(101, 101, b=[("99.0", "5.0")]), 1.0)
    a.on_frame(diff(101, 101, b=[("99.0", "4.0")], sym=ETH), 1.0)
    truth = snap(101, [("100.0", "1.0"), ("99.0", "4.0")], ASKS)
    with caplog.at_level(logging.WARNING, logger="cobstack.venues"):
        a.on_rest(a.snapshot_url(BTC), truth, 1.1, keys[BTC])
        a.on_rest(a.snapshot_url(ETH), truth, 1.1, keys[ETH])
    r = a.reconciliations[BTC]
    assert (r.outcome, r.drifted_levels, r.update_id) == ("drift", 1, 101)
    assert "bid 99.0" in r.detail and "5.0" in r.detail and "4.0" in r.detail
    assert a.reconciliations[ETH].outcome == "in_sync"
    s = a.stats.as_dict()
    assert (s["reconciliations"], s["drift_events"], s["drifted_levels"], s["resyncs"]) == (2, 1, 1, 1)
    assert a.state[BTC] == RESYNC and a.state[ETH] == LIVE
    assert a.outbox == [("http", a.snapshot_url(BTC), BTC)]  # a resync snapshot, not a reconciliation
    assert any("BTCUSDT" in m and "drifted" in m and "99.0" in m for m in caplog.messages)
    # the resync brings it back like any other
    a.on_rest(a.snapshot_url(BTC), truth, 1.2, BTC)
    assert a.state[BTC] == LIVE and a.books[BTC].bids.get(a.books[BTC].bids.prices[0]).size_str == "4.0"


def test_stale_level_the_venue_no_longer_has_is_drift():
    a = live()
    key = start(a, BTC)[BTC]
    a.on_rest(a.snapshot_url(BTC), snap(100, [("100.0", "1.0")], ASKS), 1.0, key)
    r = a.reconciliations[BTC]
    assert r.outcome == "drift" and r.detail == "first at bid 99.0: live size 2.0, venue size absent"


def test_only_the_band_of_the_venues_top_levels_is_compared():
    a = live(reconcile_levels=1)
    key = start(a, BTC)[BTC]
    # Second levels differ, but only the best level of each side is compared.
    a.on_rest(a.snapshot_url(BTC), snap(100, [("100.0", "1"), ("98.0", "9")], [("101.0", "1"), ("103.0", "9")]),
              1.0, key)
    assert a.reconciliations[BTC].outcome == "in_sync"


def test_snapshot_older_than_the_book_is_skipped():
    a = live()
    a.on_frame(diff(101, 106), 0.5)
    key = start(a, BTC)[BTC]  # requested with the live book at 106
    a.on_frame(diff(107, 108), 1.0)
    a.on_rest(a.snapshot_url(BTC), snap(103, BIDS, ASKS), 1.1, key)
    r = a.reconciliations[BTC]
    assert r.outcome == "skipped" and "older" in r.detail and r.snapshot_update_id == 103
    assert a.stats.reconcile_skipped == 1 and a.stats.reconciliations == 0
    assert a.state[BTC] == LIVE and not a.outbox and a.stats.snapshots == 1
    # the late answer to a reconciliation already given up is skipped too
    a.on_rest(a.snapshot_url(BTC), snap(108, BIDS, ASKS), 1.2, key)
    assert a.stats.reconcile_skipped == 2 and a.books[BTC].seq == 108


def test_a_resync_abandons_the_reconciliation_in_flight():
    a = live()
    key = start(a, BTC)[BTC]
    a.on_frame(diff(105, 106), 1.0)  # gap
    assert a.state[BTC] == RESYNC
    a.on_rest(a.snapshot_url(BTC), snap(106, BIDS, ASKS), 1.1, key)
    assert a.reconciliations[BTC].outcome == "skipped" and a.state[BTC] == RESYNC
    assert a.stats.snapshots == 1  # the reconciliation body did not load the book


def test_requests_are_staggered_live_only_and_a_lost_answer_is_given_up():
    syms = ["AUSDT", "BUSDT", "CUSDT", "DUSDT"]
    a = live(syms=syms, reconcile_s=60)
    a.state["DUSDT"] = RESYNC
    assert a.reconcile_requests(0.0) == []  # first due 15, 30, 45 s later (D is not live)
    keys = lambda t: [key for _, _, key in a.reconcile_requests(t)]  # noqa: E731
    assert keys(14.9) == [] and keys(15) == ["reconcile:AUSDT"] and keys(30) == ["reconcile:BUSDT"]
    assert keys(45) == ["reconcile:CUSDT"] and keys(74) == []
    assert keys(75) == ["reconcile:AUSDT"]  # A's first answer never came: given up, asked again
    assert a.stats.reconcile_skipped == 1 and "within 60s" in a.reconciliations["AUSDT"].detail
    # most overdue first, at most `limit`
    assert [k for _, _, k in a.reconcile_requests(200, limit=2)] == ["reconcile:BUSDT", "reconcile:CUSDT"]


def settle(adapter, budget, clock, seconds, backlog=()):
    """Run the shell's REST scheduling on a fake clock, one tick a second: resync snapshots
    (`backlog`) take the budget first, as their fetches wait on it; then reconciliations.
    Snapshots make their instruments live. Returns (time the backlog was done, reconciliations)."""
    backlog, done, started = list(backlog), None, 0
    for _ in range(seconds):
        while backlog and budget.delay_for(adapter.snapshot_weight) == 0:
            sym = backlog.pop()
            adapter.on_rest(adapter.snapshot_url(sym), snap(100, BIDS, ASKS), clock[0], sym)
        if not backlog and done is None:
            done = clock[0]
        started += len(due_reconciliations(adapter, budget, clock[0]))
        assert budget.tokens >= 0
        clock[0] += 1.0
    return done, started


def test_reconciliation_fits_the_budget_and_never_delays_a_cold_start():
    syms = [f"S{i:03d}USDT" for i in range(150)]
    spent = {}
    for reconcile in (False, True):
        clock = [0.0]
        budget = RestBudget(BinanceAdapter.rest_weight_per_minute, clock=lambda: clock[0])
        a = BinanceAdapter(syms, reconcile_s=60 if reconcile else 1e12)
        # 150 snapshots of weight 50 = 7500 > 6000 a minute: the cold start needs the refill
        done, started = settle(a, budget, clock, 600, backlog=syms)
        spent[reconcile] = (done, started)
    assert spent[True][0] == spent[False][0] == 15  # reconciling did not slow the cold start
    # 150 instruments every 60 s would be 7500 weight a minute: the 6000 budget holds it to
    # less, keeping half the bucket for resyncs (the bucket's refill is 100 weight a second).
    assert 0.8 * 6000 / 50 * 9 < spent[True][1] <= 6000 / 50 * 10


def test_reconciliation_keeps_a_reserve_and_catches_up_when_the_budget_refills():
    clock = [0.0]
    budget = RestBudget(BinanceUsdmAdapter.rest_weight_per_minute, clock=lambda: clock[0])
    a = live(BinanceUsdmAdapter, syms=(BTC, ETH), reconcile_s=10)
    a.reconcile_requests(0.0)
    budget.tokens = budget.capacity * RECONCILE_RESERVE + 20  # room for one usdm snapshot (20)
    clock[0] = 10.0  # both due, but the 10 s of refill went to the (fake) resyncs:
    budget.stamp = clock[0]
    assert [k for _, k in due_reconciliations(a, budget, clock[0])] == ["reconcile:BTCUSDT"]
    assert budget.tokens == budget.capacity * RECONCILE_RESERVE
    assert due_reconciliations(a, budget, clock[0]) == []
    clock[0] += 0.5  # 20 weight refilled (2400 a minute)
    assert [k for _, k in due_reconciliations(a, budget, clock[0])] == ["reconcile:ETHUSDT"]
    budget.block(30)  # a 429 pauses reconciliations like everything else
    clock[0] += 29
    assert budget.spare(20, 0) == 0
