"""Decisions: a signal, a control command or the clock in; ledger changes and records out.

Pure apart from mutating the ledger it is given: no I/O, time comes in as `now` (ns). The
service (service.py) feeds it the inputs of one batch, then commits the ledger and the
records in one atomic step, so every decision here happens exactly once.

A signal goes through, in order: kill switch, manual halt, stale signal, book present and
fresh, sizing (target position minus exposure), routing, then the order, position and
per-minute notional limits. The first rule that says no blocks it, with a risk record.
Limits allow a value equal to the limit and block anything beyond it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import ExecutorSettings
from ..core.schema import SchemaError
from ..streams import (EXEC_FILLS_STREAM, EXEC_ORDERS_STREAM, EXEC_PNL_STREAM, EXEC_POSITIONS_STREAM,
                       EXEC_RISK_STREAM)
from ..trainer.signals import Signal, decode_signal
from . import records
from .fills import BUY, EPS, NO_FILL, SELL, slippage_bps, walk_book
from .ledger import InFlight, Ledger
from .records import CONTROL, FILL, ORDER, PNL, POSITION, RISK, record
from .routing import Market, route

Output = tuple[str, dict]  # (stream, record)
_REL = 1e-9  # limits compare with this relative slack so a value equal to its limit passes


def over(value: float, limit: float) -> bool:
    """Is `value` beyond `limit`? Equal (up to float rounding) is within it."""
    return value > limit * (1 + _REL) + _REL


class Engine:
    def __init__(self, cfg: ExecutorSettings, symbols: list[str]) -> None:
        self.cfg = cfg
        self.symbols = set(symbols)
        self.fees = {v: bps / 1e4 for v, bps in cfg.taker_fee_bps.items()}
        self.default_fee = cfg.default_taker_fee_bps / 1e4
        self.latency_ns = {v: round(ms * 1e6) for v, ms in cfg.latency_ms.items()}
        self.default_latency_ns = round(cfg.default_latency_ms * 1e6)

    # --- inputs -----------------------------------------------------------------------------

    def on_signal(self, ledger: Ledger, input_id: str, data: bytes, markets: Mapping[str, Market],
                  now: int) -> list[Output]:
        ledger.count("signals")
        try:
            sig = decode_signal(data)
        except SchemaError as e:
            ledger.count("rejected")
            return [self._risk(ledger, now, input_id, None, "bad_signal", f"undecodable signal: {e}")]
        return self._decide(ledger, input_id, sig, markets, now)

    def on_control(self, ledger: Ledger, input_id: str, data: bytes, markets: Mapping[str, Market],
                   now: int) -> list[Output]:
        try:
            cmd = records.decode(data)
            if cmd.kind != CONTROL:
                raise SchemaError(f"expected a control record, got {cmd.kind!r}")
            if cmd.command not in records.COMMANDS:
                raise SchemaError(f"control.command: expected one of {records.COMMANDS}, got {cmd.command!r}")
        except SchemaError as e:
            ledger.count("rejected")
            return [self._risk(ledger, now, input_id, None, "bad_control", f"undecodable control command: {e}")]
        if cmd.command == "halt":
            ledger.halted = cmd.reason or "manual halt"
            return [self._risk(ledger, now, input_id, None, "halt", f"manual halt: {ledger.halted}")]
        cleared = [what for what in (ledger.halted and "halt", ledger.killed and "kill switch") if what]
        ledger.halted = ledger.killed = None
        ledger.peak_equity = ledger.equity(_marks(markets))[0]  # drawdown counts from here on
        return [self._risk(ledger, now, input_id, None, "resumed",
                           f"resumed ({cmd.reason or 'no reason given'}); cleared: {', '.join(cleared) or 'nothing'}")]

    # --- a signal ---------------------------------------------------------------------------

    def _decide(self, ledger: Ledger, input_id: str, sig: Signal, markets: Mapping[str, Market],
                now: int) -> list[Output]:
        cfg, sym = self.cfg, sig.symbol

        def block(rule: str, reason: str, value: float | None = None, limit: float | None = None) -> list[Output]:
            ledger.count("blocked")
            return [self._risk(ledger, now, input_id, sym, rule, reason, value, limit)]

        if sym not in self.symbols:
            return block("unknown_symbol", f"signal for {sym}, which this executor does not trade "
                                           f"({', '.join(sorted(self.symbols))})")
        out = self._check_drawdown(ledger, markets, now, input_id)
        if ledger.killed:
            return out + block("killed", f"kill switch is on ({ledger.killed}); send `resume` to trade again")
        if ledger.halted:
            return block("halted", f"manually halted ({ledger.halted}); send `resume` to trade again")
        age_ms = (now - sig.source_ts) / 1e6
        if over(age_ms, cfg.stale_signal_ms):
            return block("stale_signal", f"signal's snapshot is {age_ms:.0f} ms old, limit {cfg.stale_signal_ms} ms",
                         age_ms, cfg.stale_signal_ms)
        m = markets.get(sym)
        if m is None:
            return block("no_book", f"no {sym} snapshot yet")
        book_ms = (now - m.ts) / 1e6
        if over(book_ms, cfg.stale_book_ms):
            return block("stale_book", f"latest {sym} snapshot is {book_ms:.0f} ms old, limit {cfg.stale_book_ms} ms",
                         book_ms, cfg.stale_book_ms)
        if not m.books:
            flagged = "; ".join(f"{v}: {why}" for v, why in m.flagged.items())
            return block("flagged_book", f"no {sym} venue book fit to trade ({flagged or 'no venues'})")
        if m.mid is None:
            return block("no_book", f"the {sym} book is one-sided: no mid to size and limit an order")

        direction = sig.direction if sig.confidence >= cfg.min_confidence else 0
        if direction == 0:
            ledger.count("holds")
            return out
        exposure = ledger.exposure(sym)
        delta = direction * cfg.target_notional / m.mid - exposure
        if abs(delta) * m.mid < max(cfg.min_order_notional, EPS):
            ledger.count("at_target")
            return out
        side = BUY if delta > 0 else SELL
        slip = cfg.max_slippage_bps / 1e4
        limit = m.mid * (1 + slip) if side == BUY else m.mid * (1 - slip)
        books = list(m.books.values())
        r = route(books, side, abs(delta), limit)
        if r.qty <= 0:
            return block("no_liquidity", f"no {sym} depth to {side} within {cfg.max_slippage_bps} bps of the mid "
                                         f"({limit:.2f}) on {', '.join(m.books)}")
        if over(r.notional, cfg.max_order_notional):
            return block("max_order_notional", f"order notional {r.notional:.2f} USD exceeds "
                                               f"{cfg.max_order_notional:.2f}", r.notional, cfg.max_order_notional)
        after = abs(exposure + (r.qty if side == BUY else -r.qty)) * m.mid
        if over(after, cfg.max_position_notional):
            return block("max_position", f"{sym} position would be {after:.2f} USD at the mid, limit "
                                         f"{cfg.max_position_notional:.2f}", after, cfg.max_position_notional)
        now_s = now // 1_000_000_000
        minute = ledger.recent_notional(now_s) + r.notional
        if over(minute, cfg.max_notional_per_minute):
            return block("max_notional_per_minute", f"{minute:.2f} USD routed over 60 s with this order, limit "
                                                    f"{cfg.max_notional_per_minute:.2f}", minute, cfg.max_notional_per_minute)

        ledger.add_notional(now_s, r.notional)
        ledger.count("orders")
        children = []
        for c in r.children:
            due = now + self.latency_ns.get(c.venue, self.default_latency_ns)
            ledger.inflight.append(InFlight(input_id, sym, c.venue, side, c.qty, c.limit, due, now, sig.ts,
                                            m.mid, c.notional / c.qty, c.fee))
            children.append({"venue": c.venue, "qty": c.qty, "limit": c.limit, "price": c.notional / c.qty,
                             "fee": c.fee, "due": due})
        expected = (r.notional + r.fee) / r.qty if side == BUY else (r.notional - r.fee) / r.qty
        out.append((EXEC_ORDERS_STREAM, record(
            ORDER, id=input_id, symbol=sym, side=side, requested=abs(delta), qty=r.qty, ts=now, signal_ts=sig.ts,
            model_version=sig.model_version, confidence=sig.confidence, ref_mid=m.mid, limit=limit,
            expected_price=r.notional / r.qty, expected_fee=r.fee,
            expected_slippage_bps=slippage_bps(side, expected, m.mid), children=children)))
        return out

    # --- the clock --------------------------------------------------------------------------

    def fill_due(self, ledger: Ledger, markets: Mapping[str, Market], now: int) -> list[Output]:
        """Fill every child order that has reached its venue, against that venue's book in the
        latest snapshot; then one position record per symbol that traded."""
        due = [o for o in ledger.inflight if o.due <= now]
        if not due:
            return []
        ledger.inflight = [o for o in ledger.inflight if o.due > now]
        out: list[Output] = []
        traded: dict[str, int] = {}
        for o in due:
            fill, reason = self._arrive(o, markets)
            ledger.book_fill(o.symbol, o.side, fill)
            ledger.count("fills" if fill.qty > 0 else "unfilled")
            status = "unfilled" if fill.qty <= 0 else "filled" if fill.qty >= o.qty * (1 - _REL) else "partial"
            if status == "partial":
                reason = f"{o.venue} depth within the limit {o.limit} ran out after {fill.qty:g} of {o.qty:g}"
            exp_eff = (o.expected_price * o.qty + (o.expected_fee if o.side == BUY else -o.expected_fee)) / o.qty
            eff = fill.effective_price(o.side)
            out.append((EXEC_FILLS_STREAM, record(
                FILL, order_id=o.order_id, symbol=o.symbol, venue=o.venue, side=o.side, requested=o.qty,
                qty=fill.qty, price=fill.avg_price, notional=fill.notional, fee=fill.fee, status=status,
                reason=reason, ts=o.due, decided_ts=o.decided, signal_ts=o.signal_ts,
                expected_price=o.expected_price, expected_slippage_bps=slippage_bps(o.side, exp_eff, o.ref_mid),
                realised_slippage_bps=None if eff is None else slippage_bps(o.side, eff, o.ref_mid))))
            if fill.qty > 0:
                traded[o.symbol] = o.due
        for sym, ts in traded.items():
            p = ledger.positions[sym]
            out.append((EXEC_POSITIONS_STREAM, record(
                POSITION, ts=ts, symbol=sym, qty=p.qty, avg_cost=p.avg_cost, realised=p.realised, fees=p.fees,
                cash=ledger.cash)))
        return out

    def _arrive(self, o: InFlight, markets: Mapping[str, Market]) -> tuple:
        m = markets.get(o.symbol)
        book = m.books.get(o.venue) if m else None
        if book is None:
            why = m.flagged.get(o.venue, "not in the latest snapshot") if m else "no snapshot"
            return NO_FILL, f"{o.venue} book unusable at arrival: {why}"
        age_ms = (o.due - m.ts) / 1e6
        if over(age_ms, self.cfg.stale_book_ms):
            return NO_FILL, f"{o.symbol} snapshot {age_ms:.0f} ms old at arrival, limit {self.cfg.stale_book_ms} ms"
        fill = walk_book(book.side(o.side), o.side, o.qty, book.fee, o.limit)
        return fill, None if fill.qty > 0 else f"{o.venue} book has nothing within the limit {o.limit} at arrival"

    def mark(self, ledger: Ledger, markets: Mapping[str, Market], now: int) -> list[Output]:
        """Mark to market: the PnL record, and the kill switch if the drawdown is past its limit."""
        out = self._check_drawdown(ledger, markets, now, "")
        marks = _marks(markets)
        equity, unrealised = ledger.equity(marks)
        out.append((EXEC_PNL_STREAM, record(
            PNL, ts=now, equity=equity, cash=ledger.cash, unrealised=unrealised,
            realised=sum(p.realised for p in ledger.positions.values()),
            fees=sum(p.fees for p in ledger.positions.values()), peak=ledger.peak_equity,
            drawdown=ledger.peak_equity - equity, halted=ledger.halted, killed=ledger.killed,
            marks={s: {"qty": p.qty, "mark": marks.get(s), "unrealised": p.unrealised(marks.get(s))}
                   for s, p in ledger.positions.items()},
            counters=dict(ledger.counters))))
        return out

    def _check_drawdown(self, ledger: Ledger, markets: Mapping[str, Market], now: int,
                        input_id: str) -> list[Output]:
        equity, _ = ledger.equity(_marks(markets))
        ledger.peak_equity = max(ledger.peak_equity, equity)
        drawdown = ledger.peak_equity - equity
        if ledger.killed or not over(drawdown, self.cfg.max_drawdown):
            return []
        ledger.killed = f"drawdown {drawdown:.2f} USD from peak equity {ledger.peak_equity:.2f}"
        return [self._risk(ledger, now, input_id, None, "kill_switch",
                           f"kill switch fired: {ledger.killed} exceeds {self.cfg.max_drawdown:.2f}",
                           drawdown, self.cfg.max_drawdown)]

    def _risk(self, ledger: Ledger, now: int, input_id: str, symbol: str | None, rule: str, reason: str,
              value: float | None = None, limit: float | None = None) -> Output:
        ledger.count(f"risk.{rule}")
        return (EXEC_RISK_STREAM, record(RISK, ts=now, input_id=input_id, symbol=symbol, rule=rule, reason=reason,
                                         value=None if value is None else float(value),
                                         limit=None if limit is None else float(limit)))


def _marks(markets: Mapping[str, Market]) -> dict[str, float | None]:
    return {s: m.mid for s, m in markets.items()}


def next_due(ledger: Ledger) -> int | None:
    """When the next child order reaches its venue (ns), None when nothing is in flight."""
    return min((o.due for o in ledger.inflight), default=None)
