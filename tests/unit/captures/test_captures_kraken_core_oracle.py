"""Oracle for ``core.book.OrderBook``: Kraken's own checksums, recomputed from the core's book.

The normalized Kraken records are applied to the core book (floats only); its
top 10 levels, printed with each pair's decimals (learnt from the snapshot
strings), must give Kraken's ``c`` of every update. Any error in the core's
insert/update/delete/ordering shows up as a mismatch.
"""

from __future__ import annotations

import zlib
from pathlib import Path

from core.types import BookUpdate
from producers.captures.cryptofeed import parse_line, read_cryptofeed
from producers.captures.symbols import kraken_canonical


def _expected(path: Path) -> tuple[dict[str, list[int]], dict[str, tuple[int, int]]]:
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


def test_core_book_matches_every_kraken_checksum(captures: Path) -> None:
    from core.book import OrderBook  # the other engineer's core; fails here if missing

    path = captures / "KRAKEN.ws.50.0"
    expected, decimals = _expected(path)
    books: dict[str, OrderBook] = {}
    seen: dict[str, int] = {}
    matched = 0
    for event in read_cryptofeed([path]):
        update = event.message
        assert isinstance(update, BookUpdate)
        book = books.setdefault(update.symbol, OrderBook(update.exchange, update.symbol))
        book.apply(update)
        assert book.checksum() == update.checksum  # CONTRACT section 5, both sides agree
        if update.is_snapshot:
            continue
        pd, qd = decimals[update.symbol]
        text = "".join(_digits(p, pd) + _digits(q, qd) for p, q in book.asks(10) + book.bids(10))
        index = seen.get(update.symbol, 0)
        seen[update.symbol] = index + 1
        assert zlib.crc32(text.encode()) == expected[update.symbol][index], (
            f"{update.stream} update #{index + 1} (seq {update.sequence})"
        )
        matched += 1
    assert matched == sum(len(v) for v in expected.values()) == 2595
