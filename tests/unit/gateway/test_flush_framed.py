"""``Session.flush_framed`` (the hub's pass over plain clients) against the reference
it fuses, ``Session.flush()`` then ``Session.buffered()``: twin sessions driven through
the same steps write the same bytes and end in the same state."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.protocol import State

from gateway import framing
from gateway.session import Session
from tests.unit.gateway.fakes import FakeConn, parse_frames

PROBE_NS = 200_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


def twin(clock: Clock, probe_ns: int) -> tuple[Session, FakeConn]:
    conn = FakeConn()
    s = Session(conn, binary=False, batch=False, probe_ns=probe_ns, clock=clock)  # type: ignore[arg-type]
    assert s.framed
    return s, conn


def state(s: Session, conn: FakeConn) -> tuple[Any, ...]:
    out = s.out
    return (
        bytes(conn.transport.data),
        conn.transport.writes,
        list(out.pending),
        out.pending_since,
        out.written,
        list(out.marks),
        out.probe_seq,
        out.probe_at,
        out.probe_sent,
        s.messages_sent,
        s.bytes_sent,
    )


STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("queue"), st.integers(1, 3)),
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("tick"), st.one_of(st.just(PROBE_NS), st.integers(1, 300_000_000))),
        st.tuples(st.just("hold"), st.integers(0, 4096)),
        st.tuples(st.just("pong"), st.just(0)),
        st.tuples(st.just("cork"), st.just(0)),
        st.tuples(st.just("close"), st.sampled_from(["state", "closing", "gone"])),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(STEPS, st.sampled_from([0, PROBE_NS]))
def test_flush_framed_is_flush_then_buffered(steps: list[tuple[str, Any]], probe_ns: int) -> None:
    clock = Clock()
    fast, fconn = twin(clock, probe_ns)
    ref, rconn = twin(clock, probe_ns)
    n = 0
    for op, arg in steps:
        if op == "queue":
            for _ in range(arg):
                n += 1
                frame = framing.frame(framing.TEXT, b'{"n":%d}' % n)
                for s in (fast, ref):
                    s.out.add(frame, 1, clock.now)
        elif op == "flush":
            got = fast.flush_framed()
            want = (ref.flush(), ref.buffered())
            assert got == want
            assert state(fast, fconn) == state(ref, rconn)
        elif op == "tick":
            clock.now += arg
        elif op == "hold":  # the kernel's queue is full (or drains)
            fconn.transport.buffered = rconn.transport.buffered = arg
        elif op == "pong":
            for s in (fast, ref):
                if s.out.probe_at >= 0:
                    s.on_pong(s.out.probe_payload)
        elif op == "cork":
            with fast.cork():
                got = fast.flush_framed()
            with ref.cork():
                want = (ref.flush(), ref.buffered())
            assert got == want
        elif arg == "state":
            fconn.protocol.state = rconn.protocol.state = State.CLOSING
        elif arg == "closing":
            fconn.transport.closing = rconn.transport.closing = True
        else:
            fconn.transport = rconn.transport = None  # type: ignore[assignment]
            break
        assert state(fast, fconn) == state(ref, rconn) if fconn.transport else True
    got = fast.flush_framed()
    assert got == (ref.flush(), ref.buffered())
    if fconn.transport is not None:
        assert state(fast, fconn) == state(ref, rconn)
        parse_frames(bytes(fconn.transport.data))  # whole, unmasked frames


def test_a_probe_rides_on_the_write_once_an_interval() -> None:
    clock = Clock()
    s, conn = twin(clock, PROBE_NS)
    s.out.add(framing.frame(framing.TEXT, b"{}"), 1, clock.now)
    clock.now += PROBE_NS
    assert s.flush_framed() == (1, 0)
    opcodes = [op for op, _ in parse_frames(bytes(conn.transport.data))]
    assert opcodes == [framing.TEXT, framing.PING]
    s.out.add(framing.frame(framing.TEXT, b"{}"), 1, clock.now)
    assert s.flush_framed() == (1, 0)  # the probe is outstanding: no second one
    assert [op for op, _ in parse_frames(bytes(conn.transport.data))][2:] == [framing.TEXT]
    s.on_pong(s.out.probe_payload)
    clock.now += PROBE_NS - 1  # answered, but the last probe is not an interval old yet
    s.out.add(framing.frame(framing.TEXT, b"{}"), 1, clock.now)
    s.flush_framed()
    assert [op for op, _ in parse_frames(bytes(conn.transport.data))][3:] == [framing.TEXT]
    clock.now += 1
    s.out.add(framing.frame(framing.TEXT, b"{}"), 1, clock.now)
    s.flush_framed()
    opcodes = [op for op, _ in parse_frames(bytes(conn.transport.data))][4:]
    assert opcodes == [framing.TEXT, framing.PING]


def test_held_data_waits_and_says_how_much_is_held() -> None:
    clock = Clock()
    s, conn = twin(clock, 0)
    s.out.add(framing.frame(framing.TEXT, b"{}"), 1, clock.now)
    conn.transport.buffered = 100
    assert s.flush_framed() == (-1, 100)
    assert conn.transport.writes == 0 and len(s.out.pending) == 1
