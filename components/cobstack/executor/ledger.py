"""The paper account: cash, positions, orders in flight and the risk state. Pure.

The whole ledger is the executor's durable state: it is serialised into every atomic commit
(Bus.commit) together with the records it produced, so a restarted executor continues from
exactly the last committed step, orders in flight included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import msgpack

from .fills import BUY, EPS, Fill

LEDGER_VERSION = 1
WINDOW_S = 60  # the per-minute notional limit looks back this far


@dataclass(slots=True)
class Position:
    qty: float = 0.0  # base units, negative = short
    avg_cost: float = 0.0  # average entry price of the open quantity
    realised: float = 0.0  # quote currency, before fees
    fees: float = 0.0

    def apply(self, side: str, fill: Fill) -> None:
        """Book a fill: closing quantity realises PnL against avg_cost, opening quantity
        moves avg_cost; a fill through zero does both."""
        if fill.qty <= 0:
            return
        price = fill.notional / fill.qty
        signed = fill.qty if side == BUY else -fill.qty
        self.fees += fill.fee
        if self.qty * signed >= 0:  # opening or adding
            total = abs(self.qty) + fill.qty
            self.avg_cost = (abs(self.qty) * self.avg_cost + fill.qty * price) / total
            self.qty += signed
            return
        closing = min(fill.qty, abs(self.qty))
        self.realised += closing * (price - self.avg_cost) * (1 if self.qty > 0 else -1)
        self.qty += signed
        if abs(self.qty) <= EPS:
            self.qty, self.avg_cost = 0.0, 0.0
        elif fill.qty > closing:  # flipped: the rest opens at this fill's price
            self.avg_cost = price

    def unrealised(self, mark: float | None) -> float:
        return 0.0 if mark is None or self.qty == 0 else self.qty * (mark - self.avg_cost)


@dataclass(slots=True)
class InFlight:
    """A child order on its way to a venue (it fills at `due`)."""

    order_id: str
    symbol: str
    venue: str
    side: str
    qty: float
    limit: float
    due: int  # ns
    decided: int  # ns
    signal_ts: int  # ns
    ref_mid: float
    expected_price: float
    expected_fee: float


@dataclass(slots=True)
class Ledger:
    cash: float
    peak_equity: float
    positions: dict[str, Position] = field(default_factory=dict)
    inflight: list[InFlight] = field(default_factory=list)
    window: dict[int, float] = field(default_factory=dict)  # epoch second -> routed notional
    halted: str | None = None  # manual halt reason
    killed: str | None = None  # kill-switch reason
    counters: dict[str, int] = field(default_factory=dict)
    cursor: dict[str, str] = field(default_factory=dict)  # input stream -> newest id committed

    @classmethod
    def fresh(cls, cash: float) -> Ledger:
        return cls(cash=cash, peak_equity=cash)

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position()
        return pos

    def count(self, what: str, n: int = 1) -> None:
        self.counters[what] = self.counters.get(what, 0) + n

    def exposure(self, symbol: str) -> float:
        """Position plus what is in flight for the symbol, signed base units."""
        pos = self.positions.get(symbol)
        qty = pos.qty if pos else 0.0
        for o in self.inflight:
            if o.symbol == symbol:
                qty += o.qty if o.side == BUY else -o.qty
        return qty

    def book_fill(self, symbol: str, side: str, fill: Fill) -> None:
        self.position(symbol).apply(side, fill)
        self.cash += -(fill.notional + fill.fee) if side == BUY else fill.notional - fill.fee

    def recent_notional(self, now_s: int) -> float:
        """Routed notional over the trailing WINDOW_S seconds (older seconds are dropped)."""
        for s in [s for s in self.window if s <= now_s - WINDOW_S]:
            del self.window[s]
        return sum(self.window.values())

    def add_notional(self, now_s: int, notional: float) -> None:
        self.window[now_s] = self.window.get(now_s, 0.0) + notional

    def equity(self, marks: dict[str, float | None]) -> tuple[float, float]:
        """(equity, unrealised): cash plus every position at its mark (avg cost when unmarked)."""
        value = unrealised = 0.0
        for symbol, pos in self.positions.items():
            mark = marks.get(symbol)
            value += pos.qty * (mark if mark is not None else pos.avg_cost)
            unrealised += pos.unrealised(mark)
        return self.cash + value, unrealised

    # --- durable form -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        return msgpack.packb({"v": LEDGER_VERSION, **asdict(self)}, use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> Ledger:
        d = msgpack.unpackb(data, raw=False, strict_map_key=False)
        version = d.pop("v", None)
        if version != LEDGER_VERSION:
            raise ValueError(f"executor state is ledger v{version!r}, this executor reads "
                             f"v{LEDGER_VERSION}; run the executor version that wrote it")
        d["positions"] = {s: Position(**p) for s, p in d["positions"].items()}
        d["inflight"] = [InFlight(**o) for o in d["inflight"]]
        d["window"] = {int(s): n for s, n in d["window"].items()}
        return cls(**d)
