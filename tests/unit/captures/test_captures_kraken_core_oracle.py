"""Oracle for ``core.book.OrderBook``: Kraken's own checksums, recomputed from the core's book.

The normalized Kraken records are applied to the core book (floats only); its
top 10 levels, printed with each pair's decimals (learnt from the snapshot
strings), must give Kraken's ``c`` of every update. Any error in the core's
insert/update/delete/ordering shows up as a mismatch.
"""

from __future__ import annotations

from pathlib import Path

from core.types import BookUpdate
from producers.captures.cryptofeed import read_cryptofeed
from tests.kraken_oracle import expected_checksums, kraken_checksum


def test_core_book_matches_every_kraken_checksum(captures: Path) -> None:
    from core.book import OrderBook  # the other engineer's core; fails here if missing

    path = captures / "KRAKEN.ws.50.0"
    expected, decimals = expected_checksums(path)
    books: dict[str, OrderBook] = {}
    seen: dict[str, int] = {}
    matched = 0
    for event in read_cryptofeed([path]):
        update = event.message
        assert isinstance(update, BookUpdate)
        book = books.setdefault(update.symbol, OrderBook(update.exchange, update.symbol))
        book.apply(update)
        assert book.checksum() == update.checksum  # docs/protocol.md §5, both sides agree
        if update.is_snapshot:
            continue
        index = seen.get(update.symbol, 0)
        seen[update.symbol] = index + 1
        assert kraken_checksum(book, decimals[update.symbol]) == expected[update.symbol][index], (
            f"{update.stream} update #{index + 1} (seq {update.sequence})"
        )
        matched += 1
    assert matched == sum(len(v) for v in expected.values()) == 2595
