"""What sessions send, in Prometheus counters while connections are open.

Sessions count what they send in plain ints (no metric call per frame on the hot
path): messages, bytes, probe pings (after data, or on their own) and the pongs that
answered them. :class:`SentMeter` folds the growth of those counts into the counters
once a second and when a session ends, so ``/metrics`` (and ``mdgw top``'s
messages/s) moves while clients are connected, not only when they leave.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
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
        """Session id -> the values already added to the counters (until it is folded
        ``closed``)."""

    def fold(self, session: Any, *, closed: bool = False) -> None:
        """Add what ``session`` sent since the last fold; ``closed`` forgets it afterwards."""
        now = self._values(session)
        if closed:
            before = self._reported.pop(session.id, self._zero)
        else:
            before = self._reported.get(session.id, self._zero)
            self._reported[session.id] = now
        self._add([max(0, a - b) for a, b in zip(now, before, strict=True)])

    def fold_all(self, sessions: Iterable[Any]) -> None:
        """Every open session's growth, added to each counter in one ``inc``, from sums
        over the sessions (no arithmetic per session in Python): two ``inc`` per session
        (each takes the metric's lock) were 4 % of the loop at 10,000 clients
        (bench/README.md, "Fifteenth pass")."""
        sessions = list(sessions)
        if not sessions:
            return
        ids = list(map(_id, sessions))
        now = list(map(self._values, sessions))
        before = list(map(self._reported.get, ids, repeat(self._zero)))
        self._reported.update(zip(ids, now, strict=True))
        self._add(
            [
                max(0, sum(a) - sum(b))
                for a, b in zip(zip(*now, strict=True), zip(*before, strict=True), strict=True)
            ]
        )

    def _add(self, growth: Sequence[int]) -> None:
        for counter, g in zip(self.counters, growth, strict=True):
            if g:
                counter.inc(g)


_id = attrgetter("id")
