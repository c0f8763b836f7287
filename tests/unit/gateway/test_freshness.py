"""Freshness (docs/protocol.md §4.6) without sockets: a fake clock, a fake send queue.

A client whose oldest undelivered book message is older than ``max_lag`` loses its
queued deltas, gets ``status resync`` and a snapshot once drained, and is closed 1013
if it falls behind again within ``slow_timeout``. Trades are never dropped.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from core.market import Market
from core.types import BookUpdate, Exchange, Trade
from gateway import hub as hub_mod
from gateway import session as session_mod
from gateway.clock import Clock as GatewayClock
from gateway.hub import Hub
from gateway.session import Session
from gateway.subscriptions import StreamKey, ViewKey
from mdgw import metrics
from tests.unit.gateway.fakes import FakeConn, frames_of, messages_of

MS = 1_000_000
KEY = ViewKey(False, "KRAKEN:BTC-USD", 10, False)


class Clock:
    def __init__(self) -> None:
        self.t = 1_000 * MS

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def kernel(monkeypatch: Any) -> dict[int, int]:
    """Bytes in the fake kernel send queue, per fake file descriptor."""
    queue: dict[int, int] = {}
    monkeypatch.setattr(session_mod, "kernel_unsent", lambda fd: queue.get(fd, 0))
    return queue


def make(
    kernel: dict[int, int], resync_interval: float = 5.0
) -> tuple[Market, Hub, Session, Clock]:
    market = Market(verify_checksums=False)
    market.apply_book(
        BookUpdate(Exchange.KRAKEN, "BTC-USD", 1, 1, [(100.0, 1.0)], [(101.0, 1.0)], True), 0
    )
    clock = Clock()
    hub = Hub(
        market,
        clock=GatewayClock(mono_ns=clock),
        high_water=1 << 20,
        slow_timeout=5.0,
        resync_interval=resync_interval,
        max_lag_ms=500,
    )
    return market, hub, client(hub, kernel, 7), clock


def client(hub: Hub, kernel: dict[int, int], fd: int, binary: bool = False) -> Session:
    """A session on ``KEY`` whose fake kernel send queue (``kernel[fd]``) is empty."""
    s = Session(FakeConn(), binary=binary, batch=False, fd=fd)
    kernel[fd] = 0
    hub.add_session(s)
    hub.add_view(s, KEY)
    return s


def feed(market: Market, hub: Hub, seq: int) -> None:
    upd = BookUpdate(
        Exchange.KRAKEN, "BTC-USD", seq, seq, [(100.0, float(seq))], [], False, seq - 1
    )
    event = market.apply_book(upd, 0)
    hub.on_book(event.stream, event.result, None)
    hub.flush()


def trade(market: Market, hub: Hub, n: int) -> None:
    t = Trade(Exchange.KRAKEN, "BTC-USD", n, str(n), 100.0, 1.0, "buy", n)
    market.apply_trade(t, 0)
    hub.on_trade(t)
    hub.flush()


def types(s: Session) -> list[str]:
    return [
        m["type"] + (":" + m["status"] if m["type"] == "status" else "")
        for m in messages_of(s.conn)
    ]


def test_a_client_that_keeps_up_is_left_alone(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    for seq in range(2, 20):
        feed(market, hub, seq)
        clock.t += 100 * MS
        hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is None and s.dropped == 0
    assert types(s).count("order_book_update") == 18


def test_old_data_in_the_kernel_queue_means_behind_then_resync(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    feed(market, hub, 2)
    kernel[7] = s.out.written  # nothing written has reached the client
    clock.t += 300 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is None  # 300 ms: not yet
    clock.t += 300 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None and s.behind_reason == "lag"
    told = messages_of(s.conn)[-1]  # told at once, per stream it follows
    assert told == {
        "type": "status",
        "exchange": "KRAKEN",
        "symbol": "BTC-USD",
        "status": "behind",
        "reason": "lag",
        "lag_ms": 600,
    }
    feed(market, hub, 3)  # not queued for a client behind
    assert s.dropped == 1 and types(s)[-2:] == ["order_book_update", "status:behind"]
    kernel[7] = 0  # the client read everything
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert types(s)[-2:] == ["status:resync", "order_book_snapshot"]
    assert messages_of(s.conn)[-1]["sequence"] == 3 and s.resyncs == 1


@pytest.mark.parametrize("interval", [5.0, 1.5, 1.0])
def test_behind_again_soon_after_a_resync_waits_for_its_next_resync(
    kernel: dict[int, int], interval: float
) -> None:
    market, hub, s, clock = make(kernel, interval)
    wait_ms = int(interval * 1000)
    feed(market, hub, 2)
    kernel[7] = s.out.written
    clock.t += 600 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    feed(market, hub, 3)  # dropped while behind: the client's book needs a snapshot
    kernel[7] = 0
    hub.check_slow(lambda *a: pytest.fail("closed"))  # resync 1
    assert s.resyncs == 1
    feed(market, hub, 4)
    kernel[7] = 10_000
    clock.t += 600 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None
    feed(market, hub, 5)
    kernel[7] = 0
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.resyncs == 1 and s.behind_since is not None  # caught up, but too soon
    feed(market, hub, 6)
    assert types(s)[-1] != "order_book_update" or s.dropped >= 1  # still no deltas
    clock.t += (wait_ms - 700) * MS  # 100 ms short of the interval since resync 1
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.resyncs == 1
    clock.t += 150 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.resyncs == 2 and s.behind_since is None
    assert types(s)[-2:] == ["status:resync", "order_book_snapshot"]


def test_behind_by_its_probe_alone_and_nothing_lost_goes_on_without_a_resync(
    kernel: dict[int, int],
) -> None:
    """Every message left our queues and the kernel's before it fell behind (only its
    probe is unanswered) and none was due while it was: its books are whole, a
    snapshot would resend what it holds."""
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)
    clock.t += 600 * MS  # kernel[7] == 0: all sent, the client has not answered
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None
    before = types(s)
    s.on_pong(pings(s)[-1])
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is None and s.resyncs == 0
    assert types(s) == [*before, "status:caught_up"]  # told it is current again, no snapshot
    assert before[-1] == "status:behind"
    feed(market, hub, 3)
    assert types(s)[-1] == "order_book_update"  # deltas flow again, chained


def test_behind_with_data_in_the_kernel_queue_is_resynced(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    feed(market, hub, 2)
    kernel[7] = s.out.written  # all of it still in the kernel's send queue
    clock.t += 600 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None
    kernel[7] = 0
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.resyncs == 1 and types(s)[-2:] == ["status:resync", "order_book_snapshot"]


def test_behind_too_long_is_closed_1013(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    feed(market, hub, 2)
    kernel[7] = s.out.written
    clock.t += 600 * MS
    closed: list[int] = []
    hub.check_slow(lambda sess, code, reason: closed.append(code))
    clock.t += 5_100 * MS
    hub.check_slow(lambda sess, code, reason: closed.append(code))
    assert closed == [1013]


def test_held_data_waits_then_goes_in_one_write(kernel: dict[int, int]) -> None:
    market, hub, s, _ = make(kernel)
    writes = s.conn.transport.writes
    s.conn.transport.buffered = 10  # the kernel queue is full: the transport holds bytes
    feed(market, hub, 2)
    feed(market, hub, 3)
    assert s.conn.transport.writes == writes and len(s.pending) == 2
    s.conn.transport.buffered = 0
    hub.flush()
    assert s.conn.transport.writes == writes + 1
    assert types(s)[-2:] == ["order_book_update", "order_book_update"]


def test_held_data_older_than_max_lag_is_dropped(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    s.conn.transport.buffered = 10
    feed(market, hub, 2)
    clock.t += 600 * MS
    hub.check_slow(lambda *a: None)
    assert s.behind_since is not None and s.pending == [] and s.dropped == 1


def test_trades_are_never_dropped_for_a_client_behind(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    hub.add_stream(s, StreamKey("trades", "KRAKEN:BTC-USD"))
    s.conn.transport.buffered = 10
    feed(market, hub, 2)
    trade(market, hub, 1)
    clock.t += 600 * MS
    hub.check_slow(lambda *a: None)
    trade(market, hub, 2)
    assert s.behind_since is not None
    s.conn.transport.buffered = 0
    hub.flush()
    got = [m["trade_id"] for m in messages_of(s.conn) if m["type"] == "trade"]
    assert got == ["1", "2"]


def test_heartbeats_reach_every_session_once_per_round_in_slices(kernel: dict[int, int]) -> None:
    _, hub, s, _ = make(kernel)
    others = [Session(FakeConn(), binary=False, batch=False) for _ in range(9)]
    hub.sessions.update(others)
    every = [s, *others]
    for _ in range(5):  # 10 sessions in 5 slices: 2 per slice
        before = sum(x.conn.transport.writes for x in every)
        hub.heartbeat_slice(b'{"type":"heartbeat"}', b"", 5)
        assert sum(x.conn.transport.writes for x in every) - before == 2
    assert all(types(x).count("heartbeat") == 1 for x in every)


def test_few_sessions_get_one_heartbeat_a_round_not_one_a_slice(kernel: dict[int, int]) -> None:
    """Fewer sessions than slices: a round still lasts the whole interval (every 5 s, not
    every 0.25 s for a lone client), and the slices with nobody left still flush."""
    _, hub, s, _ = make(kernel)
    others = [Session(FakeConn(), binary=False, batch=False) for _ in range(2)]
    hub.sessions.update(others)
    for _ in range(40):  # two rounds of 20 slices
        hub.heartbeat_slice(b'{"type":"heartbeat"}', b"", 20)
    assert [types(x).count("heartbeat") for x in (s, *others)] == [2, 2, 2]


def probed(kernel: dict[int, int]) -> tuple[Market, Hub, Session, Clock]:
    market, hub, s, clock = make(kernel)
    s.probe_ns = 100 * MS
    return market, hub, s, clock


def pings(s: Session) -> list[bytes]:
    return [payload for opcode, payload in frames_of(s.conn) if opcode == 0x9]


def test_a_probe_rides_on_data_one_outstanding_and_one_per_interval_at_most(
    kernel: dict[int, int],
) -> None:
    market, hub, s, clock = probed(kernel)
    writes = s.conn.transport.writes
    feed(market, hub, 2)
    assert len(pings(s)) == 1 and frames_of(s.conn)[-1][0] == 0x9  # after the data
    assert s.conn.transport.writes == writes + 1  # in the same write: no syscall of its own
    feed(market, hub, 3)
    assert len(pings(s)) == 1  # one outstanding at a time
    s.on_pong(pings(s)[-1])
    assert len(s.out.marks) == 1  # update 2 confirmed read; update 3 came after the probe
    feed(market, hub, 4)
    assert len(pings(s)) == 1  # answered, but the last one is younger than the interval
    clock.t += 100 * MS
    feed(market, hub, 5)
    assert len(pings(s)) == 2 and frames_of(s.conn)[-1][0] == 0x9


def test_quiet_data_is_probed_on_its_own_and_a_silent_client_falls_behind(
    kernel: dict[int, int],
) -> None:
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)
    clock.t += 200 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert len(pings(s)) == 1  # the one that rode on the data, still outstanding
    s.on_pong(pings(s)[-1])  # the client read everything so far
    feed(market, hub, 3)
    clock.t += 200 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is None
    clock.t += 400 * MS  # update 3 unread for 600 ms, whatever the kernel says
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None and s.behind_reason == "lag"


def test_probes_and_their_answers_are_counted_per_session(kernel: dict[int, int]) -> None:
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)  # a probe rides on the data
    s.on_pong(b"mdgw" + (99).to_bytes(8, "big"))  # not an answer to it
    assert (s.probes_with_data, s.probes_alone, s.probe_answers) == (1, 0, 0)
    s.on_pong(pings(s)[-1])
    feed(market, hub, 3)  # within the interval: no probe
    clock.t += 100 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))  # update 3 quiet for 100 ms: one alone
    s.on_pong(pings(s)[-1])
    s.on_pong(pings(s)[-1])  # the same pong twice counts once
    assert (s.probes_with_data, s.probes_alone, s.probe_answers) == (1, 1, 2)


def test_a_client_behind_is_probed_on_its_own_and_resynced_when_it_answers(
    kernel: dict[int, int],
) -> None:
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)
    clock.t += 600 * MS
    hub.check_slow(lambda *a: None)
    assert s.behind_since is not None
    feed(market, hub, 3)  # dropped while behind
    unanswered = len(pings(s))
    clock.t += 100 * MS
    hub.check_slow(lambda *a: None)
    assert s.behind_since is not None  # the pong to the first probe never came
    s.on_pong(b"mdgw" + (99).to_bytes(8, "big"))  # a stale or foreign payload counts nothing
    assert s.behind_since is not None
    s.on_pong(pings(s)[-1])
    hub.check_slow(lambda *a: None)
    assert types(s)[-2:] == ["status:resync", "order_book_snapshot"]
    assert len(pings(s)) >= unanswered


def test_a_flush_budget_leaves_the_rest_queued_and_rotates_who_goes_first(
    kernel: dict[int, int],
) -> None:
    market, hub, s, _ = make(kernel)
    others = [Session(FakeConn(), binary=False, batch=False) for _ in range(199)]
    for x in others:
        hub.add_session(x)
        hub.add_view(x, KEY)
    every = [s, *others]
    ticks = iter(range(0, 10**12, 10_000))  # each clock read: 10 us later
    hub.mono = lambda: next(ticks)
    event = market.apply_book(
        BookUpdate(Exchange.KRAKEN, "BTC-USD", 2, 2, [(100.0, 2.0)], [], False, 1), 0
    )
    hub.on_book(event.stream, event.result, None)
    hub.flush(budget_ns=15_000)  # spent after 128 sessions
    first = {x for x in every if types(x).count("order_book_update") == 1}
    assert 0 < len(first) < 200 and hub.backlog
    while hub.backlog:
        hub.flush(budget_ns=15_000)
    assert all(types(x).count("order_book_update") == 1 for x in every)
    event = market.apply_book(
        BookUpdate(Exchange.KRAKEN, "BTC-USD", 3, 3, [(100.0, 3.0)], [], False, 2), 0
    )
    hub.on_book(event.stream, event.result, None)
    hub.flush(budget_ns=15_000)
    second = {x for x in every if types(x).count("order_book_update") == 2}
    assert second and second != first  # someone else went first this time


def test_a_running_replay_is_paced_by_itself_not_judged_by_age(kernel: dict[int, int]) -> None:
    market, hub, s, clock = make(kernel)
    s.replays[1] = object()  # a replay at speed 0 streams history as fast as it is read
    feed(market, hub, 2)
    kernel[7] = s.out.written
    clock.t += 600 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is None
    s.replays.clear()
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None and s.behind_reason == "lag"


async def test_timers_flush_one_slice_and_leave_the_rest_to_the_next_loop_turn(
    kernel: dict[int, int],
) -> None:
    """A heartbeat (or any timer) over a backlog writes one slice, then yields to the
    I/O that came meanwhile: it never writes the whole backlog in one loop turn."""
    import asyncio

    from gateway.hub import FLUSH_SLICE_NS

    _market, hub, s, _ = make(kernel)
    every = [s] + [Session(FakeConn(), binary=False, batch=False) for _ in range(299)]
    for x in every[1:]:
        hub.add_session(x)
        hub.add_view(x, KEY)
    ticks = iter(range(0, 10**15, FLUSH_SLICE_NS // 2))  # each clock read: half a slice
    hub.mono = lambda: next(ticks)
    hub.heartbeat_slice(b'{"type":"heartbeat"}', b"", 1)
    beat = {x for x in every if "heartbeat" in types(x)}
    assert 0 < len(beat) < len(every) and hub.backlog
    for _ in range(10):
        await asyncio.sleep(0)  # the next loop turns go on writing
    assert all("heartbeat" in types(x) for x in every) and not hub.backlog


def test_one_behind_status_per_stream_followed_book_and_bbo_alike(kernel: dict[int, int]) -> None:
    """A client on a stream's book and its bbo, and on a canonical symbol's bbo, is told
    once per stream, in one write, before anything else is held back."""
    market, hub, s, clock = make(kernel)
    assert hub.bbo.subscribe(s, "KRAKEN:BTC-USD") and hub.bbo.subscribe(s, "BTC-USD")
    feed(market, hub, 2)
    kernel[7] = s.out.written
    writes = s.conn.transport.writes
    clock.t += 600 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.conn.transport.writes == writes + 1
    told = [m for m in messages_of(s.conn) if m.get("status") == "behind"]
    assert [(m.get("exchange"), m["symbol"]) for m in told] == [
        (None, "BTC-USD"),
        ("KRAKEN", "BTC-USD"),
    ]


def test_lag_counts_from_when_the_records_reached_the_process(kernel: dict[int, int]) -> None:
    """Records that waited 400 ms for the loop leave 100 ms of ``max_lag``: the client is
    behind 100 ms after they are written, not 500 ms."""
    market, hub, s, clock = make(kernel)
    hub.arrived_ns = clock.t - 400 * MS
    feed(market, hub, 2)
    hub.arrived_ns = 0
    kernel[7] = s.out.written
    clock.t += 150 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None
    assert messages_of(s.conn)[-1]["lag_ms"] == 550


@pytest.mark.parametrize("binary", [False, True])
def test_a_resync_is_one_write_of_every_status_and_snapshot_in_order(
    kernel: dict[int, int], binary: bool
) -> None:
    """A client on two views of a stream and its bbo gets, when resynced, a status and a
    snapshot per view and a status and the top for the bbo, in one write (statuses are
    text frames, data in the client's format)."""
    market, hub, _, clock = make(kernel)
    s = client(hub, kernel, 8, binary)
    hub.add_view(s, ViewKey(False, "KRAKEN:BTC-USD", 20, False))
    assert hub.bbo.subscribe(s, "KRAKEN:BTC-USD")
    feed(market, hub, 2)
    kernel[8] = s.out.written
    clock.t += 600 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None
    feed(market, hub, 3)  # dropped: the client needs a snapshot
    kernel[8] = 0
    writes, before = s.conn.transport.writes, len(frames_of(s.conn))
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.resyncs == 1 and s.conn.transport.writes == writes + 1
    got = frames_of(s.conn)[before:]
    data_op = 0x2 if binary else 0x1
    assert [op for op, _ in got] == [0x1, data_op] * 3
    for _, p in got[::2]:
        assert orjson.loads(p) == {
            "type": "status",
            "exchange": "KRAKEN",
            "symbol": "BTC-USD",
            "status": "resync",
            "reason": "slow consumer",
        }
    if not binary:
        data = [orjson.loads(p) for _, p in got[1::2]]
        assert sorted(m["type"] for m in data) == ["bbo"] + ["order_book_snapshot"] * 2
    assert s.out.marks and s.out.marks[-1][0] == s.out.written  # one mark for the write


def test_resyncs_stop_when_their_share_of_the_check_is_spent_longest_behind_first(
    kernel: dict[int, int],
) -> None:
    """Four drained clients due a resync; each resync takes 6 ms of the check's 10 ms
    (max_lag 500 / RESYNC_SHARE): two go now, longest behind first, two at the next
    check. None is closed meanwhile: a client waiting for its resync has drained."""
    market, hub, first, clock = make(kernel)
    sessions = [first] + [client(hub, kernel, fd) for fd in (8, 9, 10)]
    for i, s in enumerate(reversed(sessions)):  # the last session falls behind first
        feed(market, hub, 2 + i)
        kernel[s.fd] = s.out.written  # the others read theirs
        clock.t += 600 * MS
        hub.check_slow(lambda *a: pytest.fail("closed"))
        assert s.behind_since is not None
    feed(market, hub, 6)  # dropped for all: each needs a snapshot
    for s in sessions:
        kernel[s.fd] = 0
    spent = iter(range(0, 10**9, 6 * MS))
    hub.work_clock = lambda: next(spent)
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert [s.resyncs for s in sessions] == [0, 0, 1, 1]
    clock.t += 100 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert [s.resyncs for s in sessions] == [1, 1, 1, 1]


def test_a_check_with_a_budget_stops_and_goes_on_where_it_stopped(
    kernel: dict[int, int],
) -> None:
    """``check_slow(close, budget_ns)`` over many clients returns False when its slice is
    spent (the loop polls its sockets meanwhile); the next call goes on with the clients
    not yet looked at, and a new check starts only once that one is done."""
    market, hub, first, clock = make(kernel)
    sessions = [first] + [client(hub, kernel, fd) for fd in range(8, 14)]
    feed(market, hub, 2)
    for s in sessions:
        kernel[s.fd] = s.out.written  # none of it read
    clock.t += 600 * MS
    ticks = iter(range(0, 10**9, MS))
    hub.work_clock = lambda: next(ticks)  # each look at the clock: 1 ms more
    calls = 0
    while not hub.check_slow(lambda *a: pytest.fail("closed"), 3 * MS):
        calls += 1
        if calls == 1:  # some now, the rest later
            assert 0 < sum(s.behind_since is not None for s in sessions) < len(sessions)
        feed(market, hub, 2 + calls)  # other callbacks run between slices
    assert calls >= 2
    assert all(s.behind_since is not None for s in sessions)
    # done: the next call is a new check (the clients have read everything meanwhile)
    for s in sessions:
        kernel[s.fd] = 0
    clock.t += 2_000 * MS
    assert hub.check_slow(lambda *a: pytest.fail("closed"))
    assert all(s.behind_since is None and s.resyncs == 1 for s in sessions)


def test_clients_with_nothing_old_are_passed_over_in_chunks_and_an_old_one_among_them_found(
    kernel: dict[int, int],
) -> None:
    """A check over many clients whose unconfirmed data is young takes one step per
    FRESH_CHUNK of them (10,000 clients every max_lag / 5: the step cost more than the
    look); one with old data among them still gets its own step and its verdict."""
    market, hub, old, clock = make(kernel)
    feed(market, hub, 2)
    kernel[old.fd] = old.out.written  # never read
    clock.t += 600 * MS
    young = [client(hub, kernel, fd) for fd in range(100, 100 + 3 * hub_mod.FRESH_CHUNK)]
    feed(market, hub, 3)  # written just now: nothing old enough to look at
    looks = 0

    def work() -> int:
        nonlocal looks
        looks += 1
        return 0

    hub.work_clock = work
    assert hub.check_slow(lambda *a: pytest.fail("closed"), MS)
    assert old.behind_since is not None and old.behind_reason == "lag"
    assert all(s.behind_since is None for s in young)
    # one look at the budget per step: the old client's, one per chunk of young ones,
    # and the check's own start and end (a client per step would be 3 * FRESH_CHUNK + 1)
    assert looks <= 3 + 1 + 3


def test_a_client_gone_between_slices_is_skipped(kernel: dict[int, int]) -> None:
    market, hub, first, clock = make(kernel)
    second = client(hub, kernel, 8)
    feed(market, hub, 2)
    for s in (first, second):
        kernel[s.fd] = s.out.written
    clock.t += 600 * MS
    ticks = iter(range(0, 10**9, 10 * MS))
    hub.work_clock = lambda: next(ticks)
    hub.check_slow(lambda *a: pytest.fail("closed"), MS)  # one client per slice
    later = second if first.behind_since is not None else first
    assert later.behind_since is None
    hub.remove_session(later)
    while not hub.check_slow(lambda *a: pytest.fail("closed"), MS):
        pass
    assert later.behind_since is None and "status:behind" not in types(later)


async def test_one_flush_slice_per_loop_turn(kernel: dict[int, int]) -> None:
    """While a slice is scheduled for the next turn, another flush_slice writes nothing
    now: a batch, a conflation tick and a heartbeat in one turn wrote a slice each."""
    market, hub, s, _ = make(kernel)
    hub._continuing = True  # a slice is due next turn
    feed_only = BookUpdate(Exchange.KRAKEN, "BTC-USD", 2, 2, [(100.0, 2.0)], [], False, 1)
    event = market.apply_book(feed_only, 0)
    hub.on_book(event.stream, event.result, None)
    written = s.out.written
    ends: list[bool] = []
    hub.on_written = lambda flushed: ends.append(hub.backlog)  # the fanout hop ends there
    hub.flush_slice()
    assert s.out.written == written and hub.backlog and not ends
    hub._continue()
    assert s.out.written > written and not hub.backlog
    assert ends == [False]  # after the flush that wrote it


def test_a_flush_out_of_time_goes_on_in_the_same_order_and_says_when_all_is_written(
    kernel: dict[int, int],
) -> None:
    """Slices of one pass keep its order (a new rotation each slice could send the same
    clients to the back again and again), first in first out; ``flushed`` reaches the
    ``queued_mark`` of a message's time once every client queued then is written."""
    market, hub, first, _ = make(kernel)
    sessions = [first] + [client(hub, kernel, fd) for fd in range(8, 8 + 200)]
    for s in sessions:
        s.out.marks.clear()
    ticks = iter(range(0, 10**12, MS))
    hub.mono = lambda: next(ticks)  # 1 ms per look at the clock: one look per 64 clients
    upd = BookUpdate(Exchange.KRAKEN, "BTC-USD", 2, 2, [(100.0, 2.0)], [], False, 1)
    event = market.apply_book(upd, 0)
    hub.on_book(event.stream, event.result, None)
    queued = [s.id for s in hub._touched]
    mark = hub.queued_mark()
    late = client(hub, kernel, 999)
    order: list[int] = []
    for s in sessions:
        s.conn.transport.write = lambda data, s=s: order.append(s.id)  # type: ignore[method-assign]
    late.conn.transport.write = lambda data: order.append(late.id)  # type: ignore[method-assign]
    hub.flush(2 * MS)
    assert 0 < len(order) < len(sessions) and hub.flushed < mark
    hub.queue_all([late], b"{}", b"")  # queued after the mark, during the pass: after it
    while hub.flushed < mark:
        hub.flush(2 * MS)
    hub.flush(2 * MS)
    assert order[-1] == late.id and not hub.backlog  # last, written once
    order.pop()
    assert sorted(order) == sorted(s.id for s in sessions)  # each once
    start = queued.index(order[0])
    assert order == queued[start:] + queued[:start]  # one rotation for the whole pass


def test_the_fanout_hop_of_a_batch_ends_when_its_last_client_is_written(
    kernel: dict[int, int],
) -> None:
    """``_drained_handler`` observes a batch's fanout once ``Hub.flushed`` passes the
    mark taken when it was applied: not at the end of the first slice (the metric was
    ~0 when a second slice in a turn wrote nothing)."""
    from prometheus_client import REGISTRY

    from gateway.app import _drained_handler
    from mdgw.kafka.source import Batch

    def fanouts() -> float:
        n = REGISTRY.get_sample_value("gateway_hop_seconds_count", {"hop": "fanout"})
        return n or 0.0

    market, hub, _first, _ = make(kernel)
    for fd in range(8, 8 + 199):
        client(hub, kernel, fd)
    ticks = iter(range(0, 10**12, MS))
    hub.mono = lambda: next(ticks)  # 1 ms per look at the clock: a 2 ms slice, 64 clients
    on_drained = _drained_handler(hub, type("Mat", (), {"last_ingest_ns": 0})())
    upd = BookUpdate(Exchange.KRAKEN, "BTC-USD", 2, 2, [(100.0, 2.0)], [], False, 1)
    event = market.apply_book(upd, 0)
    hub.on_book(event.stream, event.result, None)
    now = time.perf_counter_ns()
    batch = Batch([object()] * 3, now, time.time_ns(), now)  # type: ignore[list-item]
    before = fanouts()
    hub._continuing = True  # a slice is already due: this turn writes nothing more
    on_drained([batch])
    assert fanouts() == before and hub.backlog
    hub._continuing = False
    hub.flush(2 * MS)
    assert fanouts() == before and hub.backlog  # some clients written, not all
    while hub.backlog:
        hub.flush(2 * MS)
    assert fanouts() == before + 3  # the batch's 3 records, once


# ---- a stall of the gateway's own loop (test_freshness_stalls.py: live) -------------


def stalled(kernel: dict[int, int]) -> tuple[Market, Hub, Session, Clock]:
    """A probed client that read updates 2 and 3 (and answered the probe on 2); then the
    loop is held for 800 ms, and the hub is told."""
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)  # a probe rides on it
    feed(market, hub, 3)  # unconfirmed: the probe went before it
    clock.t += 800 * MS  # the loop held; the answer to the probe waits unread
    hub.loop_held()
    return market, hub, s, clock


def test_after_a_stall_a_client_that_answers_is_not_judged(kernel: dict[int, int]) -> None:
    _market, hub, s, clock = stalled(kernel)
    never = lambda *a: pytest.fail("closed")  # noqa: E731
    hub.check_slow(never)  # update 3 is 800 ms old: not judged, the loop just came back
    assert s.behind_since is None
    s.on_pong(pings(s)[-1])  # the next poll reads the answer to the first probe
    clock.t += 100 * MS
    hub.check_slow(never)  # update 3 is still unconfirmed: a probe of its own
    assert s.behind_since is None and len(pings(s)) == 2
    s.on_pong(pings(s)[-1])
    for _ in range(5):
        clock.t += 100 * MS
        hub.check_slow(never)
    assert s.behind_since is None and s.dropped == 0


def test_after_a_stall_a_client_that_does_not_answer_falls_behind(
    kernel: dict[int, int],
) -> None:
    _market, hub, s, clock = stalled(kernel)
    never = lambda *a: pytest.fail("closed")  # noqa: E731
    judged = []
    for _ in range(4):
        hub.check_slow(never)
        judged.append(s.behind_since is not None)
        clock.t += 100 * MS
    # not for two and a half check periods (the check runs every 100 ms), then at once
    assert judged == [False, False, False, True]
    assert s.behind_reason == "lag"


def test_without_a_stall_the_same_client_is_judged_at_once(kernel: dict[int, int]) -> None:
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)
    feed(market, hub, 3)
    clock.t += 800 * MS
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None and s.behind_reason == "lag"


def test_the_check_period_is_a_fifth_of_max_lag() -> None:
    assert Hub(Market(), max_lag_ms=500).check_period_s == 0.1
    assert Hub(Market(), max_lag_ms=20).check_period_s == 0.01  # at least 10 ms


def test_a_loop_late_all_the_time_still_judges(kernel: dict[int, int]) -> None:
    """Overload: every check comes late. A grace is not extended, and the next comes only
    after a check period of verdicts."""
    paused = metrics.VERDICTS_PAUSED._value.get()
    _market, hub, s, clock = stalled(kernel)
    judged = []
    for _ in range(6):
        hub.loop_held()  # late again
        hub.check_slow(lambda *a: pytest.fail("closed"))
        judged.append(s.behind_since is not None)
        clock.t += 100 * MS
    assert judged == [False, False, False, True, True, True]
    # the stall, and again at the first late check a check period after the grace
    assert metrics.VERDICTS_PAUSED._value.get() - paused == 2


def test_after_a_stall_data_the_kernel_still_holds_is_judged_at_once(
    kernel: dict[int, int],
) -> None:
    """Without probes the kernel's send queue is asked at the check itself: nothing waits
    unread, so a stall pauses no verdict."""
    market, hub, s, clock = make(kernel)  # probes off
    feed(market, hub, 2)
    kernel[7] = s.out.written  # nothing written has reached the client
    clock.t += 800 * MS
    hub.loop_held()
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None and s.behind_reason == "lag"


def test_after_a_stall_data_still_unwritten_past_max_lag_is_judged_at_once(
    kernel: dict[int, int],
) -> None:
    market, hub, s, clock = probed(kernel)
    feed(market, hub, 2)  # written, a probe rides on it: unconfirmed until answered
    upd = BookUpdate(Exchange.KRAKEN, "BTC-USD", 3, 3, [(100.0, 3.0)], [], False, 2)
    event = market.apply_book(upd, 0)
    hub.on_book(event.stream, event.result, None)  # queued, not written yet
    assert s.out.pending
    clock.t += 800 * MS
    hub.loop_held()
    hub.check_slow(lambda *a: pytest.fail("closed"))
    assert s.behind_since is not None and s.behind_reason == "lag"
