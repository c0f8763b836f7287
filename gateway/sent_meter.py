"""What sessions send, in Prometheus counters while connections are open.

Sessions count what they send in plain ints (no metric call per frame on the hot
path): messages, bytes, probe pings (after data, or on their own) and the pongs that
answered them. :class:`SentMeter` folds the growth of those counts into the counters
once a second and when a session ends, so ``/metrics`` (and ``mdgw top``'s
messages/s) moves while clients are connected, not only when they leave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any, Protocol

from mdgw import metrics


class Incrementable(Protocol):
    def inc(self, amount: float = 1) -> None: ...


COUNTED: tuple[tuple[str, Incrementable], ...] = (
    ("messages_sent", metrics.MESSAGES_SENT),
    ("bytes_sent", metrics.BYTES_SENT),
    ("probes_with_data", metrics.PROBES.labels("with_data")),
    ("probes_alone", metrics.PROBES.labels("alone")),
    ("probe_answers", metrics.PROBE_ANSWERS),
)
"""Session attribute -> the counter its growth goes to."""


class SentMeter:
    def __init__(self, counted: Sequence[tuple[str, Incrementable]] = COUNTED) -> None:
        names = [name for name, _ in counted]
        self.counters = [counter for _, counter in counted]
        get = attrgetter(*names)
        # one attribute gives a bare value: always a tuple
        self._values: Any = get if len(names) > 1 else (lambda s: (get(s),))
        self._zero = (0,) * len(names)
        self._reported: dict[int, tuple[int, ...]] = {}
        """Session id -> the values already added to the counters."""

    def fold(self, session: Any, *, closed: bool = False) -> None:
        """Add what ``session`` sent since the last fold; ``closed`` forgets it afterwards."""
        self._add(self._growth(session, closed))

    def fold_all(self, sessions: Iterable[Any]) -> None:
        """Every open session's growth, added to each counter in one ``inc``: two per
        session (each takes the metric's lock) were 4 % of the loop at 10,000 clients
        (bench/README.md, "Fifteenth pass")."""
        growth = self._growth
        rows = [growth(s, False) for s in sessions]
        if rows:
            self._add([sum(column) for column in zip(*rows, strict=True)])

    def _growth(self, session: Any, closed: bool) -> tuple[int, ...]:
        """What ``session`` counted since the last fold, noted as folded."""
        reported = self._reported
        now = self._values(session)
        if closed:
            before = reported.pop(session.id, self._zero)
        else:
            before = reported.get(session.id, self._zero)
            if now != before:
                reported[session.id] = now
        if now == before:
            return self._zero
        return tuple(max(0, a - b) for a, b in zip(now, before, strict=True))

    def _add(self, growth: Sequence[int]) -> None:
        for counter, g in zip(self.counters, growth, strict=True):
            if g:
                counter.inc(g)
