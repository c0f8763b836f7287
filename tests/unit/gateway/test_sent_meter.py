"""SentMeter: per-session send counts reach the Prometheus counters while sessions are open."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from gateway.sent_meter import COUNTED, SentMeter


@dataclass
class Fake:
    id: int
    messages_sent: int = 0
    bytes_sent: int = 0


def meter() -> tuple[SentMeter, Counter, Counter]:
    reg = CollectorRegistry()
    m, b = Counter("m_total", "m", registry=reg), Counter("b_total", "b", registry=reg)
    return SentMeter((("messages_sent", m), ("bytes_sent", b))), m, b


def value(c: Counter) -> float:
    return float(c._value.get())


def test_open_sessions_are_counted_once_and_closed_ones_forgotten() -> None:
    sent, m, b = meter()
    a, c = Fake(1, 10, 1000), Fake(2, 1, 50)
    sent.fold_all([a, c])
    assert (value(m), value(b)) == (11, 1050)
    sent.fold_all([a, c])  # nothing new: nothing added
    assert (value(m), value(b)) == (11, 1050)
    a.messages_sent, a.bytes_sent = 15, 1500
    sent.fold(a, closed=True)
    assert (value(m), value(b)) == (16, 1550)
    assert 1 not in sent._reported
    sent.fold(c, closed=True)
    sent.fold(Fake(3, 2, 20), closed=True)  # never folded while open: all of it
    assert (value(m), value(b)) == (18, 1570) and sent._reported == {}


class CountingCounter:
    """A counter that records each ``inc`` (each takes the real metric's lock)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def inc(self, amount: float = 1) -> None:
        self.calls.append(amount)


def test_a_pass_over_many_sessions_adds_to_each_counter_once() -> None:
    m, b = CountingCounter(), CountingCounter()
    sent = SentMeter((("messages_sent", m), ("bytes_sent", b)))
    sessions = [Fake(i, i, 10 * i) for i in range(1, 101)]
    sent.fold_all(sessions)
    assert m.calls == [5050] and b.calls == [50500]
    sessions[0].messages_sent += 3
    sent.fold_all(sessions)
    sent.fold_all(sessions)  # nothing new: no call at all
    sent.fold_all([])
    assert m.calls == [5050, 3] and b.calls == [50500]


def test_one_counted_attribute_works_too() -> None:
    m = CountingCounter()
    sent = SentMeter((("messages_sent", m),))
    sent.fold_all([Fake(1, 4), Fake(2, 5)])
    sent.fold(Fake(3, 2), closed=True)
    assert m.calls == [9, 2]


def test_the_gateway_counts_messages_bytes_probes_and_their_answers() -> None:
    from gateway.session import Session
    from tests.unit.gateway.fakes import FakeConn

    s = Session(FakeConn(), binary=False, batch=False)
    counters = [CountingCounter() for _ in COUNTED]
    sent = SentMeter([(name, c) for (name, _), c in zip(COUNTED, counters, strict=True)])
    s.messages_sent, s.bytes_sent = 7, 700
    s.out.probe_seq, s.probes_alone, s.probe_answers = 4, 1, 4  # 3 of the 4 with data
    sent.fold_all([s])
    assert [c.calls for c in counters] == [[7], [700], [3], [1], [4]]


def test_a_session_left_out_of_a_pass_before_its_close_is_not_counted_twice() -> None:
    """The hub forgets a session (slow consumer closed) before its handler folds it
    ``closed``: a pass in between must not lose what was already counted for it."""
    sent, m, b = meter()
    a, c = Fake(1, 10, 100), Fake(2, 5, 50)
    sent.fold_all([a, c])
    a.messages_sent += 2
    c.messages_sent += 1
    sent.fold_all([c])  # a is no longer among the open sessions
    sent.fold(a, closed=True)
    assert value(m) == 18 and value(b) == 150
