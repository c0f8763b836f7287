"""View history for resume (docs/protocol.md §4.10): exactly the suffix after S, or None."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from core.history import ViewHistory

SEC = 1_000_000_000


def chain(h: ViewHistory[int], seqs: list[int], t: int = 0) -> None:
    prev = h.last
    for s in seqs:
        h.append(s, prev, s, t)
        prev = s


class TestSince:
    def test_suffix_after_each_held_sequence(self) -> None:
        h: ViewHistory[int] = ViewHistory(100, 10 * SEC, sequence=10)
        chain(h, [11, 13, 14])
        assert h.since(10, 0) == [11, 13, 14]
        assert h.since(11, 0) == [13, 14]
        assert h.since(14, 0) == []

    def test_sequence_outside_the_chain_is_refused(self) -> None:
        h: ViewHistory[int] = ViewHistory(100, 10 * SEC, sequence=10)
        chain(h, [11, 13, 14])
        assert h.since(12, 0) is None  # never sent by this view
        assert h.since(9, 0) is None
        assert h.since(15, 0) is None

    def test_count_bound_drops_the_oldest(self) -> None:
        h: ViewHistory[int] = ViewHistory(2, 10 * SEC, sequence=10)
        chain(h, [11, 12, 13])
        assert len(h) == 2 and h.start == 11
        assert h.since(10, 0) is None
        assert h.since(11, 0) == [12, 13]

    def test_age_bound(self) -> None:
        h: ViewHistory[int] = ViewHistory(100, 1 * SEC, sequence=10)
        h.append(11, 10, 11, 0)
        h.append(12, 11, 12, 2 * SEC)
        assert h.since(10, 2 * SEC) is None
        assert h.since(11, 2 * SEC) == [12]
        # everything aged out: a client at the newest sequence still holds the view
        assert h.since(12, 10 * SEC) == [] and len(h) == 0
        assert h.since(11, 10 * SEC) is None

    def test_age_bounds_memory_without_any_read(self) -> None:
        """Nobody resumes: what is held is max_age of messages, not max_messages."""
        h: ViewHistory[int] = ViewHistory(1000, 1 * SEC, sequence=0)
        for s in range(1, 101):
            h.append(s, s - 1, s, s * SEC // 10)  # 10 a second for 10 s
        assert len(h) == 11  # the last second: 9.0 s .. 10.0 s
        assert h.since(89, 10 * SEC) == list(range(90, 101))

    def test_reset_forgets_the_old_chain(self) -> None:
        h: ViewHistory[int] = ViewHistory(100, 10 * SEC, sequence=10)
        chain(h, [11, 12])
        h.reset(20)
        assert h.since(12, 0) is None and h.since(20, 0) == []
        chain(h, [21])
        assert h.since(20, 0) == [21]

    def test_reset_backwards_refuses_every_old_sequence(self) -> None:
        h: ViewHistory[int] = ViewHistory(100, 10 * SEC, sequence=10)
        chain(h, [11, 12, 13])
        h.reset(5)
        chain(h, [6, 7, 14])
        for s in (5, 6, 7, 12, 13):
            assert h.since(s, 0) is None, s
        assert h.since(14, 0) == []

    def test_unchained_append_restarts(self) -> None:
        h: ViewHistory[int] = ViewHistory(100, 10 * SEC, sequence=10)
        chain(h, [11])
        h.append(15, 13, 15, 0)
        assert h.since(11, 0) is None and h.since(13, 0) is None and h.since(15, 0) == []

    def test_zero_count_holds_nothing(self) -> None:
        h: ViewHistory[int] = ViewHistory(0, 10 * SEC, sequence=10)
        chain(h, [11, 12])
        assert h.since(11, 0) is None and h.since(12, 0) == []


@given(
    steps=st.lists(st.integers(1, 3), min_size=0, max_size=60),
    cap=st.integers(0, 20),
    query=st.integers(0, 250),
)
def test_since_is_the_exact_suffix_or_none(steps: list[int], cap: int, query: int) -> None:
    """Against the full list of sent messages: the answer is exactly the messages after
    ``query`` when ``query`` is a sent sequence whose suffix fits the bound, else None."""
    base = 50
    h: ViewHistory[int] = ViewHistory(cap, 10 * SEC, sequence=base)
    sent = []
    seq = base
    for step in steps:
        seq += step
        sent.append(seq)
    chain(h, sent)
    sequences = [base, *sent]
    answer = h.since(query, 0)
    if query in sequences:
        suffix = sent[sequences.index(query) :]
        if len(suffix) <= cap or not suffix:
            assert answer == suffix
        else:
            assert answer is None
    else:
        assert answer is None
