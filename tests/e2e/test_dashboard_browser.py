"""The dashboard in a real browser (Debian chromium + Playwright) against real processes:
`cobstack ingest` on simulated venues and `cobstack dashboard`, sharing a redis-server.

Checks: the overview renders and every panel updates live; the numbers on screen are the
stream's numbers (read back from Redis by snapshot seq); the page recovers by itself after
the dashboard restarts; the model and executor pages show their not-running state.
Screenshots land in artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
import redis

from cobstack.bus.redis_streams import FIELD
from cobstack.core import schema
from cobstack.streams import book_stream

pytestmark = [pytest.mark.browser, pytest.mark.redis]

LIVE_TIMEOUT_MS = 20_000

# Everything read from the page in one evaluation, so the values belong to the same fragment.
READ_TOUCH = """() => {
  const stats = document.querySelector('[sse-swap="stats.BTC-USD"] [data-seq]');
  const ladder = document.querySelector('[sse-swap="ladder.BTC-USD"] [data-seq]');
  const f = (name) => stats.querySelector(`[data-field="${name}"]`);
  return {seq: +stats.dataset.seq, bid: f('best_bid').textContent, bid_value: +f('best_bid').dataset.value,
          ask: f('best_ask').textContent, mid: f('mid').textContent,
          ladder_seq: +ladder.dataset.seq,
          ladder_bid: ladder.querySelector('.px.bid').textContent,
          ladder_ask: [...ladder.querySelectorAll('.px.ask')].pop().textContent};
}"""

# Non-background pixels of the heatmap canvas: > 0 once columns were drawn.
HEATMAP_PIXELS = """() => {
  const c = document.getElementById('hm-BTC-USD');
  if (!c.width || !c.height) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 120) n++;
  return n;
}"""


def snapshots_by_seq(url: str, symbol: str, n: int = 300) -> dict[int, schema.Snapshot]:
    """The newest `n` snapshots of the symbol's stream, as the dashboard reads them."""
    client = redis.Redis.from_url(url)
    try:
        entries = client.xrevrange(book_stream(symbol), count=n)
    finally:
        client.close()
    snaps = (schema.decode_snapshot(fields[FIELD]) for _, fields in entries)
    return {s.seq: s for s in snaps}


def number(text: str) -> float:
    return float(text.replace(",", ""))


def wait_live(page) -> None:
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'",
                           timeout=LIVE_TIMEOUT_MS)


def wait_seq_beyond(page, panel: str, seq: int) -> None:
    page.wait_for_function(
        f"""() => {{ const el = document.querySelector('[sse-swap="{panel}"] [data-seq]');
                   return el && +el.dataset.seq > {seq}; }}""", timeout=LIVE_TIMEOUT_MS)


def test_overview_renders_and_every_panel_updates_live(stack, page, screenshot):
    page.goto(stack.url + "/book/BTC-USD")
    wait_live(page)
    page.wait_for_selector('[sse-swap="ladder.BTC-USD"] .lad .row', timeout=LIVE_TIMEOUT_MS)
    seqs = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('[sse-swap] [data-seq]')]
                            .map(el => [el.closest('[sse-swap]').getAttribute('sse-swap'), +el.dataset.seq]))""")
    assert {"ladder.BTC-USD", "stats.BTC-USD", "venues.BTC-USD", "profile.BTC-USD", "heatmap.BTC-USD"} <= seqs.keys()
    for panel, seq in seqs.items():
        wait_seq_beyond(page, panel, seq)
    page.wait_for_function(HEATMAP_PIXELS, timeout=LIVE_TIMEOUT_MS)
    page.wait_for_selector('[sse-swap="trades.BTC-USD"] table.tape tr.buy, [sse-swap="trades.BTC-USD"] table.tape tr.sell',
                           timeout=LIVE_TIMEOUT_MS)
    health = page.locator('[sse-swap="health"] table tr').all_inner_texts()
    assert sum(v in row for row in health for v in ("binance", "coinbase", "kraken-v1")) == 3
    assert page.locator(".status-strip .ok", has_text="ingest").count() == 1
    screenshot(page, "overview-BTC-USD")
    assert page.js_errors == []


def test_numbers_on_screen_are_the_streams_numbers(stack, page):
    page.goto(stack.url + "/book/BTC-USD")
    wait_live(page)
    page.wait_for_selector('[sse-swap="stats.BTC-USD"] [data-field="best_bid"]', timeout=LIVE_TIMEOUT_MS)
    for _ in range(3):  # three different moments of the live page
        shown = page.evaluate(READ_TOUCH)
        snaps = snapshots_by_seq(stack.redis.url, "BTC-USD")
        snap = snaps[shown["seq"]]
        f = snap.features
        assert shown["bid_value"] == f.best_bid
        assert number(shown["bid"]) == round(f.best_bid, 2)
        assert number(shown["ask"]) == round(f.best_ask, 2)
        assert number(shown["mid"]) == round(f.mid, 2)
        lad = snaps[shown["ladder_seq"]].ladder
        assert number(shown["ladder_bid"]) == round(lad.bids[0].price, 2)
        assert number(shown["ladder_ask"]) == round(lad.asks[0].price, 2)
        wait_seq_beyond(page, "stats.BTC-USD", shown["seq"])


def test_page_recovers_by_itself_after_the_dashboard_restarts(stack, page, screenshot):
    page.goto(stack.url + "/book/ETH-USD")
    wait_live(page)
    page.wait_for_selector('[sse-swap="stats.ETH-USD"] [data-seq]', timeout=LIVE_TIMEOUT_MS)
    stack.dashboard.stop()
    page.wait_for_function("() => document.getElementById('conn').textContent === 'reconnecting'",
                           timeout=LIVE_TIMEOUT_MS)
    before = page.evaluate("() => +document.querySelector('[sse-swap=\"stats.ETH-USD\"] [data-seq]').dataset.seq")
    screenshot(page, "overview-ETH-USD-server-down")
    stack.dashboard.start()
    stack.wait_dashboard()
    wait_live(page)
    wait_seq_beyond(page, "stats.ETH-USD", before)
    wait_seq_beyond(page, "ladder.ETH-USD", before)
    screenshot(page, "overview-ETH-USD-recovered")
    assert page.js_errors == []


@pytest.mark.parametrize("path, component, command", [
    ("/model", "trainer", "cobstack train"), ("/executor", "executor", "cobstack execute")])
def test_consumer_pages_say_their_component_is_not_running(stack, page, screenshot, path, component, command):
    page.goto(stack.url + path)
    wait_live(page)
    empty = page.locator(".empty").first
    assert f"{component} not running" in empty.inner_text() and command in empty.inner_text()
    screenshot(page, path.strip("/") + "-not-running")
    assert page.js_errors == []
