"""gateway.outbox: what is pending, what was written, how old the undelivered part is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.outbox import DELTA, KEEP, Outbox


def test_add_reports_the_first_message_of_a_tick() -> None:
    out = Outbox()
    assert out.add(b"a", DELTA, 10)
    assert not out.add(b"b", KEEP, 20)
    assert out.pending_since == 10 and out.age(25) == 15


def test_take_then_wrote_leaves_a_mark_with_the_oldest_queue_time() -> None:
    out = Outbox()
    out.add(b"a", DELTA, 10)
    out.add(b"bb", DELTA, 20)
    assert out.take() == [b"a", b"bb"]
    out.wrote(7, 10)
    assert out.pending == [] and out.written == 7 and list(out.marks) == [(7, 10)]
    assert out.age(100) == 90


def test_confirm_forgets_what_the_peer_has() -> None:
    out = Outbox()
    out.wrote(100, 10)
    out.wrote(50, 20)
    out.confirm(unsent=60)  # 90 of 150 delivered: the first write (ends at 100) is not
    assert out.age(30) == 20
    out.confirm(unsent=50)  # exactly the second write is left
    assert out.oldest() == 20
    out.confirm(unsent=0)
    assert out.age(1000) == 0


def test_control_writes_count_bytes_but_leave_no_mark() -> None:
    out = Outbox()
    out.wrote(40, 0)
    assert out.written == 40 and not out.marks and out.age(10) == 0


def test_drop_deltas_keeps_trades_in_order() -> None:
    out = Outbox()
    out.add(b"d1", DELTA, 1)
    out.add(b"t1", KEEP, 2)
    out.add(b"d2", DELTA, 3)
    out.add(b"t2", KEEP, 4)
    assert out.drop_deltas() == 2
    assert out.pending == [b"t1", b"t2"] and out.drop_deltas() == 0
    assert out.pending_since == 1  # conservative: the kept messages are at least this old


def test_dropping_everything_clears_the_pending_age() -> None:
    out = Outbox()
    out.add(b"d1", DELTA, 5)
    out.drop_deltas()
    assert out.age(100) == 0


def test_marks_stay_bounded_and_ages_only_get_older() -> None:
    out = Outbox()
    for i in range(1, 1000):
        out.wrote(10, i)
    assert len(out.marks) <= 64
    assert out.oldest() == 1
    out.confirm(unsent=10)  # only the last write is undelivered
    assert out.oldest() <= 999


@given(
    st.lists(st.tuples(st.integers(1, 500), st.integers(1, 10**6)), min_size=1, max_size=200),
    st.integers(0, 10**5),
)
def test_age_is_never_younger_than_the_true_oldest_undelivered(
    writes: list[tuple[int, int]], unsent: int
) -> None:
    """Queue times need not rise with the writes: a snapshot written at subscribe is
    newer than data that waited for the loop and is written after it."""
    out = Outbox()
    ends: list[tuple[int, int]] = []
    for size, at in writes:
        out.wrote(size, at)
        ends.append((out.written, at))
    unsent = min(unsent, out.written)
    out.confirm(unsent)
    delivered = out.written - unsent
    undelivered = [at for end, at in ends if end > delivered]
    if undelivered:
        assert out.oldest() <= min(undelivered)
        if len(writes) <= 64:  # no marks merged for space: exact
            assert out.oldest() == min(undelivered)
    else:
        assert out.oldest() == 0
