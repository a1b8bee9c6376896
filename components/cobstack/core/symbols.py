"""The one symbol map: venue-native instrument names <-> canonical symbols.

A canonical symbol is BASE-QUOTE with the quote's *family* (USD, USDT and USDC are all the
USD family, so Binance BTCUSDT, Coinbase BTC-USD and Kraken XBT/USD all consolidate into
BTC-USD). The instrument keeps its real quote so consolidation can normalise prices.
"""

from __future__ import annotations

from dataclasses import dataclass

# Venue spellings of assets (Kraken's legacy X/Z prefixes and XBT).
ASSET_ALIASES = {"XBT": "BTC", "XXBT": "BTC", "XETH": "ETH", "ZUSD": "USD", "ZEUR": "EUR"}
USD_FAMILY = ("USD", "USDT", "USDC")
# Quotes that concatenated venue symbols (BTCUSDT) may end with, longest first.
KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "USD", "EUR", "GBP", "CHF", "JPY", "BTC", "ETH",
                "XBT", "BNB", "TRY")


def canonical_asset(asset: str) -> str:
    asset = asset.upper()
    return ASSET_ALIASES.get(asset, asset)


def quote_family(quote: str) -> str:
    return "USD" if quote in USD_FAMILY else quote


@dataclass(frozen=True, slots=True)
class Instrument:
    venue: str
    native: str  # exactly as the venue spells it on the wire
    base: str  # canonical asset
    quote: str  # canonical asset, real quote (USDT stays USDT)

    @property
    def symbol(self) -> str:
        """Canonical consolidated symbol, e.g. BTC-USD for BTCUSDT."""
        return f"{self.base}-{quote_family(self.quote)}"


def split_native(venue: str, native: str) -> tuple[str, str]:
    """(base, quote) in canonical assets from a venue-native name; ValueError if unknown."""
    for sep in ("/", "-", "_"):
        if sep in native:
            base, quote = native.split(sep, 1)
            return canonical_asset(base), canonical_asset(quote)
    upper = native.upper()
    for q in KNOWN_QUOTES:
        if upper.endswith(q) and len(upper) > len(q):
            return canonical_asset(upper[: -len(q)]), canonical_asset(q)
    raise ValueError(f"{venue}: cannot split instrument {native!r} into base and quote")


def instrument(venue: str, native: str) -> Instrument:
    base, quote = split_native(venue, native)
    return Instrument(venue, native, base, quote)


# How each venue spells BASE/QUOTE natively, and which quote it lists for each USD symbol.
_NATIVE_FORMAT = {
    "binance": "{b}{q}",
    "binance-usdm": "{b}{q}",
    "binance-coinm": "{b}{q}_PERP",
    "coinbase": "{b}-{q}",
    "kraken": "{b}/{q}",
    "kraken-v1": "{b}/{q}",
    "okx": "{b}-{q}",
    "bybit": "{b}{q}",
    "bitstamp": "{b}{q}",
}
_VENUE_USD_QUOTE = {
    "binance": "USDT", "binance-usdm": "USDT", "binance-coinm": "USD", "coinbase": "USD",
    "kraken": "USD", "kraken-v1": "USD", "okx": "USDT", "bybit": "USDT", "bitstamp": "USD",
}
_VENUE_ASSET = {"kraken-v1": {"BTC": "XBT"}}
_LOWERCASE = {"bitstamp"}


def venue_instrument(venue: str, symbol: str) -> Instrument:
    """The instrument a venue trades for a canonical symbol (BTC-USD on binance: BTCUSDT)."""
    if venue not in _NATIVE_FORMAT:
        raise ValueError(f"unknown venue {venue!r}; known: {', '.join(sorted(_NATIVE_FORMAT))}")
    try:
        base, family = symbol.upper().split("-")
    except ValueError:
        raise ValueError(f"symbol {symbol!r} is not BASE-QUOTE (e.g. BTC-USD)") from None
    quote = _VENUE_USD_QUOTE[venue] if family == "USD" else family
    spell = _VENUE_ASSET.get(venue, {})
    native = _NATIVE_FORMAT[venue].format(b=spell.get(base, base), q=spell.get(quote, quote))
    if venue in _LOWERCASE:
        native = native.lower()
    return Instrument(venue, native, base, quote)


# Inverse (coin-margined) contracts: face value in USD per contract, by base asset. Binance
# COIN-M: BTCUSD_PERP is 100 USD a contract, every other pair 10 USD.
_CONTRACT_USD = {"binance-coinm": {"BTC": 100.0}}
_CONTRACT_USD_DEFAULT = {"binance-coinm": 10.0}


def contract_value(venue: str, base: str) -> float:
    """USD per contract where the venue quotes sizes in inverse contracts, else 0.0 (sizes
    are base units)."""
    return _CONTRACT_USD.get(venue, {}).get(base, _CONTRACT_USD_DEFAULT.get(venue, 0.0))


def known_venues() -> list[str]:
    return sorted(_NATIVE_FORMAT)
