"""Checksum of docs/protocol.md §5: the fast version must equal the literal expression."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.checksum import book_checksum, flat_checksum
from core.ladder import Ladder


def literal(asks: list, bids: list) -> int:
    """docs/protocol.md §5, character for character."""
    return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks[:10] + bids[:10]))


ASKS = [(97001.0 + i, 0.4 + i / 8) for i in range(12)]
BIDS = [(97000.5 - i, 1.2 + i / 4) for i in range(12)]

VECTORS = [
    ([], [], 0),
    ([(97001.0, 0.4)], [(97000.5, 1.2)], None),
    (ASKS[:3], [], None),
    ([], BIDS[:3], None),
    (ASKS, BIDS, None),
    ([(1e-8, 1e12)], [(5e-324, 0.1)], None),
]


@pytest.mark.parametrize(("asks", "bids", "expected"), VECTORS)
def test_known_vectors(asks: list, bids: list, expected: int | None) -> None:
    want = literal(asks, bids) if expected is None else expected
    assert book_checksum(asks, bids) == want


def test_pinned_values() -> None:
    """Pinned so a change of the byte layout cannot pass unnoticed on both sides."""
    assert book_checksum([(97001.0, 0.4)], [(97000.5, 1.2)]) == literal(
        [(97001.0, 0.4)], [(97000.5, 1.2)]
    )
    assert book_checksum([(1.0, 1.0)], []) == zlib.crc32(
        bytes.fromhex("000000000000f03f000000000000f03f")
    )


def test_only_ten_levels_a_side_count() -> None:
    assert book_checksum(ASKS, BIDS) == book_checksum(ASKS[:10], BIDS[:10])
    assert book_checksum(ASKS, BIDS) != book_checksum(ASKS[:9], BIDS[:10])


def test_order_matters_asks_first() -> None:
    assert book_checksum(ASKS[:2], BIDS[:2]) != book_checksum(BIDS[:2], ASKS[:2])


FLOATS = st.floats(min_value=1e-9, max_value=1e9, allow_nan=False)
LEVELS = st.lists(st.tuples(FLOATS, FLOATS), max_size=14)


@given(asks=LEVELS, bids=LEVELS)
def test_equals_the_literal_expression(asks: list, bids: list) -> None:
    assert book_checksum(asks, bids) == literal(asks, bids)
    assert book_checksum(tuple(asks), tuple(bids)) == literal(asks, bids)


@given(
    asks=st.dictionaries(FLOATS, FLOATS, max_size=14),
    bids=st.dictionaries(FLOATS, FLOATS, max_size=14),
)
def test_flat_checksum_from_ladders(asks: dict, bids: dict) -> None:
    a, b = Ladder(False), Ladder(True)
    a.replace(asks.items())
    b.replace(bids.items())
    assert flat_checksum(a.flat_top(10) + b.flat_top(10)) == literal(a.top(), b.top())
