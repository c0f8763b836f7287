"""Plausibility of a book record's sequence: one poisoned record must not freeze a stream.

A live book accepts any snapshot newer than itself, so a single record claiming
sequence 2^63 would make every later genuine record "old" and freeze the stream
for good. A record whose sequence jumps more than ``max_jump`` past the book's is
refused instead (the caller dead-letters it) and the book stays as it was.

A producer that really re-based its sequences (restarted with another origin)
is followed after a confirmation: a second snapshot within ``max_jump`` after a
refused one is accepted. One poisoned record cannot do that; a writer able to
produce a consistent series controls the stream anyway (docs/security.md).
"""

from __future__ import annotations

from core.book import OrderBook
from core.types import BookUpdate


class SequenceGuard:
    """Refuses implausible sequence jumps; ``max_jump`` 0 turns the check off."""

    def __init__(self, max_jump: int, max_candidates: int = 10_000) -> None:
        self.max_jump = max_jump
        self.max_candidates = max_candidates
        self._candidates: dict[str, int] = {}
        """stream -> sequence of the last refused snapshot (a re-base waiting for proof)."""

    def refusal(self, book: OrderBook | None, update: BookUpdate) -> str | None:
        """None when the record may be applied, else why it is refused."""
        if self.max_jump <= 0 or book is None or book.sequence == 0:
            return None
        stream = book.stream
        jump = update.sequence - book.sequence
        if jump <= self.max_jump:
            if update.is_snapshot:
                self._candidates.pop(stream, None)
            return None
        if update.is_snapshot:
            seen = self._candidates.get(stream)
            if seen is not None and 0 < update.sequence - seen <= self.max_jump:
                del self._candidates[stream]  # a second, consistent snapshot: re-based
                return None
            if len(self._candidates) >= self.max_candidates:
                self._candidates.clear()
            self._candidates[stream] = update.sequence
        elif book.stale:
            return None  # ignored by the book anyway (waiting for a snapshot)
        return (
            f"{stream} sequence {update.sequence} jumps {jump} past {book.sequence} "
            f"(max_sequence_jump {self.max_jump})"
        )
