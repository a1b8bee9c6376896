"""Model and executor panels rendered from records made by the trainer's and executor's own
encoders (decoded back the way the dashboard reads them)."""

from cobstack.config import Settings
from cobstack.dashboard import views
from cobstack.dashboard.service import build, publish_status
from cobstack.dashboard.feeds import TrainFeed
from cobstack.dashboard.hub import Hub
from cobstack.dashboard.render import Renderer
from cobstack.executor import records as ex
from cobstack.trainer.records import decode_record, encode_record
from cobstack.trainer.signals import decode_signal, encode_signal, make_signal

T = 1_700_000_000_000_000_000
render = Renderer().panel


def signal(symbol: str, ts: int, probs: list[float]):
    return decode_signal(encode_signal(make_signal(symbol, ts, "1-0", ts - 4_000_000, "tiny-abc@400", 10, probs)))


def test_signals_panel_shows_the_newest_signal_per_symbol_and_the_recent_tape():
    newest_first = [signal("BTC-USD", T + 2, [0.1, 0.2, 0.7]), signal("ETH-USD", T + 1, [0.6, 0.3, 0.1]),
                    signal("BTC-USD", T, [0.7, 0.2, 0.1])]
    v = views.signals_view(newest_first)
    assert [(s["symbol"], s["action"]) for s in v["latest"]] == [("BTC-USD", "buy"), ("ETH-USD", "sell")]
    assert v["latest"][0]["lag"] == "4 ms" and v["latest"][0]["probs"] == ["10", "20", "70"]
    html = render("signals", v)
    assert html.count('class="act buy"') == 2 and "tiny-abc@400" in html and "not running" not in html


def pnl(ts: int, equity: float, halted=None, killed=None):
    return ex.decode(ex.encode(ex.record(
        ex.PNL, ts=ts, equity=equity, cash=9_000.0, realised=12.5, unrealised=-2.25, fees=1.5, peak=10_020.0,
        drawdown=10_020.0 - equity, halted=halted, killed=killed,
        marks={"BTC-USD": {"qty": 0.02, "mark": 60_000.5, "unrealised": -2.25}}, counters={"orders": 3, "blocked": 1})))


def test_account_panel_shows_equity_curve_and_risk_state():
    points = [(T / 1e9 + i, 10_000.0 + i) for i in range(5)]
    v = views.account_view(pnl(T, 10_004.0, halted="manual: operator"), points)
    # equity 10000..10004 padded by 5% of the range: the first (lowest) point sits 0.2/4.4 of 150 px up
    assert v["curve"]["lines"][0].split()[0] == f"0.0,{150 - 0.2 / 4.4 * 150:.1f}"
    html = render("account", v)
    assert "HALTED: manual: operator" in html and "10,004.00" in html and "<polyline" in html
    assert "60,000.50" in html and "blocked" in html
    assert "KILL SWITCH" in render("account", views.account_view(pnl(T, 9_000.0, killed="drawdown 1020 > 1000"), []))


def test_fills_orders_positions_and_risk_panels():
    fill = ex.decode(ex.encode(ex.record(
        ex.FILL, order_id="5-0", symbol="BTC-USD", venue="kraken-v1", side="buy", requested=0.02, qty=0.01,
        price=60_001.0, notional=600.01, fee=0.15, status="partial", reason="depth exhausted at limit",
        ts=T, decided_ts=T - 1, signal_ts=T - 2, expected_price=60_000.5, expected_slippage_bps=1.2,
        realised_slippage_bps=None)))
    html = render("fills", views.fills_view([fill]))
    assert "partial" in html and "depth exhausted at limit" in html and "1.20 / –" in html
    order = ex.decode(ex.encode(ex.record(
        ex.ORDER, id="5-0", symbol="BTC-USD", side="sell", requested=0.02, qty=0.02, ts=T, signal_ts=T - 1,
        model_version="m", confidence=0.8, ref_mid=60_000.0, limit=59_990.0, expected_price=59_999.0,
        expected_fee=0.3, expected_slippage_bps=0.9,
        children=[{"venue": "binance", "qty": 0.015}, {"venue": "coinbase", "qty": 0.005}])))
    assert "binance 0.0150, coinbase 0.0050" in render("orders", views.orders_view([order]))
    pos = ex.decode(ex.encode(ex.record(ex.POSITION, ts=T, symbol="BTC-USD", qty=-0.5, avg_cost=60_010.0,
                                        realised=3.0, fees=0.4, cash=1.0)))
    assert 'class="ask">-0.5000' in render("positions", views.positions_view({"BTC-USD": pos}))
    risk = ex.decode(ex.encode(ex.record(ex.RISK, ts=T, input_id="7-0", symbol="ETH-USD", rule="stale_book",
                                         reason="book 6.2 s old > 5 s", value=6.2, limit=5.0)))
    assert "stale_book" in render("risk", views.risk_view([risk]))


def test_empty_consumer_panels_name_the_component_and_how_to_start_it():
    for panel in ("signals", "train", "report"):
        assert "trainer not running" in render(panel, None) and "cobstack train" in render(panel, None)
    for panel, stream in (("account", "cob:exec:pnl"), ("fills", "cob:exec:fills"), ("risk", "cob:exec:risk")):
        html = render(panel, None)
        assert "executor not running" in html and "cobstack execute" in html and stream in html


def train_records() -> list[tuple[str, dict]]:
    """A short run as the trainer publishes it: collecting, progress, validation, a fold, RL."""
    def rec(kind, **fields):
        return decode_record(encode_record(kind, T, "BTC-USD", "tiny", fields))

    scores = {name: {"10": {"f1": f1, "mcc": mcc}} for name, f1, mcc in
              (("model", 0.61, 0.22), ("majority", 0.3, 0.0), ("persistence", 0.4, 0.05), ("logistic", 0.5, 0.12))}
    policies = {"dqn": {"pnl_bps": 12.5, "pnl_quote": 7.5, "trades": 14}, "always_flat": {"pnl_bps": 0.0, "pnl_quote": 0.0, "trades": 0},
                "buy_and_hold": {"pnl_bps": -3.0, "pnl_quote": -1.8, "trades": 1}}
    return [(str(i), r) for i, r in enumerate([
        rec("collecting", stream="cob:book:BTC-USD", have=100, need=2000),
        rec("progress", fold=0, step=10, steps=20, loss=1.1, samples_per_s=900.0, gpu_memory_bytes=None),
        rec("progress", fold=0, step=20, steps=20, loss=0.9, samples_per_s=950.0, gpu_memory_bytes=None),
        rec("validation", fold=0, step=20, val_loss=0.95, best_step=20),
        rec("fold", fold=0, split={}, steps=20, best_step=20, best_val_loss=0.95, decision_bias=[0, 0, 0], scores=scores),
        rec("rl", venue="binance", unit=0.01, taker_fee_bps=5.0, **policies),
        rec("serving", model_version="tiny-abc@20", horizon=10, signals_stream="cob:signals"),
    ])]


def test_training_panel_curves_fold_scores_and_rl_then_a_new_run_starts_new_curves():
    hub = Hub()
    feed = TrainFeed("cob:train:metrics", decode_record, "train", hub, Renderer())
    feed.handle(train_records())
    html = hub.latest["train"]
    assert "serving tiny-abc@20 (horizon 10)" in html and html.count("<polyline") == 2
    assert "h=10: 61.0% / 0.220" in html and "buy_and_hold" in html and "12.5" in html
    assert list(feed.loss) == [(10, 1.1), (20, 0.9)] and list(feed.val) == [(20, 0.95)]
    feed.handle(train_records()[:1])  # collecting again: a new run
    assert not feed.loss and not feed.folds and "collecting snapshots from cob:book:BTC-USD: 100 of 2,000" in hub.latest["train"]


def test_report_panel_compares_the_model_with_every_baseline_per_horizon():
    summary = {"10": {"model": {"f1": 0.61, "mcc": 0.22}, "majority": {"f1": 0.3, "mcc": 0.0},
                      "persistence": {"f1": 0.4, "mcc": 0.05}, "logistic": {"f1": 0.5, "mcc": 0.25},
                      "best_baseline": "logistic", "model_beats_baselines": False}}
    report = decode_record(encode_record("report", T, "BTC-USD", "tiny", {
        "generated_ns": T, "model_version": "tiny-abc@20", "symbol": "BTC-USD", "preset": "tiny", "params": 98_765,
        "data": {"snapshots_used": 4000}, "summary": summary, "folds": [{}], "rl": None, "anchors": "LOBCAST: 48-61% F1"}))
    html = Renderer().panel("report", views.report_view([report]))
    assert "98,765 parameters" in html and "61.0% / 0.220" in html and "50.0% / 0.250" in html
    assert "no (best: logistic)" in html and "LOBCAST" in html


def test_empty_panels_follow_their_writer_starting_and_data_replaces_them():
    dash = build(Settings())
    now = 1_800_000_000.0
    publish_status(dash, now)
    assert "executor not running" in dash.hub.latest["risk"]
    for feed in dash.components["executor"]:
        if feed.stream == "cob:exec:pnl":
            feed.last_entry = now - 1  # the executor published a second ago
    publish_status(dash, now)
    assert "the executor is running" in dash.hub.latest["risk"] and "risk" in dash.hub.placeholders
    dash.hub.publish("risk", "<table>data</table>")
    publish_status(dash, now + 500)  # the executor went quiet: data stays, it is not replaced
    assert dash.hub.latest["risk"] == "<table>data</table>" and "risk" not in dash.hub.placeholders
