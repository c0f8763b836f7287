"""Kraken's own book checksums as an oracle for books rebuilt by the core.

Kraken (WebSocket v1) sends with every book update the CRC32 of its top 10
levels as decimal strings. Reading them straight from the raw capture and
recomputing them from a float book (printed with the pair's decimals, learnt from
the snapshot strings) checks every insert, update, delete and ordering.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from core.book import OrderBook
from producers.captures.cryptofeed import parse_line
from producers.captures.symbols import kraken_canonical


def expected_checksums(path: Path) -> tuple[dict[str, list[int]], dict[str, tuple[int, int]]]:
    """Per canonical pair: Kraken's checksums in order, and (price, volume) decimals."""
    checksums: dict[str, list[int]] = {}
    decimals: dict[str, tuple[int, int]] = {}
    for text in path.read_text().splitlines():
        line = parse_line(text)
        if line is None or line.kind != "received" or not isinstance(line.payload, list):
            continue
        msg = line.payload
        pair = kraken_canonical(msg[-1])
        assert pair is not None
        if "as" in msg[1]:
            levels = msg[1]["as"] + msg[1]["bs"]
            decimals[pair] = (
                max(len(lv[0].partition(".")[2]) for lv in levels),
                max(len(lv[1].partition(".")[2]) for lv in levels),
            )
        elif "c" in msg[-3]:
            checksums.setdefault(pair, []).append(int(msg[-3]["c"]))
    return checksums, decimals


def _digits(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}".replace(".", "").lstrip("0")


def kraken_checksum(book: OrderBook, decimals: tuple[int, int]) -> int:
    """Kraken's string CRC32 of a float book's top 10 asks then bids."""
    pd, qd = decimals
    text = "".join(_digits(p, pd) + _digits(q, qd) for p, q in book.asks(10) + book.bids(10))
    return zlib.crc32(text.encode())
