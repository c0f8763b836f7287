"""Recent messages of one book view, for resuming after a reconnect (docs/protocol.md §4.10).

A view's messages form a chain: each one's ``prev_sequence`` is the sequence of
the one before. :class:`ViewHistory` keeps the newest of them, bounded by count
and by age, and answers "every message after sequence S": the exact suffix a
client connected all along would have received after applying S, or None when
that suffix is no longer (or never was) held here.

The chain restarts (:meth:`ViewHistory.reset`) whenever the view does: a stale
book recovered, a resync of the view itself. Nothing from before a restart is
resumable. If a restart goes *back* in sequence (a producer that started again
from an earlier number), every sequence up to the highest seen before is refused
for good, so an old S can never be mistaken for a state of the new chain.

Pure: times are passed in (monotonic ns).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from itertools import islice
from typing import Generic, TypeVar

T = TypeVar("T")


class ViewHistory(Generic[T]):
    """The newest messages of one view's chain (at most ``max_messages``, none older
    than ``max_age_ns``)."""

    __slots__ = (
        "_items",
        "_seqs",
        "_times",
        "floor",
        "last",
        "max_age_ns",
        "max_messages",
        "start",
    )

    def __init__(self, max_messages: int, max_age_ns: int, sequence: int = 0) -> None:
        self.max_messages = max_messages
        self.max_age_ns = max_age_ns
        self._seqs: deque[int] = deque()
        self._times: deque[int] = deque()
        self._items: deque[T] = deque()
        self.start = sequence
        """``prev_sequence`` of the oldest message held (the chain's start when none
        was dropped yet): the oldest S that can be answered."""
        self.last = sequence
        """Sequence of the newest message (or the chain's start)."""
        self.floor = -1
        """Sequences at or below this are never answered (see the module docstring)."""

    def __len__(self) -> int:
        return len(self._items)

    def reset(self, sequence: int) -> None:
        """The view restarted at ``sequence`` (its snapshot): forget the old chain."""
        if sequence <= self.last:
            self.floor = max(self.floor, self.last)
        self._seqs.clear()
        self._times.clear()
        self._items.clear()
        self.start = self.last = sequence

    def append(self, sequence: int, prev_sequence: int, item: T, now_ns: int) -> None:
        """One more message of the chain; one that does not follow restarts it."""
        if prev_sequence != self.last or sequence <= prev_sequence:
            self.reset(sequence)  # not chained: nothing before it can be resumed
            return
        if self.max_messages <= 0:
            self.start = self.last = sequence
            return
        self._seqs.append(sequence)
        self._times.append(now_ns)
        self._items.append(item)
        self.last = sequence
        while len(self._items) > self.max_messages:
            self._drop_oldest()
        # the age bound is a memory bound too, not only a read-time filter: a view
        # nobody resumes from holds max_age_ns of messages, not max_messages
        cutoff = now_ns - self.max_age_ns
        times = self._times
        while times[0] < cutoff:
            self._drop_oldest()

    def expire(self, now_ns: int) -> None:
        """Drop messages older than ``max_age_ns``."""
        cutoff = now_ns - self.max_age_ns
        times = self._times
        while times and times[0] < cutoff:
            self._drop_oldest()

    def since(self, sequence: int, now_ns: int) -> list[T] | None:
        """Every message after ``sequence``, oldest first ([] when it is the newest), or
        None when they are not all held."""
        self.expire(now_ns)
        if sequence <= self.floor or sequence < self.start or sequence > self.last:
            return None
        seqs = self._seqs
        i = bisect_right(seqs, sequence)
        if i == 0:
            # before every held message: only the chain's start itself follows on
            return list(self._items) if sequence == self.start else None
        if seqs[i - 1] != sequence:
            return None  # not a sequence of this chain
        return list(islice(self._items, i, None))

    def _drop_oldest(self) -> None:
        self.start = self._seqs.popleft()
        self._times.popleft()
        self._items.popleft()
