"""``ws_messages_sent_total`` and ``ws_bytes_sent_total`` while connections are open.

Sessions count what they send in plain ints (no metric call per frame on the hot
path); :class:`SentMeter` folds the growth of those counts into the Prometheus
counters once a second and when a session ends, so ``/metrics`` (and ``mdgw
top``'s messages/s) moves while clients are connected, not only when they leave.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from prometheus_client import Counter

from mdgw import metrics


class Counted(Protocol):
    id: int
    messages_sent: int
    bytes_sent: int


class SentMeter:
    def __init__(
        self, messages: Counter = metrics.MESSAGES_SENT, nbytes: Counter = metrics.BYTES_SENT
    ) -> None:
        self.messages = messages
        self.nbytes = nbytes
        self._reported: dict[int, tuple[int, int]] = {}
        """Session id -> (messages, bytes) already added to the counters."""

    def fold(self, session: Counted, *, closed: bool = False) -> None:
        """Add what ``session`` sent since the last fold; ``closed`` forgets it afterwards."""
        if closed:
            m0, b0 = self._reported.pop(session.id, (0, 0))
        else:
            m0, b0 = self._reported.get(session.id, (0, 0))
        m, b = session.messages_sent, session.bytes_sent
        if m > m0:
            self.messages.inc(m - m0)
        if b > b0:
            self.nbytes.inc(b - b0)
        if not closed and (m, b) != (m0, b0):
            self._reported[session.id] = (m, b)

    def fold_all(self, sessions: Iterable[Counted]) -> None:
        for s in sessions:
            self.fold(s)
