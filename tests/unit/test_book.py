"""L2Book: exact decimal levels, ordering, truncation, crossed detection, checksum caching."""

from decimal import Decimal
from zlib import crc32

import pytest
from hypothesis import given, settings, strategies as st

from cobstack.core.book import BadLevel, L2Book, parse_level
from cobstack.venues import checksums


def test_equal_decimals_are_one_level_and_keep_the_latest_wire_strings():
    book = L2Book("v", "X")
    book.update(True, "0.35130000", "5")
    book.update(True, "0.3513", "7.50")
    assert len(book.bids) == 1
    lv = book.best_bid()
    assert lv.price == 0.3513 and lv.size == 7.5
    assert (lv.price_str, lv.size_str) == ("0.3513", "7.50")


decimals = st.decimals(min_value=Decimal("1e-6"), max_value=Decimal("1e9"), places=6, allow_nan=False)  # <= 15 digits


@settings(max_examples=500, deadline=None)
@given(decimals, decimals)
def test_levels_are_exact_for_identity_and_order(a, b):
    """Any two decimals of <= 15 significant digits: same level iff equal, same order as
    Decimal, whatever trailing zeros the venue writes."""
    book = L2Book("v", "X")
    for d in (a, b):
        book.update(True, f"{d:f}", "1")
        book.update(True, f"{d:f}00", "2")  # the same price, written differently
    assert len(book.bids) == len({a, b})
    assert [lv.price_str.rstrip("0") for lv in book.bids.top(2)] == \
        [f"{d:f}".rstrip("0") for d in sorted({a, b}, reverse=True)]


def test_numbers_too_precise_to_keep_exactly_are_rejected_not_rounded():
    book = L2Book("v", "X")
    book.update(True, "12345678.12345670", "1")  # 15 significant digits: fine
    with pytest.raises(BadLevel) as e:
        book.update(True, "12345678.123456789", "1")  # 17: two such prices could collide
    assert e.value.kind == "precision_exceeded"


def test_top_is_best_first_on_both_sides_and_zero_size_deletes():
    book = L2Book("v", "X")
    for p in ("100", "101", "99"):
        book.update(True, p, "1")
    for p in ("103", "102", "104"):
        book.update(False, p, "1")
    assert [lv.price_str for lv in book.bids.top(2)] == ["101", "100"]
    assert [lv.price_str for lv in book.asks.top(2)] == ["102", "103"]
    book.update(True, "101", "0")
    book.update(True, "55", "0")  # deleting an absent level is a no-op
    assert book.best_bid().price_str == "100"
    assert not book.is_crossed()
    book.update(True, "102", "1")
    assert book.is_crossed()


@pytest.mark.parametrize("price,size,kind", [
    ("NaN", "1", "non_finite"), ("100", "inf", "non_finite"), ("0", "1", "non_positive_price"),
    ("-1", "1", "non_positive_price"), ("100", "-0.1", "negative_size"), ("1e", "1", "malformed_number"),
    ("100", None, "malformed_number"), ("-inf", "1", "non_finite"), ("1" * 17, "1", "precision_exceeded"),
])
def test_bad_levels_are_rejected_with_their_kind(price, size, kind):
    with pytest.raises(BadLevel) as e:
        parse_level(price, size)
    assert e.value.kind == kind


def test_load_is_all_or_nothing():
    book = L2Book("v", "X")
    book.load([("100", "1")], [("101", "1")])
    with pytest.raises(BadLevel):
        book.load([("99", "1"), ("98", "NaN")], [])
    assert book.best_bid().price_str == "100"


def test_truncate_keeps_the_best_levels_of_each_side():
    book = L2Book("v", "X", max_depth=2)
    book.load([(str(p), "1") for p in range(90, 100)], [(str(p), "1") for p in range(101, 111)])
    assert [lv.price_str for lv in book.bids.top(5)] == ["99", "98"]
    assert [lv.price_str for lv in book.asks.top(5)] == ["101", "102"]


def _kraken_uncached(book: L2Book) -> int:
    digits = lambda s: s.replace(".", "").lstrip("0")  # noqa: E731
    text = "".join(digits(lv.price_str) + digits(lv.size_str)
                   for lv in book.asks.top(10) + book.bids.top(10))
    return crc32(text.encode())


ops = st.lists(st.tuples(st.booleans(), st.integers(1, 40), st.sampled_from(["0", "1", "2.5", "0.001"])),
               max_size=200)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(5, 30))
def test_cached_checksum_always_equals_a_fresh_one(operations, depth):
    """The per-side checksum cache must be dropped by every change that can alter the top 10
    (inserts, deletes, size changes, truncation) and kept by none that cannot matter."""
    book = L2Book("kraken", "X", max_depth=depth)
    book.load([(f"{p}.5", "1") for p in range(1, 20)], [(f"{p}.5", "1") for p in range(50, 70)])
    for is_bid, tick, size in operations:
        price = f"{tick}.5" if is_bid else f"{tick + 40}.5"
        book.update(is_bid, price, size)
        book.truncate()
        assert checksums.kraken(book) == _kraken_uncached(book)


@pytest.mark.parametrize("levels,kind", [
    ([["100", "1"], ["99", "NaN"]], "non_finite"),  # NaN after a valid level: min/max would miss it
    ([["100", "1"], "99"], "malformed_level"),  # a string is not a level, even if indexable
    ([["100", "1"], ["99", 1.5]], "malformed_number"),
    ([["100", "1"], ["-99", "1"]], "non_positive_price"),
    ([["100", "1"], ["1" * 17, "1"]], "precision_exceeded"),
])
def test_snapshot_fast_path_never_lets_a_bad_level_through(levels, kind):
    from cobstack.venues.base import snapshot_side

    with pytest.raises(BadLevel) as e:
        snapshot_side(True, levels)
    assert e.value.kind == kind


def test_snapshot_drops_zero_sizes_and_keeps_the_last_of_a_repeated_price():
    from cobstack.venues.base import snapshot_side

    side = snapshot_side(False, [["101", "1"], ["102", "0"], ["101.0", "3"]])
    assert [(lv.price_str, lv.size_str) for lv in side.top(5)] == [("101.0", "3")]
