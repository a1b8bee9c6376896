"""Book checksums exactly as the venues document them, over the venue's own strings.

Shared by the adapters (to verify) and the simulated venues (to publish), so the two can
never disagree by construction; the recorded-traffic tests pin them to the real venues.
"""

from __future__ import annotations

from zlib import crc32

from ..core.book import L2Book


def _kraken_digits(s: str) -> str:
    # Kraken: remove the decimal point, then leading zeros ("0.05005" -> "5005").
    return s.replace(".", "").lstrip("0")


# price string -> (size string, digits of both): a level's text is fixed while it sits in the
# book, so each checksum only formats levels that changed. Bounded; cleared when full.
_KRAKEN_TEXT: dict[str, tuple[str, str]] = {}
_KRAKEN_TEXT_MAX = 1 << 16


def kraken(book: L2Book) -> int:
    """Kraken websocket book checksum: CRC32 of the top 10 asks (best first) then top 10
    bids (best first), each level as digits(price) + digits(volume). Unsigned 32-bit."""
    cache = _KRAKEN_TEXT
    parts = []
    for lv in book.asks.top(10) + book.bids.top(10):
        hit = cache.get(lv.price_str)
        if hit is None or hit[0] is not lv.size_str:
            if len(cache) >= _KRAKEN_TEXT_MAX:
                cache.clear()
            hit = cache[lv.price_str] = (lv.size_str, _kraken_digits(lv.price_str) + _kraken_digits(lv.size_str))
        parts.append(hit[1])
    return crc32("".join(parts).encode())


def okx(book: L2Book) -> int:
    """OKX v5 books checksum: CRC32 of the top 25 levels interleaved
    bid:bidSize:ask:askSize, skipping a missing side; signed 32-bit."""
    bids, asks = book.bids.top(25), book.asks.top(25)
    parts = []
    for i in range(max(len(bids), len(asks))):
        if i < len(bids):
            parts += (bids[i].price_str, bids[i].size_str)
        if i < len(asks):
            parts += (asks[i].price_str, asks[i].size_str)
    value = crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value
