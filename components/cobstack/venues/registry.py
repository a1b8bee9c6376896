"""Venue name -> adapter class: the one place the CLI, ingest and replay look adapters up."""

from __future__ import annotations

from .base import Adapter
from .binance import BinanceAdapter, BinanceCoinmAdapter, BinanceUsdmAdapter
from .bitstamp import BitstampAdapter
from .coinbase import CoinbaseAdapter
from .bybit import BybitAdapter
from .kraken import KrakenAdapter
from .kraken_v1 import KrakenV1Adapter
from .okx import OkxAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    cls.venue: cls
    for cls in (KrakenV1Adapter, BinanceAdapter, BinanceUsdmAdapter, BinanceCoinmAdapter,
                CoinbaseAdapter, BitstampAdapter, KrakenAdapter, OkxAdapter, BybitAdapter)
}


def make_adapter(venue: str, instruments: list[str] | None = None, **kw) -> Adapter:
    """A fresh adapter for `venue`; instruments=None tracks whatever the feed carries."""
    try:
        cls = ADAPTERS[venue]
    except KeyError:
        raise ValueError(f"unknown venue {venue!r}; known venues: {', '.join(sorted(ADAPTERS))}") from None
    return cls(instruments, **kw)
