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
        self._add(*self._growth(session, closed))

    def fold_all(self, sessions: Iterable[Counted]) -> None:
        """Every open session's growth, added to the counters in one ``inc`` each: two
        per session (each takes the metric's lock) were 4 % of the loop at 10,000
        clients (bench/README.md, "Fifteenth pass")."""
        messages = nbytes = 0
        growth = self._growth
        for s in sessions:
            m, b = growth(s, False)
            messages += m
            nbytes += b
        self._add(messages, nbytes)

    def _growth(self, session: Counted, closed: bool) -> tuple[int, int]:
        """(messages, bytes) ``session`` sent since the last fold, noted as folded."""
        reported = self._reported
        m, b = session.messages_sent, session.bytes_sent
        if closed:
            m0, b0 = reported.pop(session.id, (0, 0))
        else:
            m0, b0 = reported.get(session.id, (0, 0))
            if m != m0 or b != b0:
                reported[session.id] = (m, b)
        return max(0, m - m0), max(0, b - b0)

    def _add(self, messages: int, nbytes: int) -> None:
        if messages:
            self.messages.inc(messages)
        if nbytes:
            self.nbytes.inc(nbytes)
