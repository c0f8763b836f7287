"""The book checksum of docs/protocol.md §5, as a client computes it."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

_PAIR = struct.Struct("<dd")

Level = tuple[float, float]
"""(price, quantity)."""


def checksum(asks: Sequence[Level], bids: Sequence[Level]) -> int:
    """CRC-32 over the best 10 asks (ascending) then the best 10 bids (descending),
    each level packed as two little-endian float64s."""
    return zlib.crc32(b"".join(_PAIR.pack(p, q) for p, q in [*asks[:10], *bids[:10]]))
