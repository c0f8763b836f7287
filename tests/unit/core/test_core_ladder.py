"""Ladder: one side of a book, checked against a sorted list."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.ladder import Ladder

OPS = st.lists(
    st.tuples(st.integers(0, 30).map(lambda i: i / 2), st.sampled_from([0.0, 1.0, 2.0])),
    max_size=60,
)


@pytest.mark.parametrize("desc", [True, False])
@given(ops=OPS, n=st.integers(-1, 35), start=st.integers(0, 35), stop=st.integers(0, 35))
def test_matches_a_sorted_list(
    desc: bool, ops: list[tuple[float, float]], n: int, start: int, stop: int
) -> None:
    side = Ladder(desc)
    ref: dict[float, float] = {}
    for p, q in ops:
        if q:
            side.set(p, q)
            ref[p] = q
        else:
            side.remove(p)
            ref.pop(p, None)
    ranked = sorted(ref.items(), reverse=desc)
    prices = [p for p, _ in ranked]
    assert len(side) == len(ref) and side.top() == ranked
    assert side.top(max(n, 1)) == ranked[: max(n, 1)]
    assert side.best() == (ranked[0] if ranked else None)
    assert side.nth(n) == (prices[n - 1] if 0 < n <= len(prices) else None)
    assert side.prices(start, stop) == prices[start:stop]
    assert side.get(7.5) == ref.get(7.5)
    for p in (-1.0, 0.0, 3.5, 7.25, 16.0):
        better = [x for x in prices if (x >= p if desc else x <= p)]
        assert side.count_at_least(p) == len(better)
    flat = side.flat_top(3)
    assert flat == [x for lv in ranked[:3] for x in lv]


def test_replace_and_copy() -> None:
    side = Ladder(False)
    side.replace([(3.0, 1.0), (1.0, 2.0)])
    other = side.copy()
    side.set(0.5, 1.0)
    assert other.top() == [(1.0, 2.0), (3.0, 1.0)] and other.venues is None
    assert side.best() == (0.5, 1.0)


def test_copy_keeps_venue_maps() -> None:
    side = Ladder(True, with_venues=True)
    assert side.venues == {}
    side.set(1.0, 2.0)
    side.venues[1.0] = {"KRAKEN": 2.0}  # type: ignore[index]
    other = side.copy()
    assert other.venues == {1.0: {"KRAKEN": 2.0}} and other.venues is not side.venues
