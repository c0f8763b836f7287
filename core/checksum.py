"""Book checksum of docs/protocol.md §5, computed with one precompiled ``struct`` pack.

The contract defines it as::

    zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks[:10] + bids[:10]))

with asks ascending and bids descending, both already cut to the subscribed
depth. Packing all (up to 20) pairs in one call with a format cached per level
count gives the same bytes about 40 % faster (1.2 us instead of 2.1 us for 20 levels).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Sequence
from itertools import chain
from typing import Protocol

from core.ladder import Ladder
from core.native import native
from core.types import Level

CHECKSUM_LEVELS = 10
"""Levels per side that the checksum covers."""

_PACKERS: tuple[struct.Struct, ...] = tuple(
    struct.Struct("<" + "dd" * n) for n in range(2 * CHECKSUM_LEVELS + 1)
)


def book_checksum(asks: Sequence[Level], bids: Sequence[Level]) -> int:
    """CRC-32 of the first 10 asks (ascending) then the first 10 bids (descending)."""
    flat: tuple[float, ...] = sum(chain(asks[:CHECKSUM_LEVELS], bids[:CHECKSUM_LEVELS]), ())
    return zlib.crc32(_PACKERS[len(flat) >> 1].pack(*flat))


def flat_checksum(flat: Sequence[float]) -> int:
    """The same checksum from [ask p, q, ..., bid p, q, ...] already cut to 10 levels a side."""
    return zlib.crc32(_PACKERS[len(flat) >> 1].pack(*flat))


class _FlatTop(Protocol):
    def flat_top(self, n: int) -> list[float]: ...


def python_ladder_checksum(bid_side: _FlatTop, ask_side: _FlatTop) -> int:
    """docs/protocol.md §5 over two ladders: their top 10 asks then top 10 bids.
    The reference the compiled twin (``core.native``) is tested against."""
    return flat_checksum(ask_side.flat_top(CHECKSUM_LEVELS) + bid_side.flat_top(CHECKSUM_LEVELS))


_Compiled = Callable[[list[float], dict[float, float], list[float], dict[float, float]], int]
_compiled_checksum: _Compiled | None = None if native is None else native.ladder_checksum


def ladder_checksum(bid_side: _FlatTop, ask_side: _FlatTop) -> int:
    """docs/protocol.md §5 over two ladders, compiled for :class:`Ladder` itself when the
    extension is built (it reads their price lists and quantity maps; the bids
    descending, the asks ascending); anything else takes the Python path."""
    if (
        _compiled_checksum is not None
        and type(bid_side) is Ladder
        and type(ask_side) is Ladder
        and bid_side.desc > ask_side.desc
    ):
        return _compiled_checksum(bid_side._keys, bid_side.qty, ask_side._keys, ask_side.qty)
    return python_ladder_checksum(bid_side, ask_side)


class _Versioned(Protocol):
    @property
    def bid_side(self) -> _FlatTop: ...
    @property
    def ask_side(self) -> _FlatTop: ...
    @property
    def version(self) -> int: ...

    _checksum: tuple[int, int]
    """(version it was computed at, value); (-1, 0) before the first."""


class CachedChecksum:
    """``checksum()`` over ``bid_side``/``ask_side``, computed once per ``version``
    (a book and an aggregated book both keep it this way)."""

    def checksum(self: _Versioned) -> int:
        """docs/protocol.md §5 checksum of the book (top 10 a side), cached per version."""
        version, value = self._checksum
        if version != self.version:
            value = ladder_checksum(self.bid_side, self.ask_side)
            self._checksum = (self.version, value)
        return value
