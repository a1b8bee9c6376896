"""Book checksums exactly as the venues document them, over the venue's own strings.

Shared by the adapters (to verify) and the simulated venues (to publish), so the two can
never disagree by construction; the recorded-traffic tests pin them to the real venues.
"""

from __future__ import annotations

from zlib import crc32

from ..core.book import BookSide, L2Book


def _kraken_digits(s: str) -> str:
    # Kraken: remove the decimal point, then leading zeros ("0.05005" -> "5005").
    return s.replace(".", "").lstrip("0")


# price string -> (size string, text of the level): a level near the top is re-joined many
# times while it sits there, so it is formatted once. Bounded; cleared when full.
_LEVEL_TEXT: dict[str, tuple[str, str]] = {}
_LEVEL_TEXT_MAX = 1 << 16


def _remember(price_str: str, size_str: str) -> tuple[str, str]:
    if len(_LEVEL_TEXT) >= _LEVEL_TEXT_MAX:
        _LEVEL_TEXT.clear()
    hit = _LEVEL_TEXT[price_str] = (size_str, _kraken_digits(price_str) + _kraken_digits(size_str))
    return hit


def _kraken_side(side: BookSide) -> bytes:
    """The checksum text of one side's best 10 levels, cached on the side until they change."""
    text = side.top_cache
    if text is None:
        side.watch = 10
        cache, parts = _LEVEL_TEXT, []
        for lv in side.top(10):  # the hot loop of Kraken replay: lookups inlined on purpose
            hit = cache.get(lv.price_str)
            if hit is None or hit[0] != lv.size_str:
                hit = _remember(lv.price_str, lv.size_str)
            parts.append(hit[1])
        text = side.top_cache = "".join(parts).encode()
    return text


def kraken(book: L2Book) -> int:
    """Kraken websocket book checksum: CRC32 of the top 10 asks (best first) then top 10
    bids (best first), each level as digits(price) + digits(volume). Unsigned 32-bit."""
    return crc32(_kraken_side(book.bids), crc32(_kraken_side(book.asks)))


def _okx_side(side: BookSide) -> list[str]:
    """"price:size" of one side's best 25 levels, cached on the side until they change."""
    parts = side.top_cache
    if parts is None:
        side.watch = 25
        parts = side.top_cache = [f"{lv.price_str}:{lv.size_str}" for lv in side.top(25)]
    return parts


def okx(book: L2Book) -> int:
    """OKX v5 books checksum: CRC32 of the top 25 levels interleaved bid:bidSize:ask:askSize
    over the venue's own strings; once the shorter side runs out, the longer side's remaining
    levels follow alone. Signed 32-bit."""
    bids, asks = _okx_side(book.bids), _okx_side(book.asks)
    n = min(len(bids), len(asks))
    parts = [""] * (2 * n)
    parts[0::2], parts[1::2] = bids[:n], asks[:n]
    parts += bids[n:] if len(bids) > n else asks[n:]
    value = crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value
