"""The fault tests' oracle (``tests/faults/books.py``) against the core it judges.

The oracle is a naive book of its own (dicts sorted on read, zlib checksum); these
checks show it agrees with ``core.book.OrderBook`` on a simulated feed with a
restart, and refuses exactly what the core refuses, so a fault test that finds the
two apart has found a bug in the gateway, not in its reference.
"""

from __future__ import annotations

import math

import pytest

from core.book import OrderBook
from core.errors import CoreError
from core.types import BookUpdate, Exchange
from producers.simulate_run import sequence_base
from producers.simulator import SimulatedMarket, default_streams
from tests.faults.books import BookState, NaiveBook, Refused

T0 = 1_764_000_000_000_000_000


def _feed() -> list[BookUpdate]:
    out: list[BookUpdate] = []
    for seed, start in ((1, T0), (2, T0 + 10**9)):  # a run, then a restarted producer
        m = SimulatedMarket(
            default_streams(), seed=seed, levels=100, sequence_base=sequence_base(start)
        )
        for i in range(3_000):
            out += [r for r in m.next_events(start + i * 1_000) if isinstance(r, BookUpdate)]
    return out


def _core_state(book: OrderBook) -> BookState:
    return BookState(
        book.sequence, tuple(book.bids()), tuple(book.asks()), book.checksum(), book.stale
    )


def test_oracle_equals_the_core_on_a_simulated_feed() -> None:
    core: dict[str, OrderBook] = {}
    naive: dict[str, NaiveBook] = {}
    for u in _feed():
        c = core.setdefault(u.stream, OrderBook(u.exchange, u.symbol))
        n = naive.setdefault(u.stream, NaiveBook())
        assert n.apply(u) is c.apply(u)
        assert BookState.of(n) == _core_state(c), u.stream
    assert len(naive) == 9 and not any(b.stale for b in naive.values())


def _book(seq: int, bids: list, asks: list, snapshot: bool = False, crc: int = 0) -> BookUpdate:
    return BookUpdate(Exchange.KRAKEN, "BTC-USD", seq, seq, bids, asks, snapshot, seq - 1, crc)


@pytest.mark.parametrize(
    "update",
    [
        pytest.param(_book(11, [(math.nan, 1.0)], []), id="NaN price"),
        pytest.param(_book(11, [(100.0, -1.0)], []), id="negative quantity"),
        pytest.param(_book(11, [(math.inf, 1.0)], []), id="infinite price"),
        pytest.param(_book(20, [(100.0, 1.0)], [(99.0, 1.0)], True), id="crossed snapshot"),
        pytest.param(_book(20, [(9.0, 1.0)] * 2, [], True), id="duplicate price"),
        pytest.param(_book(20, [(9.0, 1.0)], [], True, crc=7), id="snapshot checksum wrong"),
        pytest.param(_book(20, [(9.0, 0.0)], [], True), id="zero quantity in a snapshot"),
    ],
)
def test_oracle_refuses_what_the_core_refuses(update: BookUpdate) -> None:
    start = _book(10, [(99.0, 1.0)], [(101.0, 1.0)], True)
    core, naive = OrderBook(Exchange.KRAKEN, "BTC-USD"), NaiveBook()
    core.apply(start)
    naive.apply(start)
    with pytest.raises(CoreError):
        core.apply(update)
    with pytest.raises(Refused):
        naive.apply(update)
    assert BookState.of(naive) == _core_state(core)


def test_oracle_turns_stale_on_a_delta_whose_checksum_disagrees() -> None:
    start = _book(10, [(99.0, 1.0)], [(101.0, 1.0)], True)
    bad = _book(11, [(99.5, 1.0)], [], crc=12345)
    core, naive = OrderBook(Exchange.KRAKEN, "BTC-USD"), NaiveBook()
    for u in (start, bad):
        assert naive.apply(u) is core.apply(u)
    assert naive.stale and core.stale
    assert naive.sorted_bids() == core.bids() == [(99.0, 1.0)]
