"""Simulated venue wire formats, one module per venue protocol; the server core is shared."""

from .binance import BinanceCoinm, BinanceSpot, BinanceUsdm
from .bitstamp import Bitstamp
from .bybit import Bybit
from .coinbase import Coinbase
from .kraken_v1 import KrakenV1
from .kraken_v2 import KrakenV2
from .okx import Okx
from .wire import Wire

WIRES: dict[str, type[Wire]] = {w.venue: w for w in (
    BinanceSpot, BinanceUsdm, BinanceCoinm, Bitstamp, Bybit, Coinbase, KrakenV1, KrakenV2, Okx)}
