"""Per-stream normalization: a local book, contiguous sequences, counters. No I/O.

A venue handler decides *what* a message means (snapshot, diff, gap, trade); a
:class:`StreamNormalizer` turns that into the project's normalized records
(docs/protocol.md §2.2):

- book records numbered 1, 2, 3 ... per stream, ``prev_sequence`` = previous;
- the first record is a full-book snapshot, and so is the first record after
  every exchange-side gap (a *resync*); between a gap and the next snapshot the
  stream emits nothing and drops the venue's diffs (counted);
- trades get their own contiguous sequence per stream.

The local book keeps, next to each float, the exchange's decimal strings
(Kraken's checksum is computed on them) and may be bounded to the venue's
depth: levels pushed out of the top N are removed locally and that removal is
put in the emitted delta as a quantity-0 level, so a consumer's book stays
equal to the venue's truncated one.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

from sortedcontainers import SortedDict

from core.checksum import CHECKSUM_LEVELS, book_checksum
from core.types import BookUpdate, Exchange, Level, Trade
from producers.captures.errors import CorruptLineError
from producers.captures.summary import StreamStats

log = logging.getLogger(__name__)

Side = Literal["bid", "ask"]
ParsedLevel = tuple[float, float, str, str]
"""(price, quantity, price text, quantity text) as the venue wrote it."""
Entry = tuple[float, str, str]
"""What the book holds per price: (quantity, price text, quantity text)."""


def parse_level(price: Any, quantity: Any) -> ParsedLevel:
    """Validate one level given as decimal strings (or numbers).

    Raises :class:`CorruptLineError` for non-numbers, non-finite values, a price
    <= 0 or a negative quantity.
    """
    ptxt, qtxt = _text(price), _text(quantity)
    try:
        p, q = float(ptxt), float(qtxt)
    except ValueError as e:
        raise CorruptLineError(f"bad level [{ptxt!r}, {qtxt!r}]") from e
    if not (math.isfinite(p) and math.isfinite(q) and p > 0.0 and q >= 0.0):
        raise CorruptLineError(f"invalid level [{ptxt!r}, {qtxt!r}]")
    return p, q, ptxt, qtxt


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    raise CorruptLineError(f"level field is {type(value).__name__}, not a number")


class LocalBook:
    """Price -> (quantity, texts) per side, sorted; optionally bounded to ``depth`` levels."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()

    def side(self, side: Side) -> SortedDict:
        return self.bids if side == "bid" else self.asks

    def apply(self, side: Side, levels: Iterable[ParsedLevel]) -> list[Level]:
        """Set or remove (quantity 0) levels; returns the levels as emitted, in order."""
        book = self.side(side)
        out: list[Level] = []
        for p, q, ptxt, qtxt in levels:
            if q == 0.0:
                book.pop(p, None)
            else:
                book[p] = (q, ptxt, qtxt)
            out.append((p, q))
        return out

    def truncate(self, side: Side) -> list[Level]:
        """Drop the levels past ``depth`` (worst first); returns them as quantity-0 levels."""
        book = self.side(side)
        if not self.depth or len(book) <= self.depth:
            return []
        extra = len(book) - self.depth
        worst = book.keys()[:extra] if side == "bid" else book.keys()[-extra:]
        for p in list(worst):
            del book[p]
        return [(p, 0.0) for p in worst]

    def top(self, side: Side, n: int) -> list[tuple[float, Entry]]:
        """The best ``n`` levels, best first: bids descending, asks ascending."""
        if n <= 0:
            return []
        book = self.side(side)
        keys = book.keys()[:n] if side == "ask" else book.keys()[-n:][::-1]
        return [(p, book[p]) for p in keys]

    def levels(self, side: Side) -> list[Level]:
        """Every level, best first."""
        book = self.side(side)
        items = [(p, e[0]) for p, e in book.items()]
        return items if side == "ask" else items[::-1]

    def is_crossed(self) -> bool:
        return bool(self.bids and self.asks and self.bids.keys()[-1] >= self.asks.keys()[0])

    def checksum(self) -> int:
        """docs/protocol.md §5 (``core.checksum``): top 10 asks then top 10 bids."""
        asks = [(p, e[0]) for p, e in self.top("ask", CHECKSUM_LEVELS)]
        bids = [(p, e[0]) for p, e in self.top("bid", CHECKSUM_LEVELS)]
        return book_checksum(asks, bids)


Verifier = Callable[[LocalBook], bool]
"""Called after a diff is applied; False = the book disagrees with the venue (checksum)."""


class StreamNormalizer:
    """Normalized records of one stream; see the module docstring for the rules."""

    def __init__(
        self, exchange: Exchange, symbol: str, stats: StreamStats | None = None, depth: int = 0
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.stats = stats if stats is not None else StreamStats()
        self.book = LocalBook(depth)
        self.synced = False
        self.sequence = 0
        self.trade_sequence = 0
        self._trade_ids: dict[str, None] = {}

    def snapshot(
        self, timestamp_ns: int, bids: Sequence[ParsedLevel], asks: Sequence[ParsedLevel]
    ) -> BookUpdate:
        """Replace the book with a venue snapshot; emits a full-book record."""
        self.book.clear()
        self.book.apply("bid", (lv for lv in bids if lv[1] > 0.0))
        self.book.apply("ask", (lv for lv in asks if lv[1] > 0.0))
        self.book.truncate("bid")
        self.book.truncate("ask")
        if self.stats.snapshots:
            self.stats.resyncs += 1
        self.stats.snapshots += 1
        self._set_synced(True)
        return self._record(timestamp_ns, self.book.levels("bid"), self.book.levels("ask"), True)

    def update(
        self,
        timestamp_ns: int,
        bids: Sequence[ParsedLevel],
        asks: Sequence[ParsedLevel],
        verify: Verifier | None = None,
    ) -> BookUpdate | None:
        """Apply a venue diff; None when out of sync (dropped) or when ``verify`` fails (gap)."""
        if not self.synced:
            self.stats.dropped_diffs += 1
            return None
        out_bids = self.book.apply("bid", bids) + self.book.truncate("bid")
        out_asks = self.book.apply("ask", asks) + self.book.truncate("ask")
        if verify is not None:
            if not verify(self.book):
                self.stats.checksum_failures += 1
                self.gap("checksum mismatch")
                return None
            self.stats.checksums_ok += 1
        self.stats.applied_diffs += 1
        return self._record(timestamp_ns, out_bids, out_asks, False)

    def gap(self, reason: str) -> None:
        """Exchange-side loss of continuity: emit nothing until the next snapshot."""
        if self.synced:
            self.stats.note_gap(reason)
            log.warning(
                "%s:%s: %s after sequence %d; stale until the next venue snapshot",
                self.exchange.name, self.symbol, reason, self.sequence,
            )  # fmt: skip
        self._set_synced(False)

    def drop(self) -> None:
        """Count a venue diff deliberately not applied (older than the snapshot ...)."""
        self.stats.dropped_diffs += 1

    def trade(
        self, timestamp_ns: int, trade_id: str, price: Any, quantity: Any, side: str
    ) -> Trade | None:
        """A normalized trade, or None for a trade id already emitted on this stream."""
        p, q, _, _ = parse_level(price, quantity)
        if q <= 0.0:
            raise CorruptLineError(f"trade with quantity {quantity!r}")
        if trade_id:
            if trade_id in self._trade_ids:
                self.stats.duplicate_trades += 1
                return None
            self._trade_ids[trade_id] = None
            if len(self._trade_ids) > 100_000:
                del self._trade_ids[next(iter(self._trade_ids))]
        self.trade_sequence += 1
        self.stats.trades += 1
        return Trade(
            self.exchange, self.symbol, timestamp_ns, trade_id, p, q, side, self.trade_sequence
        )

    def current_book(self, timestamp_ns: int) -> BookUpdate:
        """The whole local book as a snapshot carrying the last sequence (for compaction)."""
        return BookUpdate(
            exchange=self.exchange,
            symbol=self.symbol,
            timestamp_ns=timestamp_ns,
            sequence=self.sequence,
            bids=self.book.levels("bid"),
            asks=self.book.levels("ask"),
            is_snapshot=True,
            prev_sequence=max(self.sequence - 1, 0),
            checksum=self.book.checksum(),
        )

    def _set_synced(self, synced: bool) -> None:
        self.synced = synced
        self.stats.synced = synced

    def _record(
        self, timestamp_ns: int, bids: list[Level], asks: list[Level], is_snapshot: bool
    ) -> BookUpdate:
        self.sequence += 1
        self.stats.book_records += 1
        self.stats.last_sequence = self.sequence
        if self.book.is_crossed():
            self.stats.crossed += 1
        return BookUpdate(
            exchange=self.exchange,
            symbol=self.symbol,
            timestamp_ns=timestamp_ns,
            sequence=self.sequence,
            bids=bids,
            asks=asks,
            is_snapshot=is_snapshot,
            prev_sequence=self.sequence - 1,
            checksum=self.book.checksum(),
        )
