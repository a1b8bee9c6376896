"""Simulated venue wire formats, one module per venue protocol; the server core is shared."""

from .binance import BinanceSpot
from .coinbase import Coinbase
from .kraken_v1 import KrakenV1
from .wire import Wire

WIRES: dict[str, type[Wire]] = {w.venue: w for w in (BinanceSpot, Coinbase, KrakenV1)}
