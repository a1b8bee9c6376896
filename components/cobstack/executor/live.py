"""Live trading: the interface a venue adapter must implement. None exists yet, so
`executor.mode: live` is refused at start with a message saying so."""

from __future__ import annotations

from typing import Protocol

from .fills import Fill


class LiveVenue(Protocol):
    """What the executor needs from a real venue to replace the paper fill model."""

    venue: str

    async def send_ioc(self, client_id: str, symbol: str, side: str, qty: float, limit: float) -> Fill:
        """Send an immediate-or-cancel order, idempotent by client_id (a retry after a crash
        must not trade twice), and return what filled."""

    async def balances(self) -> dict[str, float]:
        """Account balances by asset, to reconcile the ledger at start."""


class LiveTradingRefused(ValueError):
    """`executor.mode: live` with no live adapter wired into the executor (the CLI prints it, exits 2)."""


def refuse_live() -> LiveTradingRefused:
    return LiveTradingRefused(
        "executor.mode=live refused: cobstack has no live trading adapter yet, only the paper venue. "
        "A live venue implements executor/live.py LiveVenue (idempotent IOC orders, balances) and is "
        "wired into the executor in place of the paper fill; until then run executor.mode=paper (the default).")
