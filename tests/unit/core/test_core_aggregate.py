"""Aggregated book: merge of venue books, its own sequence, and exact depth views of it."""

from __future__ import annotations

import math

import pytest
from core_model import (
    SYMBOL,
    Client,
    RefBook,
    make_update,
    merged_top,
    single_op,
    snap_op,
    update,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.aggregate import AggregatedBook
from core.book import OrderBook
from core.checksum import book_checksum
from core.market import Market
from core.types import BookUpdate, Exchange
from core.views import DepthView

BN, CB, KR = Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN


def venue_book(exchange: Exchange, bids: list, asks: list, seq: int = 1) -> OrderBook:
    book = OrderBook(exchange, SYMBOL)
    book.apply(update(seq, bids, asks, snapshot=True, exchange=exchange))
    return book


def delta(book: OrderBook, bids: list, asks: list | None = None) -> None:
    book.apply(update(book.sequence + 1, bids, asks, exchange=book.exchange))


class TestMerge:
    def test_levels_sum_venues(self) -> None:
        agg = AggregatedBook(SYMBOL)
        assert agg.sync_venue(venue_book(KR, [(100.0, 0.5)], [(101.0, 0.4)]))
        assert agg.sync_venue(venue_book(CB, [(100.0, 1.0), (99.0, 2.0)], []))
        bids, asks = agg.levels()
        assert bids == [
            (100.0, 1.5, {"COINBASE": 1.0, "KRAKEN": 0.5}),
            (99.0, 2.0, {"COINBASE": 2.0}),
        ]
        assert asks == [(101.0, 0.4, {"KRAKEN": 0.4})]
        assert list(bids[0][2]) == ["COINBASE", "KRAKEN"]  # sorted by venue
        assert agg.bids(1) == [(100.0, 1.5)] and agg.asks() == [(101.0, 0.4)]
        assert agg.sequence == 2 and agg.venues == {"COINBASE", "KRAKEN"}
        assert "BTC-USD" in repr(agg)

    def test_total_is_fsum(self) -> None:
        agg = AggregatedBook(SYMBOL)
        for ex, q in ((BN, 0.1), (CB, 0.2), (KR, 0.3)):
            agg.sync_venue(venue_book(ex, [(100.0, q)], []))
        assert agg.bids() == [(100.0, math.fsum([0.1, 0.2, 0.3]))]

    def test_update_from_a_delta(self) -> None:
        agg = AggregatedBook(SYMBOL)
        kr = venue_book(KR, [(100.0, 0.5)], [(101.0, 0.4)])
        cb = venue_book(CB, [(100.0, 1.0)], [])
        agg.sync_venue(kr)
        agg.sync_venue(cb)
        delta(kr, [(100.0, 0.0), (99.5, 3.0)], [(101.0, 0.6)])
        assert agg.update_from(kr, [100.0, 99.5], [101.0])
        assert agg.levels() == (
            [(100.0, 1.0, {"COINBASE": 1.0}), (99.5, 3.0, {"KRAKEN": 3.0})],
            [(101.0, 0.6, {"KRAKEN": 0.6})],
        )
        assert agg.last_changes == ([(100.0, 1.0), (99.5, 3.0)], [(101.0, 0.6)])
        assert (agg.sequence, agg.timestamp_ns) == (3, kr.timestamp_ns)

    def test_no_change_no_sequence(self) -> None:
        agg = AggregatedBook(SYMBOL)
        kr = venue_book(KR, [(100.0, 0.5)], [])
        agg.sync_venue(kr)
        assert not agg.update_from(kr, [100.0, 42.0], [])
        assert not agg.sync_venue(kr)
        assert agg.sequence == 1

    def test_sync_venue_replaces_its_old_levels(self) -> None:
        agg = AggregatedBook(SYMBOL)
        agg.sync_venue(venue_book(KR, [(100.0, 0.5), (99.0, 1.0)], []))
        agg.sync_venue(venue_book(CB, [(99.0, 2.0)], []))
        agg.sync_venue(venue_book(KR, [(98.0, 1.0)], [], seq=9))
        assert agg.levels()[0] == [(99.0, 2.0, {"COINBASE": 2.0}), (98.0, 1.0, {"KRAKEN": 1.0})]

    def test_remove_venue(self) -> None:
        agg = AggregatedBook(SYMBOL)
        agg.sync_venue(venue_book(KR, [(100.0, 0.5)], [(101.0, 1.0)]))
        agg.sync_venue(venue_book(CB, [(100.0, 1.0)], []))
        assert agg.remove_venue(KR)
        assert agg.levels() == ([(100.0, 1.0, {"COINBASE": 1.0})], [])
        assert agg.venues == {"COINBASE"}
        assert not agg.remove_venue(KR)

    def test_levels_for_some_venues(self) -> None:
        agg = AggregatedBook(SYMBOL)
        agg.sync_venue(venue_book(KR, [(100.0, 0.5), (99.0, 1.0)], [(101.0, 1.0)]))
        agg.sync_venue(venue_book(CB, [(100.0, 1.0), (98.0, 1.0)], [(102.0, 1.0)]))
        bids, asks = agg.levels(2, venues={"COINBASE"})
        assert bids == [(100.0, 1.0, {"COINBASE": 1.0}), (98.0, 1.0, {"COINBASE": 1.0})]
        assert asks == [(102.0, 1.0, {"COINBASE": 1.0})]
        assert agg.levels(1)[0] == [(100.0, 1.5, {"COINBASE": 1.0, "KRAKEN": 0.5})]

    def test_snapshot_carries_venues_and_total_checksum(self) -> None:
        agg = AggregatedBook(SYMBOL)
        agg.sync_venue(venue_book(KR, [(100.0, 0.5), (99.0, 1.0)], [(101.0, 1.0)]))
        agg.sync_venue(venue_book(CB, [(100.0, 1.0)], []))
        snap = agg.snapshot(1)
        assert (snap.exchange, snap.symbol, snap.sequence, snap.depth) == (
            Exchange.UNKNOWN,
            SYMBOL,
            2,
            1,
        )
        assert snap.bids == [(100.0, 1.5)] and snap.bid_venues == [{"COINBASE": 1.0, "KRAKEN": 0.5}]
        assert snap.ask_venues == [{"KRAKEN": 1.0}]
        assert snap.checksum == book_checksum([(101.0, 1.0)], [(100.0, 1.5)])
        # the whole merged book, spelled out (not read back from the book itself)
        assert agg.checksum() == book_checksum([(101.0, 1.0)], [(100.0, 1.5), (99.0, 1.0)])


class TestAggregatedView:
    def test_venue_change_with_same_total_is_sent(self) -> None:
        agg = AggregatedBook(SYMBOL)
        kr = venue_book(KR, [(100.0, 0.5)], [])
        cb = venue_book(CB, [(100.0, 1.0)], [])
        agg.sync_venue(kr)
        agg.sync_venue(cb)
        raw, slow = DepthView(agg, 10), DepthView(agg, 10)
        delta(kr, [(100.0, 1.0)])
        agg.update_from(kr, [100.0], [])
        delta(cb, [(100.0, 0.5)])
        agg.update_from(cb, [100.0], [])
        msg = raw.on_update()
        assert msg is not None and msg.bids == [(100.0, 1.5)]
        assert msg.bid_venues == [{"COINBASE": 0.5, "KRAKEN": 1.0}] and msg.ask_venues == []
        assert msg.exchange is Exchange.UNKNOWN and msg.sequence == 4 and msg.prev_sequence == 2
        flushed = slow.flush()
        assert flushed is not None and flushed.bid_venues == [{"COINBASE": 0.5, "KRAKEN": 1.0}]

    def test_one_venue_change_that_leaves_the_total_equal_is_sent(self) -> None:
        agg = AggregatedBook(SYMBOL)
        kr = venue_book(KR, [(100.0, 1e16)], [])
        cb = venue_book(CB, [(100.0, 1.0)], [])
        agg.sync_venue(kr)
        agg.sync_venue(cb)
        view = DepthView(agg, 10)
        delta(cb, [(100.0, 0.5)])
        assert agg.update_from(cb, [100.0], [])
        assert agg.bids() == [(100.0, 1e16)]  # 1e16 + 0.5 rounds to 1e16
        msg = view.on_update()
        assert msg is not None and msg.bids == [(100.0, 1e16)]
        assert msg.bid_venues == [{"COINBASE": 0.5, "KRAKEN": 1e16}]

    def test_removed_level_has_empty_venues(self) -> None:
        agg = AggregatedBook(SYMBOL)
        agg.sync_venue(venue_book(KR, [(100.0, 0.5), (99.0, 1.0)], []))
        view = DepthView(agg, 0)
        agg.remove_venue(KR)
        msg = view.on_update()
        assert msg is not None and msg.bids == [(100.0, 0.0), (99.0, 0.0)]
        assert msg.bid_venues == [{}, {}]
        assert msg.timestamp_ns == agg.timestamp_ns


VENUES = (BN, CB, KR)


def run_aggregated(depth: int, conflated: bool, ops: list[tuple]) -> None:
    """Venue records through a Market; clients of one aggregated view vs a naive merge."""
    market = Market()
    models = {ex.name: RefBook() for ex in VENUES}
    for ex in VENUES:  # every venue known up front, so the aggregated book exists
        market.apply_book(update(0, exchange=ex), 0)
    agg = market.aggregated(SYMBOL)
    assert agg is not None
    view = DepthView(agg, depth)
    clients = [Client(depth)]
    clients[0].receive(view.snapshot())

    def deliver(msg: BookUpdate | None) -> None:
        if msg is not None:
            for c in clients:
                c.receive(msg)

    def check() -> None:
        expected = merged_top(models, depth)
        for c in clients:
            assert c.top_with_venues() == expected

    for venue, op in ops:
        model = models[venue.name]
        if op[0] == "flush":
            deliver(view.flush())
            check()
            continue
        if op[0] == "join":
            clients.append(Client(depth))
            clients[-1].receive(view.snapshot())
            continue
        if op[0] == "stale":
            event_agg = market.mark_stale(f"{venue.name}:{SYMBOL}", "test")
            model.stale = True
        else:
            u = make_update(op, model, 10, exchange=venue)
            event = market.apply_book(u, 1)
            assert event.result is model.apply(u)
            event_agg = event.aggregated
        if event_agg is not None:
            assert event_agg is agg
        if not conflated:
            deliver(view.on_update())
            check()
    deliver(view.flush())
    check()
    assert agg.checksum() == book_checksum(agg.asks(10), agg.bids(10))


VENUE_OPS = st.lists(
    st.tuples(st.sampled_from(VENUES), single_op(10, ("stale", "join", "flush", "flush"))),
    min_size=5,
    max_size=60,
)
FIRST = st.lists(st.tuples(st.sampled_from(VENUES), snap_op(10, st.just("next"))), max_size=3)


@pytest.mark.parametrize("conflated", [False, True], ids=["raw", "100ms"])
@pytest.mark.parametrize("depth", [10, 20, 0])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=FIRST, ops=VENUE_OPS)
def test_aggregated_view_matches_naive_merge(
    depth: int, conflated: bool, first: list[tuple], ops: list[tuple]
) -> None:
    if not conflated:
        ops = [(v, op) for v, op in ops if op[0] != "flush"]
    run_aggregated(depth, conflated, first + ops)
