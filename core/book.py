"""The order book of one stream, with the sequencing rules of docs/protocol.md §2.2.

``OrderBook.apply`` never raises for feed problems that are normal (gaps,
duplicates after a restart, deltas before the first snapshot): they come back
as an :class:`ApplyResult`. It raises a :mod:`core.errors` error only for an
update that no book could hold, and then only *before* touching anything, so a
rejected update never corrupts the book.

Sequencing, per update:

- snapshot: accepted when the book is stale (any sequence, e.g. a restart that
  resumes from an earlier offset), or when live and ``sequence > self.sequence``;
  a live snapshot that is not newer is a DUPLICATE.
- delta while stale: STALE_IGNORED (waiting for the next snapshot).
- delta with ``sequence <= self.sequence``: DUPLICATE, ignored.
- delta with ``sequence != self.sequence + 1``: GAP, the book turns stale and the
  delta is not applied.
- otherwise: APPLIED. ``prev_sequence`` is informational only.

Checksums (docs/protocol.md §5), when a record carries one (non-zero) and the book
verifies them (``verify_checksums``, on by default):

- a snapshot whose checksum does not match its own levels is corrupt:
  :class:`core.errors.ChecksumMismatchError`, nothing changed.
- a delta after which the book's checksum differs from the record's means the
  book diverged from the producer's: the delta is undone, the book turns stale
  with reason ``"checksum mismatch"`` and the result is GAP (recovery is the same:
  wait for the next snapshot).
"""

from __future__ import annotations

import math
from enum import Enum
from typing import TYPE_CHECKING

from core.checksum import CachedChecksum, book_checksum, ladder_checksum
from core.errors import (
    ChecksumMismatchError,
    CrossedBookError,
    InvalidLevelError,
    InvalidUpdateError,
)
from core.ladder import Ladder
from core.native import native
from core.types import KNOWN_EXCHANGES, BookUpdate, Exchange, Level, stream_key

_compiled_apply = None if native is None else native.apply_verified

if TYPE_CHECKING:  # an aggregated book is built from books: imported for types only
    from core.aggregate import AggregatedBook

_INF = math.inf
NO_SNAPSHOT = "no snapshot yet"
SEQUENCE_GAP = "sequence gap"
CHECKSUM_MISMATCH = "checksum mismatch"

Changes = tuple[list[Level], list[Level]]
"""(bid levels, ask levels) changed by the last mutation; quantity 0 = removed."""


class ApplyResult(Enum):
    """What ``OrderBook.apply`` did with an update."""

    SNAPSHOT = "snapshot"
    """The whole book was replaced."""
    APPLIED = "applied"
    """A delta was applied."""
    GAP = "gap"
    """The delta's sequence did not follow: book now stale, delta not applied."""
    DUPLICATE = "duplicate"
    """An old or repeated record (sequence not newer): ignored."""
    STALE_IGNORED = "stale_ignored"
    """A delta while the book is stale: ignored until the next snapshot."""


class OrderBook(CachedChecksum):
    """Bids and asks of one ``EXCHANGE:SYMBOL`` stream, kept exact by sequence number."""

    ladder_class: type[Ladder] = Ladder
    """Side structure; the benchmark swaps it to compare candidates."""

    def __init__(self, exchange: Exchange, symbol: str, *, verify_checksums: bool = True) -> None:
        if exchange not in KNOWN_EXCHANGES or not symbol:
            raise InvalidUpdateError(f"no book for exchange={exchange!r} symbol={symbol!r}")
        self.exchange = Exchange(exchange)
        self.symbol = symbol
        self.stream = stream_key(self.exchange, symbol)
        self.verify_checksums = verify_checksums
        """Check the checksum of records that carry one (see the module docstring)."""
        self.sequence = 0
        """Sequence of the last record applied (0 before the first snapshot)."""
        self.timestamp_ns = 0
        """Exchange event time of the last record applied."""
        self.ingest_ns = 0
        self.stale = True
        self.stale_reason = NO_SNAPSHOT
        self.bid_side = self.ladder_class(True)
        self.ask_side = self.ladder_class(False)
        self.version = 0
        """+1 per mutation; lets views tell whether they are in step with the book."""
        self.last_changes: Changes | None = None
        """Levels of the last applied delta (the update's own lists, read-only);
        None after a snapshot: anything may have changed."""
        self._checksum = (-1, 0)

    def __repr__(self) -> str:
        state = f"stale: {self.stale_reason}" if self.stale else "live"
        return (
            f"OrderBook({self.stream} seq={self.sequence} {state} "
            f"bids={len(self.bid_side)} asks={len(self.ask_side)})"
        )

    # -- applying ----------------------------------------------------------

    def apply(self, update: BookUpdate) -> ApplyResult:
        """Apply one record of this stream; see the module docstring for the rules."""
        if update.exchange != self.exchange or update.symbol != self.symbol:
            self._reject_stream(update)
        seq = update.sequence
        if update.is_snapshot:
            if not self.stale and seq <= self.sequence:
                return ApplyResult.DUPLICATE
            self._replace(*self._checked_snapshot(update), update.checksum)
            self.stale = False
            self.stale_reason = ""
            self.last_changes = None
            result = ApplyResult.SNAPSHOT
        else:
            if self.stale:
                return ApplyResult.STALE_IGNORED
            if seq <= self.sequence:
                return ApplyResult.DUPLICATE
            if seq != self.sequence + 1:
                self.mark_stale(SEQUENCE_GAP)
                return ApplyResult.GAP
            self._check_delta(update.bids, "bid")
            self._check_delta(update.asks, "ask")
            if update.checksum and self.verify_checksums:
                if not self._apply_verified(update):
                    self.mark_stale(CHECKSUM_MISMATCH)
                    return ApplyResult.GAP
            else:
                _apply_levels(self.bid_side, update.bids)
                _apply_levels(self.ask_side, update.asks)
            self.last_changes = (update.bids, update.asks)
            result = ApplyResult.APPLIED
        self.sequence = seq
        self.timestamp_ns = update.timestamp_ns
        self.ingest_ns = update.ingest_ns
        self.version += 1
        return result

    def _replace(self, bids: list[Level], asks: list[Level], checksum: int) -> None:
        """Install a snapshot's levels, after checking its checksum against them."""
        bid_side, ask_side = self.ladder_class(True), self.ladder_class(False)
        bid_side.replace(bids)
        ask_side.replace(asks)
        if checksum and self.verify_checksums:
            value = ladder_checksum(bid_side, ask_side)
            if value != checksum:
                raise ChecksumMismatchError(
                    f"{self.stream}: snapshot checksum {checksum} does not match "
                    f"its levels ({value})"
                )
            self._checksum = (self.version + 1, value)
        self.bid_side, self.ask_side = bid_side, ask_side

    def _apply_verified(self, update: BookUpdate) -> bool:
        """Apply a delta and compare checksums; on a mismatch undo it and return False."""
        bid_side, ask_side = self.bid_side, self.ask_side
        if _compiled_apply is not None and type(bid_side) is Ladder and type(ask_side) is Ladder:
            ok = _compiled_apply(
                bid_side._keys,
                bid_side.qty,
                ask_side._keys,
                ask_side.qty,
                update.bids,
                update.asks,
                update.checksum,
            )
            if ok is not None:  # None: levels of another shape, left to the code below
                if ok:
                    self._checksum = (self.version + 1, update.checksum)
                return bool(ok)
        return self._python_apply_verified(update)

    def _python_apply_verified(self, update: BookUpdate) -> bool:
        """``_apply_verified`` in Python: the reference of the compiled twin (core.native)."""
        bid_side, ask_side = self.bid_side, self.ask_side
        undo = [(bid_side, p, bid_side.get(p)) for p, _ in update.bids]
        undo += [(ask_side, p, ask_side.get(p)) for p, _ in update.asks]
        _apply_levels(bid_side, update.bids)
        _apply_levels(ask_side, update.asks)
        value = ladder_checksum(bid_side, ask_side)
        if value == update.checksum:
            self._checksum = (self.version + 1, value)
            return True
        for side, p, old in reversed(undo):
            if old is None:
                side.remove(p)
            else:
                side.set(p, old)
        return False

    def mark_stale(self, reason: str) -> None:
        """Stop trusting the book until the next snapshot (levels are kept for display)."""
        self.stale = True
        self.stale_reason = reason

    def _reject_stream(self, update: BookUpdate) -> None:
        if update.exchange not in KNOWN_EXCHANGES or not update.symbol:
            raise InvalidUpdateError(
                f"{self.stream}: update with exchange={update.exchange!r} symbol={update.symbol!r}"
            )
        raise InvalidUpdateError(f"{self.stream}: update for another stream {update.stream}")

    def _check_delta(self, levels: list[Level], side: str) -> None:
        try:
            for p, q in levels:
                if not (0.0 < p < _INF and 0.0 <= q < _INF):
                    raise self._bad_level(side, p, q, "delta")
        except (TypeError, ValueError) as e:
            raise InvalidLevelError(f"{self.stream}: malformed {side} level: {e}") from e

    def _checked_snapshot(self, update: BookUpdate) -> tuple[list[Level], list[Level]]:
        for levels, side in ((update.bids, "bid"), (update.asks, "ask")):
            try:
                for p, q in levels:
                    if not (0.0 < p < _INF and 0.0 < q < _INF):
                        raise self._bad_level(side, p, q, "snapshot")
            except (TypeError, ValueError) as e:
                raise InvalidLevelError(f"{self.stream}: malformed {side} level: {e}") from e
            if len({p for p, _ in levels}) != len(levels):
                raise InvalidLevelError(f"{self.stream}: duplicate {side} price in snapshot")
        if update.bids and update.asks:
            best_bid = max(p for p, _ in update.bids)
            best_ask = min(p for p, _ in update.asks)
            if best_bid >= best_ask:
                raise CrossedBookError(
                    f"{self.stream}: crossed snapshot, bid price {best_bid!r} "
                    f">= ask price {best_ask!r}"
                )
        return update.bids, update.asks

    def _bad_level(self, side: str, p: float, q: float, kind: str) -> InvalidLevelError:
        return InvalidLevelError(
            f"{self.stream}: invalid {side} level in {kind}: price={p!r} quantity={q!r}"
        )

    # -- reading -----------------------------------------------------------

    def bids(self, n: int = 0) -> list[Level]:
        """Best ``n`` bids, highest price first (all when n == 0)."""
        return self.bid_side.top(n)

    def asks(self, n: int = 0) -> list[Level]:
        """Best ``n`` asks, lowest price first (all when n == 0)."""
        return self.ask_side.top(n)

    def best_bid(self) -> Level | None:
        return self.bid_side.best()

    def best_ask(self) -> Level | None:
        return self.ask_side.best()

    @property
    def bid_count(self) -> int:
        return len(self.bid_side)

    @property
    def ask_count(self) -> int:
        return len(self.ask_side)

    def snapshot(self, depth: int = 0) -> BookUpdate:
        """The book cut to ``depth`` (0 = all) as an ``is_snapshot`` update."""
        return cut_snapshot(self, depth)

    def copy(self) -> OrderBook:
        """An independent copy with the same levels, sequence and state."""
        other = type(self).__new__(type(self))
        other.__dict__.update(self.__dict__)
        other.bid_side = self.bid_side.copy()
        other.ask_side = self.ask_side.copy()
        return other

    def same_state(self, other: OrderBook) -> bool:
        """True when both books hold the same levels, sequence and staleness."""
        return (
            self.bid_side.qty == other.bid_side.qty
            and self.ask_side.qty == other.ask_side.qty
            and self.bids() == other.bids()
            and self.asks() == other.asks()
            and (self.sequence, self.stale, self.stale_reason, self.timestamp_ns)
            == (other.sequence, other.stale, other.stale_reason, other.timestamp_ns)
        )


def _apply_levels(side: Ladder, levels: list[Level]) -> None:
    for p, q in levels:
        if q:
            side.set(p, q)
        else:
            side.remove(p)


def cut_snapshot(book: OrderBook | AggregatedBook, depth: int) -> BookUpdate:
    """A book (or aggregated book: its exchange is UNKNOWN) cut to ``depth`` (0 = all)
    as an ``is_snapshot`` update with its checksum."""
    bids, asks = book.bid_side.top(depth), book.ask_side.top(depth)
    return BookUpdate(
        exchange=book.exchange,
        symbol=book.symbol,
        timestamp_ns=book.timestamp_ns,
        sequence=book.sequence,
        bids=bids,
        asks=asks,
        is_snapshot=True,
        checksum=book_checksum(asks, bids),
        depth=depth,
        ingest_ns=book.ingest_ns,
    )
