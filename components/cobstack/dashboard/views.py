"""Pure view models: decoded stream records in, the dicts the panel templates render out.

Nothing here recomputes what ingest publishes: ladder, buckets, features, profile and venue
status are taken as they are; views only choose rows, scale bars and format numbers. Every
panel that shows a snapshot carries its timestamps (`stamp`) so the browser can measure
venue frame -> DOM latency and flag a panel that stopped updating.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

from ..core.schema import HealthRecord, Row, Snapshot, TradeRecord

# -- formatting ---------------------------------------------------------------------------


def price_decimals(price: float | None) -> int:
    if price is None or not math.isfinite(price) or abs(price) >= 1:
        return 2
    return 4 if abs(price) >= 0.01 else 8


def fmt_price(price: float | None, dp: int) -> str:
    return "–" if price is None else f"{price:,.{dp}f}"


def fmt_size(size: float | None) -> str:
    if size is None:
        return "–"
    a = abs(size)
    if a >= 1000:
        return f"{size:,.0f}"
    if a >= 10:
        return f"{size:,.2f}"
    return f"{size:.4f}"


def fmt_signed(x: float | None, dp: int = 3) -> str:
    return "–" if x is None else f"{x:+.{dp}f}"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{ms / 60_000:.0f} min"


def fmt_clock(ts_ns: int) -> str:
    """UTC wall clock with milliseconds, e.g. 14:03:07.123."""
    s = ts_ns / 1e9
    return time.strftime("%H:%M:%S", time.gmtime(s)) + f".{int(s * 1000) % 1000:03d}"


def stamp(snap: Snapshot) -> dict:
    """The timestamps every snapshot panel carries, epoch seconds: `recv_ts` when ingest
    received the newest venue frame in it (latency is measured from it), `ts` when ingest
    published it (staleness is judged by it)."""
    return {"recv_ts": None if snap.recv_ts is None else f"{snap.recv_ts / 1e9:.3f}",
            "ts": f"{snap.ts / 1e9:.3f}", "seq": snap.seq, "clock": fmt_clock(snap.ts)}


# -- overview panels ------------------------------------------------------------------------


def _ladder_row(r: Row, top: float, dp: int, venues: Sequence[str]) -> dict:
    return {
        "price": fmt_price(r.price, dp), "value": r.price, "size": fmt_size(r.total),
        "segments": [(i, s / top * 100) for i, s in enumerate(r.sizes) if s > 0],
        "tip": " · ".join(f"{venues[i]} {fmt_size(s)}" for i, s in enumerate(r.sizes) if s > 0),
    }


def ladder_view(snap: Snapshot, levels: int) -> dict:
    """Top `levels` per side, asks above bids, each venue's share of every level as a bar
    segment scaled to the largest level shown."""
    bids, asks = snap.ladder.bids[:levels], snap.ladder.asks[:levels]
    top = max((r.total for r in (*bids, *asks)), default=0.0) or 1.0
    f = snap.features
    dp = price_decimals(f.mid)
    return {
        "stamp": stamp(snap), "venues": snap.venues, "empty": not bids and not asks,
        "asks": [_ladder_row(r, top, dp, snap.venues) for r in reversed(asks)],
        "bids": [_ladder_row(r, top, dp, snap.venues) for r in bids],
        "spread": fmt_price(f.spread, dp), "spread_bps": "–" if f.spread_bps is None else f"{f.spread_bps:.2f}",
        "crossed": f.crossed,
    }


def stats_view(snap: Snapshot) -> dict:
    f = snap.features
    dp = price_decimals(f.mid)
    lean = None if f.microprice is None or not f.mid else (f.microprice - f.mid) / f.mid * 1e4
    return {
        "stamp": stamp(snap), "crossed": f.crossed,
        "best_bid": fmt_price(f.best_bid, dp), "best_bid_value": f.best_bid, "bid_size": fmt_size(f.bid_size),
        "best_ask": fmt_price(f.best_ask, dp), "best_ask_value": f.best_ask, "ask_size": fmt_size(f.ask_size),
        "mid": fmt_price(f.mid, dp), "mid_value": f.mid,
        "spread": fmt_price(f.spread, dp), "spread_bps": "–" if f.spread_bps is None else f"{f.spread_bps:.2f}",
        "microprice": fmt_price(f.microprice, dp), "weighted_mid": fmt_price(f.weighted_mid, dp),
        "lean_bps": "–" if lean is None else f"{lean:+.2f}",
        "imbalance": [{"levels": n, "value": fmt_signed(v), "pct": 0.0 if v is None else abs(v) * 50,
                       "side": "bid" if (v or 0) >= 0 else "ask"} for n, v in sorted(f.imbalance.items())],
        "ofi": fmt_signed(f.ofi, 4), "ofi_norm": fmt_signed(f.ofi_norm), "ofi_steps": f.ofi_steps,
        "ofi_side": "bid" if f.ofi >= 0 else "ask",
    }


def venues_view(snap: Snapshot) -> dict:
    """Each venue's best bid/ask (USD), its age, and how far it sits from the consolidated touch."""
    f = snap.features
    dp = price_decimals(f.mid)
    rows = []
    for i, s in enumerate(snap.status):
        rows.append({
            "index": i, "venue": s.venue, "state": s.state, "included": s.included,
            "reason": s.reason or "", "quote": s.quote or "–", "rate_source": s.rate_source,
            "bid": fmt_price(s.bid, dp), "ask": fmt_price(s.ask, dp), "age": fmt_ms(s.age_ms),
            "best_bid": s.bid is not None and s.bid == f.best_bid,
            "best_ask": s.ask is not None and s.ask == f.best_ask,
            "bid_off_bps": _off_bps(f.best_bid, s.bid), "ask_off_bps": _off_bps(s.ask, f.best_ask),
        })
    return {"stamp": stamp(snap), "rows": rows}


def _off_bps(better: float | None, worse: float | None) -> str:
    if better is None or worse is None or not better:
        return ""
    return f"{(better - worse) / better * 1e4:.1f}"


def heatmap_column(snap: Snapshot, slot_s: float) -> dict | None:
    """One time column of the liquidity heatmap: total resting size per price bucket.
    `t` is the start of the snapshot's time slot, so later snapshots in the same slot
    replace the column rather than add one. None while the book has no buckets."""
    b = snap.buckets
    if not b.size or not (b.bids or b.asks):
        return None
    return {
        "t": round(math.floor(snap.ts / 1e9 / slot_s) * slot_s, 6), "step": b.size,
        "b0": b.bids[0].price if b.bids else None, "a0": b.asks[0].price if b.asks else None,
        "bids": [_sig(r.total) for r in b.bids], "asks": [_sig(r.total) for r in b.asks],
        "mid": snap.features.mid, "dp": price_decimals(snap.features.mid),
    }


def _sig(x: float) -> float:
    """Four significant digits: plenty for a colour, a third of the bytes."""
    return float(f"{x:.4g}")


def heatmap_view(snap: Snapshot, columns: Sequence[dict]) -> dict:
    return {"stamp": stamp(snap), "columns": list(columns), "canvas": f"hm-{snap.symbol}"}


def profile_view(snap: Snapshot, max_rows: int) -> dict:
    """The session volume profile, highest price first, at most `max_rows` rows centred on
    the bucket holding the mid (or the POC while the book is empty)."""
    p = snap.profile
    mid = snap.features.mid
    levels = sorted(p.levels, key=lambda lv: lv.price, reverse=True)
    dp = price_decimals(mid)
    if len(levels) > max_rows:
        anchor = mid if mid is not None else p.poc
        centre = min(range(len(levels)), key=lambda i: abs(levels[i].price - anchor)) if anchor is not None else 0
        start = max(0, min(len(levels) - max_rows, centre - max_rows // 2))
        levels = levels[start:start + max_rows]
    top = max((lv.buy + lv.sell for lv in levels), default=0.0) or 1.0
    rows = [{
        "price": fmt_price(lv.price, dp), "total": fmt_size(lv.buy + lv.sell),
        "buy_pct": lv.buy / top * 100, "sell_pct": lv.sell / top * 100,
        "poc": p.poc is not None and lv.price == p.poc,
        "in_va": p.va_low is not None and p.va_high is not None and p.va_low <= lv.price <= p.va_high,
        "at_mid": mid is not None and lv.price <= mid < lv.price + p.bucket,
    } for lv in levels]
    total = p.buy_volume + p.sell_volume
    return {
        "stamp": stamp(snap), "rows": rows, "poc": fmt_price(p.poc, dp),
        "va_low": fmt_price(p.va_low, dp), "va_high": fmt_price(p.va_high, dp),
        "volume": fmt_size(total), "buy_share": f"{p.buy_volume / total * 100:.0f}" if total else "–",
        "session": time.strftime("%m-%d %H:%M", time.gmtime(p.session_start / 1e9)) if p.session_start else "–",
        "bucket": fmt_price(p.bucket, 2),
    }


def trades_view(trades: Iterable[TradeRecord], venues: Sequence[str]) -> dict:
    """Newest first. Prices stay in the venue's own quote (as traded), which is labelled."""
    rows = []
    for t in trades:
        rows.append({"clock": fmt_clock(t.ts), "venue": t.venue, "index": _index(venues, t.venue),
                     "side": t.side, "price": fmt_price(t.price, price_decimals(t.price)),
                     "quote": "" if t.quote == "USD" else t.quote, "size": fmt_size(t.size)})
    return {"rows": rows}


def _index(venues: Sequence[str], venue: str) -> int:
    return venues.index(venue) if venue in venues else len(venues)


def health_view(h: HealthRecord, venues: Sequence[str]) -> dict:
    rows = []
    for v in h.venues:
        down = sorted(f"{n}: {s}" for n, s in v.instruments.items() if s != "live")
        rows.append({
            "venue": v.venue, "index": _index(venues, v.venue), "state": v.state, "ok": v.state == "live",
            "instruments": f"{len(v.instruments) - len(down)}/{len(v.instruments)} live",
            "down": ", ".join(down), "lag": fmt_ms(v.lag_ms), "last_msg": fmt_ms(v.last_message_age_ms),
            "messages": f"{v.messages:,}", "resyncs": v.resyncs, "gaps": v.gaps,
            "checksum_failures": v.checksum_failures, "rejected": sum(v.rejected.values()),
            "rejected_kinds": ", ".join(f"{k} {n}" for k, n in sorted(v.rejected.items())),
        })
    return {"ts": f"{h.ts / 1e9:.3f}", "clock": fmt_clock(h.ts), "rows": rows,
            "bus": h.bus.state, "bus_detail": h.bus.detail}


# Seconds without a new entry after which a component counts as not running: ingest
# republishes every symbol at least once a second; the others publish as they work.
QUIET_S = {"ingest": 3.0, "trainer": 60.0, "executor": 60.0}
START_HINT = {"ingest": "cobstack ingest", "trainer": "cobstack train", "executor": "cobstack execute"}


def status_view(now: float, last_seen: dict[str, float | None], bus_error: str | None) -> dict:
    """One line per component: running (with the age of its newest entry) or not, and why."""
    items = []
    for name, seen in last_seen.items():
        age = None if seen is None else max(0.0, now - seen)
        running = age is not None and age <= QUIET_S.get(name, 60.0)
        items.append({"name": name, "running": running, "age": fmt_ms(None if age is None else age * 1000),
                      "hint": START_HINT.get(name, ""), "never": seen is None})
    return {"components": items, "bus_error": bus_error}


# -- model page (trainer streams) ----------------------------------------------------------


def signals_view(signals: Sequence) -> dict:
    """Newest signal per symbol (action, class probabilities, model, how old its snapshot
    was when the model answered) and the recent signals, newest first."""
    latest: dict[str, dict] = {}
    rows = []
    for s in signals:
        row = {"symbol": s.symbol, "action": s.action, "confidence": f"{s.confidence:.2f}",
               "probs": [f"{p * 100:.0f}" for p in s.probs], "model": s.model_version,
               "horizon": s.horizon, "clock": fmt_clock(s.ts), "lag": fmt_ms((s.ts - s.source_ts) / 1e6)}
        latest.setdefault(s.symbol, row)
        rows.append(row)
    return {"ts": f"{signals[0].ts / 1e9:.3f}" if signals else None,
            "latest": [latest[k] for k in sorted(latest)], "rows": rows}


# -- executor page --------------------------------------------------------------------------


def fmt_money(x: float | None) -> str:
    return "–" if x is None else f"{x:,.2f}"


def chart(lines: Sequence[Sequence[tuple[float, float]]], width: int = 600, height: int = 150) -> dict | None:
    """SVG polylines of (x, y) points on one shared scale in a width x height box (y up),
    with the y range; None until some line has two points."""
    pts = [p for line in lines for p in line]
    if not any(len(line) >= 2 for line in lines):
        return None
    x0, x1 = min(x for x, _ in pts), max(x for x, _ in pts)
    lo, hi = min(y for _, y in pts), max(y for _, y in pts)
    pad = (hi - lo) * 0.05 or max(abs(hi) * 1e-4, 1e-9)
    lo, hi = lo - pad, hi + pad
    sx, sy = width / ((x1 - x0) or 1), height / (hi - lo)
    polylines = [" ".join(f"{(x - x0) * sx:.1f},{height - (y - lo) * sy:.1f}" for x, y in line) for line in lines]
    return {"lines": polylines, "width": width, "height": height, "lo": lo, "hi": hi, "x0": x0, "x1": x1}


def account_view(p, curve_points: Sequence[tuple[float, float]]) -> dict:
    """The account from the newest PnL record, its equity curve and the risk state."""
    return {
        "ts": f"{p.ts / 1e9:.3f}", "clock": fmt_clock(p.ts),
        "equity": fmt_money(p.equity), "cash": fmt_money(p.cash), "realised": fmt_money(p.realised),
        "unrealised": fmt_money(p.unrealised), "fees": fmt_money(p.fees), "peak": fmt_money(p.peak),
        "drawdown": fmt_money(p.drawdown), "pnl_side": "bid" if p.realised + p.unrealised - p.fees >= 0 else "ask",
        "halted": p.halted, "killed": p.killed,
        "marks": [{"symbol": sym, "qty": fmt_size(m.get("qty")), "mark": fmt_price(m.get("mark"), price_decimals(m.get("mark"))),
                   "unrealised": fmt_money(m.get("unrealised"))} for sym, m in sorted(p.marks.items())],
        "counters": sorted(p.counters.items()),
        "curve": chart([curve_points]),
        "curve_from": fmt_clock(int(curve_points[0][0] * 1e9)) if curve_points else "",
        "curve_to": fmt_clock(int(curve_points[-1][0] * 1e9)) if curve_points else "",
    }


def positions_view(latest: dict) -> dict:
    rows = [{"symbol": r.symbol, "qty": fmt_size(r.qty), "side": "bid" if r.qty > 0 else "ask" if r.qty < 0 else "dim",
             "avg_cost": fmt_price(r.avg_cost, price_decimals(r.avg_cost)), "realised": fmt_money(r.realised),
             "fees": fmt_money(r.fees), "clock": fmt_clock(r.ts)} for _, r in sorted(latest.items())]
    return {"rows": rows}


def orders_view(orders: Sequence) -> dict:
    return {"rows": [{
        "clock": fmt_clock(o.ts), "symbol": o.symbol, "side": o.side, "qty": fmt_size(o.qty),
        "requested": fmt_size(o.requested), "price": fmt_price(o.expected_price, price_decimals(o.expected_price)),
        "slippage": f"{o.expected_slippage_bps:.2f}", "confidence": f"{o.confidence:.2f}",
        "venues": ", ".join(f"{c.get('venue')} {fmt_size(c.get('qty'))}" for c in o.children),
    } for o in orders]}


def fills_view(fills: Sequence) -> dict:
    return {"rows": [{
        "clock": fmt_clock(f.ts), "symbol": f.symbol, "venue": f.venue, "side": f.side, "status": f.status,
        "qty": fmt_size(f.qty), "requested": fmt_size(f.requested),
        "price": fmt_price(f.price, price_decimals(f.price)), "fee": fmt_money(f.fee),
        "expected": f"{f.expected_slippage_bps:.2f}",
        "realised": "–" if f.realised_slippage_bps is None else f"{f.realised_slippage_bps:.2f}",
        "reason": f.reason or "",
    } for f in fills]}


def risk_view(events: Sequence) -> dict:
    return {"rows": [{"clock": fmt_clock(r.ts), "symbol": r.symbol or "–", "rule": r.rule, "reason": r.reason}
                     for r in events]}


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{x * 100:.1f}%"


def _status(last: dict | None) -> str:
    """One line on what the trainer is doing, from its newest record."""
    if last is None:
        return ""
    kind = last["kind"]
    if kind == "collecting":
        return f"collecting snapshots from {last['stream']}: {last['have']:,} of {last['need']:,}"
    if kind == "progress":
        gpu = last.get("gpu_memory_bytes")
        return (f"training fold {last['fold'] + 1}, step {last['step']:,}/{last['steps']:,} · loss {last['loss']:.4f} · "
                f"{last['samples_per_s']:,.0f} samples/s" + (f" · GPU {gpu / 2**30:.2f} GiB" if gpu else ""))
    if kind == "validation":
        return f"fold {last['fold'] + 1} step {last['step']:,}: validation loss {last['val_loss']:.4f} (best at step {last['best_step']:,})"
    if kind == "resumed":
        return f"resumed fold {last['fold'] + 1} at step {last['step']:,} from its checkpoint"
    if kind == "serving":
        return f"serving {last['model_version']} (horizon {last['horizon']}) → {last['signals_stream']}"
    if kind == "error":
        return f"error: {last.get('message', last)}"
    return f"{kind} done"


def train_view(last: dict | None, loss: Sequence[tuple[float, float]], val: Sequence[tuple[float, float]],
               folds: Sequence[dict], rl: dict | None) -> dict:
    """Training progress: status, loss curves (train, validation) by global step, the
    out-of-sample scores of each finished fold, and the RL result."""
    return {
        "clock": fmt_clock(last["ts"]) if last else "",
        "status": _status(last), "error": last is not None and last["kind"] == "error",
        "symbol": last["symbol"] if last else "", "preset": last["preset"] if last else "",
        "chart": chart([loss, val]),
        "folds": [{"fold": f["fold"] + 1, "steps": f["steps"], "best_step": f["best_step"],
                   "best_val_loss": f"{f['best_val_loss']:.4f}",
                   "horizons": [(h, _pct(s["f1"]), f"{s['mcc']:.3f}") for h, s in f["scores"]["model"].items()]}
                  for f in folds],
        "rl": _rl_rows(rl),
    }


def _rl_rows(rl: dict | None) -> list[dict]:
    if not rl:
        return []
    return [{"policy": name, "pnl_bps": f"{rl[name]['pnl_bps']:.1f}", "pnl_quote": fmt_money(rl[name]["pnl_quote"]),
             "trades": rl[name]["trades"]} for name in ("dqn", "always_flat", "buy_and_hold") if name in rl]


def report_view(reports: Sequence[dict]) -> dict:
    """The newest evaluation report: per horizon, the model against every baseline out of sample."""
    r = reports[0]
    baselines = [b for b in ("majority", "persistence", "logistic") if all(b in row for row in r["summary"].values())]
    rows = [{"horizon": h, "model_f1": _pct(row["model"]["f1"]), "model_mcc": f"{row['model']['mcc']:.3f}",
             "baselines": [(_pct(row[b]["f1"]), f"{row[b]['mcc']:.3f}") for b in baselines],
             "beats": row["model_beats_baselines"], "best": row["best_baseline"]} for h, row in r["summary"].items()]
    return {"clock": fmt_clock(r["generated_ns"]), "model": r["model_version"],
            "symbol": r["symbol"], "preset": r["preset"], "params": f"{r['params']:,}",
            "snapshots": f"{r['data']['snapshots_used']:,}", "folds": len(r["folds"]), "baselines": baselines,
            "rows": rows, "rl": _rl_rows(r.get("rl")), "anchors": r["anchors"]}
