"""Depth views: exact deltas for every depth, raw and conflated (docs/protocol.md §4.4, 1-3)."""

from __future__ import annotations

import pytest
from core_model import (
    SYMBOL,
    Client,
    RefBook,
    ask_px,
    bid_px,
    book_ops,
    make_update,
    update,
)
from hypothesis import HealthCheck, given, settings

from core.book import OrderBook
from core.checksum import book_checksum
from core.types import VALID_DEPTHS, BookUpdate, Exchange
from core.views import DepthView

EX = Exchange.BINANCE


def live_book(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> OrderBook:
    book = OrderBook(EX, SYMBOL)
    book.apply(update(10, bids, asks, snapshot=True))
    return book


def ladder(n: int, ask: bool = False, qty: float = 1.0) -> list[tuple[float, float]]:
    return [((ask_px if ask else bid_px)(i), qty) for i in range(n)]


class TestConstruction:
    def test_rejects_unknown_depth(self) -> None:
        with pytest.raises(ValueError, match="depth 7"):
            DepthView(OrderBook(EX, SYMBOL), 7)

    def test_snapshot_of_a_new_view_is_the_book_cut_to_depth(self) -> None:
        book = live_book(ladder(15), ladder(12, ask=True))
        snap = DepthView(book, 10).snapshot()
        assert snap.is_snapshot and snap.depth == 10
        assert snap.sequence == 10 and snap.prev_sequence == 0
        assert snap.bids == book.bids(10) and snap.asks == book.asks(10)
        assert snap.checksum == book_checksum(book.asks(10), book.bids(10))
        assert snap.bid_venues is None and snap.ask_venues is None
        assert (snap.timestamp_ns, snap.ingest_ns) == (book.timestamp_ns, book.ingest_ns)

    def test_snapshot_is_built_once_per_message(self) -> None:
        book = live_book(ladder(15), ladder(12, ask=True))
        view = DepthView(book, 10)
        first = view.snapshot()
        assert view.snapshot() is first
        assert view.sent_asks == dict(book.asks(10)) and view.sent_bids == dict(book.bids(10))
        book.apply(update(11, [(bid_px(20), 1.0)]))
        assert view.on_update() is None and view.snapshot() is first
        book.apply(update(12, [(bid_px(0), 3.0)]))
        assert view.on_update() is not None
        assert view.snapshot() is not first and view.snapshot().sequence == 12

    def test_view_of_an_empty_stale_book(self) -> None:
        view = DepthView(OrderBook(EX, SYMBOL), 20)
        snap = view.snapshot()
        assert (snap.bids, snap.asks, snap.sequence) == ([], [], 0)
        assert view.on_update() is None and view.flush() is None


class TestRawDeltas:
    def test_change_inside_top_n(self) -> None:
        book = live_book(ladder(15), ladder(15, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(3), 7.0)]))
        msg = view.on_update()
        assert msg is not None
        assert (msg.bids, msg.asks) == ([(bid_px(3), 7.0)], [])
        assert (msg.sequence, msg.prev_sequence, msg.is_snapshot) == (11, 10, False)
        assert msg.checksum == book.checksum()

    def test_change_below_a_full_view_is_skipped(self) -> None:
        book = live_book(ladder(15), ladder(15, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(12), 7.0), (bid_px(20), 1.0)], [(ask_px(11), 0.0)]))
        assert view.on_update() is None
        assert view.last_sequence == 10
        book.apply(update(12, [(bid_px(0), 2.0)]))
        msg = view.on_update()
        assert msg is not None and msg.prev_sequence == 10 and msg.sequence == 12

    def test_removing_a_top_level_lets_level_n_plus_1_enter(self) -> None:
        book = live_book(ladder(15), ladder(15, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(0), 0.0)], [(ask_px(2), 0.0), (ask_px(4), 0.0)]))
        msg = view.on_update()
        assert msg is not None
        assert msg.bids == [(bid_px(0), 0.0), (bid_px(10), 1.0)]
        assert msg.asks == [
            (ask_px(2), 0.0),
            (ask_px(4), 0.0),
            (ask_px(10), 1.0),
            (ask_px(11), 1.0),
        ]

    def test_better_new_level_pushes_the_nth_out(self) -> None:
        book = live_book(ladder(15), ladder(15, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(-1), 5.0)]))
        msg = view.on_update()
        assert msg is not None
        assert msg.bids == [(bid_px(-1), 5.0), (bid_px(9), 0.0)]

    def test_side_filling_up_past_n(self) -> None:
        book = live_book(ladder(9), [])
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(20), 1.0), (bid_px(-2), 1.0), (bid_px(-1), 2.0)]))
        msg = view.on_update()
        assert msg is not None
        assert msg.bids == [(bid_px(-2), 1.0), (bid_px(-1), 2.0), (bid_px(8), 0.0)]

    def test_full_depth_passes_the_update_through(self) -> None:
        book = live_book(ladder(15), ladder(15, ask=True))
        view = DepthView(book, 0)
        levels = [(bid_px(40), 1.0), (bid_px(40), 0.0), (bid_px(99), 0.0)]
        book.apply(update(11, levels))
        msg = view.on_update()
        assert msg is not None and msg.bids == levels and msg.asks == []
        assert view.sent_bids == dict(book.bids())

    def test_empty_delta_emits_nothing(self) -> None:
        book = live_book(ladder(3), ladder(3, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11))
        assert view.on_update() is None

    def test_nothing_after_gap_duplicate_or_stale_delta(self) -> None:
        book = live_book(ladder(3), ladder(3, ask=True))
        view = DepthView(book, 10)
        book.apply(update(10, [(bid_px(0), 9.0)]))  # duplicate
        book.apply(update(13, [(bid_px(0), 9.0)]))  # gap
        book.apply(update(14, [(bid_px(0), 9.0)]))  # stale
        assert view.on_update() is None and view.flush() is None


class TestResync:
    def test_book_snapshot_gives_an_exact_diff(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(
            update(11, [(bid_px(1), 2.0), *ladder(5)[2:]], ladder(11, ask=True), snapshot=True)
        )
        msg = view.on_update()
        assert msg is not None and not msg.is_snapshot
        assert msg.bids == sorted(msg.bids, reverse=True)
        client = dict(ladder(10))
        for p, q in msg.bids:
            if q:
                client[p] = q
            else:
                client.pop(p)
        assert sorted(client.items(), reverse=True) == book.bids(10)
        assert msg.asks == []

    def test_lower_sequence_after_stale_gives_a_snapshot(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(update(15, [(bid_px(0), 2.0)]))  # gap: stale
        book.apply(update(4, ladder(3), ladder(3, ask=True), snapshot=True))
        msg = view.on_update()
        assert msg is not None and msg.is_snapshot
        assert (msg.sequence, msg.bids, msg.asks) == (4, ladder(3), ladder(3, ask=True))
        assert view.last_sequence == 4

    def test_reset_then_snapshot(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(0), 5.0)]))
        view.reset()
        assert view.on_update() is None
        snap = view.snapshot()
        assert snap.sequence == 11 and snap.bids[0] == (bid_px(0), 5.0)

    def test_skipped_version_falls_back_to_a_full_diff(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(0), 5.0)]))
        book.apply(update(12, [(bid_px(1), 0.0)]))
        msg = view.on_update()
        assert msg is not None and msg.prev_sequence == 10 and msg.sequence == 12
        assert msg.bids == [(bid_px(0), 5.0), (bid_px(1), 0.0), (bid_px(10), 1.0)]


class TestConflated:
    def test_flush_sends_the_net_change(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(0), 5.0)]))
        book.apply(update(12, [(bid_px(0), 1.0), (bid_px(2), 4.0)]))
        msg = view.flush()
        assert msg is not None
        assert (msg.bids, msg.sequence, msg.prev_sequence) == ([(bid_px(2), 4.0)], 12, 10)
        assert view.flush() is None

    def test_flush_with_no_net_change_is_none(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(0), 5.0)]))
        book.apply(update(12, [(bid_px(0), 1.0)]))
        assert view.flush() is None
        assert view.last_sequence == 10

    def test_snapshot_is_what_was_sent_not_the_live_book(self) -> None:
        book = live_book(ladder(12), ladder(12, ask=True))
        view = DepthView(book, 10)
        book.apply(update(11, [(bid_px(0), 5.0)]))
        snap = view.snapshot()
        assert snap.sequence == 10 and snap.bids[0] == (bid_px(0), 1.0)


def run_view_ops(depth: int, conflated: bool, ops: list[tuple], shape: int) -> None:
    """Drive a book, its reference model, a view and clients joining at random points.

    ``shape`` is the depth the ops were drawn for (it sets the price grid).
    """
    book = OrderBook(EX, SYMBOL)
    model = RefBook()
    view = DepthView(book, depth)
    clients = [Client(depth)]
    clients[0].receive(view.snapshot())
    sent_seqs: list[int] = []

    def deliver(msg: BookUpdate | None) -> None:
        if msg is None:
            return
        if msg.is_snapshot:  # a resync restarts the chain (the source may have restarted)
            sent_seqs.clear()
        else:
            assert not sent_seqs or msg.sequence > sent_seqs[-1]
        sent_seqs.append(msg.sequence)
        for c in clients:
            c.receive(msg)

    def check_clients() -> None:
        expected = model.top(depth)
        for c in clients:
            assert c.top() == expected

    for op in ops:
        if op[0] == "join":
            clients.append(Client(depth))
            clients[-1].receive(view.snapshot())
            assert clients[-1].top() == clients[0].top()
        elif op[0] == "flush":
            deliver(view.flush())
            check_clients()
        elif op[0] == "reset":
            view.reset()
            deliver(view.snapshot())
            check_clients()
        else:
            u = make_update(op, model, shape)
            assert book.apply(u) == model.apply(u)
            assert (book.bids(), book.asks()) == model.top(0)
            assert (book.sequence, book.stale) == (model.sequence, model.stale)
            if not conflated:
                deliver(view.on_update())
                check_clients()
    deliver(view.flush())
    check_clients()


@pytest.mark.parametrize("depth", VALID_DEPTHS)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_ops=book_ops(10, extra=("join", "reset")))
def test_raw_view_keeps_clients_exact(depth: int, data_ops: list[tuple]) -> None:
    """Shape of ops is drawn for depth 10; see the per-depth test for large books."""
    run_view_ops(depth, False, data_ops, 10)


@pytest.mark.parametrize("depth", VALID_DEPTHS)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data_ops=book_ops(10, extra=("join", "reset", "flush", "flush", "flush")))
def test_conflated_view_keeps_clients_exact(depth: int, data_ops: list[tuple]) -> None:
    run_view_ops(depth, True, data_ops, 10)


def _scaled(depth: int, conflated: bool) -> None:
    extra = ("join", "reset", "flush", "flush") if conflated else ("join", "reset")

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=book_ops(depth, extra=extra))
    def inner(ops: list[tuple]) -> None:
        run_view_ops(depth, conflated, ops, depth)

    inner()


@pytest.mark.parametrize("conflated", [False, True], ids=["raw", "100ms"])
@pytest.mark.parametrize("depth", [20, 50, 100, 500, 1000])
def test_books_larger_than_the_depth(depth: int, conflated: bool) -> None:
    """Books sized around each depth, so levels cross its N-th boundary often."""
    _scaled(depth, conflated)
