"""Best bid/offer topics (docs/protocol.md §4.8): against a naive book, and across venues."""

from __future__ import annotations

from core_model import SYMBOL, RefBook, book_ops, make_update, update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.bbo import BboBoard, BboTopic, best_of
from core.book import ApplyResult
from core.market import Market
from core.types import Exchange

VENUES = (Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN)


def ref_top(model: RefBook) -> tuple[tuple[float, float] | None, tuple[float, float] | None]:
    bids, asks = model.top(1)
    return (bids[0] if bids else None, asks[0] if asks else None)


class TestTopic:
    def test_first_update_always_sends_even_when_empty(self) -> None:
        topic = BboTopic(Exchange.KRAKEN, SYMBOL)
        msg = topic.update(None, None, 5, 6)
        assert msg is not None and (msg.sequence, msg.prev_sequence) == (1, 0)
        assert (msg.bid, msg.ask, msg.timestamp_ns, msg.ingest_ns) == (None, None, 5, 6)

    def test_same_top_sends_nothing_and_keeps_the_chain(self) -> None:
        topic = BboTopic(Exchange.KRAKEN, SYMBOL)
        topic.update((1.0, 2.0), (3.0, 1.0), 1, 1)
        assert topic.update((1.0, 2.0), (3.0, 1.0), 2, 2) is None
        msg = topic.update((1.0, 2.5), (3.0, 1.0), 3, 3)
        assert msg is not None and (msg.sequence, msg.prev_sequence) == (2, 1)
        assert topic.last is msg


class TestBestOf:
    def test_best_price_wins(self) -> None:
        quotes = [("BINANCE", (10.0, 1.0)), ("KRAKEN", (11.0, 0.1))]
        assert best_of(quotes, bids=True) == (11.0, 0.1, "KRAKEN")
        assert best_of(quotes, bids=False) == (10.0, 1.0, "BINANCE")

    def test_tie_larger_quantity_then_exchange_name(self) -> None:
        quotes = [("KRAKEN", (10.0, 2.0)), ("COINBASE", (10.0, 1.0)), ("BINANCE", (10.0, 2.0))]
        assert best_of(quotes, bids=True) == (10.0, 2.0, "BINANCE")
        assert best_of(reversed(quotes), bids=False) == (10.0, 2.0, "BINANCE")

    def test_empty_sides(self) -> None:
        assert best_of([("KRAKEN", None)], bids=True) is None
        assert best_of([], bids=False) is None


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=book_ops(10))
def test_stream_topic_is_the_naive_top_after_every_record(ops: list[tuple]) -> None:
    """One message per change of the top, equal to a naive book's top, chained."""
    market = Market()
    model = RefBook()
    board = BboBoard(market)
    first = make_update(ops[0], model, 10, exchange=Exchange.KRAKEN)
    market.apply_book(first, 0)
    model.apply(first)
    topic = board.open("KRAKEN:" + SYMBOL)
    assert topic is not None and topic.last is not None
    assert (topic.last.bid, topic.last.ask) == ref_top(model)
    sent = [topic.last]
    for op in ops[1:]:
        u = make_update(op, model, 10, exchange=Exchange.KRAKEN)
        try:
            event = market.apply_book(u, 0)
        except Exception:
            continue  # a crossed snapshot: refused by both, nothing changes
        result = model.apply(u)
        assert event.result == result
        msg, across = board.on_book(event.book)
        assert across is None
        if model.stale:
            assert msg is None
            continue
        top = ref_top(model)
        if top != (sent[-1].bid, sent[-1].ask):
            assert msg is not None and (msg.bid, msg.ask) == top
            assert msg.prev_sequence == sent[-1].sequence and msg.sequence > msg.prev_sequence
            assert msg.timestamp_ns == u.timestamp_ns and msg.ingest_ns == u.ingest_ns
            sent.append(msg)
        else:
            assert msg is None


def naive_across(models: dict[Exchange, RefBook]) -> tuple[object, object]:
    out = []
    for side, reverse in (("bids", True), ("asks", False)):
        cands = [
            (p, q, ex.name)
            for ex, m in models.items()
            if not m.stale
            for p, q in getattr(m, side).items()
        ]
        # best price, then larger quantity, then exchange name
        cands.sort(key=lambda c: ((-c[0] if reverse else c[0]), -c[1], c[2]))
        out.append(cands[0] if cands else None)
    return out[0], out[1]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.tuples(st.sampled_from(VENUES), book_ops(10)), min_size=1, max_size=4),
    order=st.lists(st.integers(0, 3), min_size=0, max_size=200),
)
def test_symbol_topic_is_the_naive_best_over_live_venues(
    ops: list[tuple[Exchange, list[tuple]]], order: list[int]
) -> None:
    """Records of several venues interleaved: the cross-venue topic follows the naive best."""
    market = Market()
    board = BboBoard(market)
    models = {ex: RefBook() for ex in VENUES}
    queues = [(ex, list(o)) for ex, o in ops]
    ex0, q0 = queues[0]
    first = make_update(q0.pop(0), models[ex0], 10, exchange=ex0)
    market.apply_book(first, 0)
    models[ex0].apply(first)
    topic = board.open(SYMBOL)
    assert topic is not None and topic.last is not None
    assert (topic.last.bid, topic.last.ask) == naive_across(models)
    last = topic.last
    for k in order:
        ex, queue = queues[k % len(queues)]
        if not queue:
            continue
        u = make_update(queue.pop(0), models[ex], 10, exchange=ex)
        try:
            event = market.apply_book(u, 0)
        except Exception:
            continue
        models[ex].apply(u)
        _, msg = board.on_book(event.book)
        top = naive_across(models)
        if top != (last.bid, last.ask):
            assert msg is not None and (msg.bid, msg.ask) == top
            assert msg.prev_sequence == last.sequence
            last = msg
        else:
            assert msg is None


def test_board_topics_open_and_close() -> None:
    market = Market()
    board = BboBoard(market)
    assert board.open("KRAKEN:" + SYMBOL) is None and board.open(SYMBOL) is None
    market.apply_book(update(1, [(10.0, 1.0)], [(11.0, 2.0)], snapshot=True), 0)
    stream = board.open("BINANCE:" + SYMBOL)
    across = board.open(SYMBOL)
    assert stream is not None and across is not None
    assert across.last is not None and across.last.bid == (10.0, 1.0, "BINANCE")
    assert stream.last is not None and stream.last.exchange is Exchange.BINANCE
    board.close(SYMBOL)
    event = market.apply_book(update(2, [(10.5, 1.0)]), 0)
    assert event.result is ApplyResult.APPLIED
    msg, none = board.on_book(event.book)
    assert none is None and msg is not None and msg.bid == (10.5, 1.0)
    assert board.open("NOPE:X") is None


def test_stale_stream_sends_nothing_until_it_recovers() -> None:
    market = Market()
    board = BboBoard(market)
    market.apply_book(update(1, [(10.0, 1.0)], [(11.0, 2.0)], snapshot=True), 0)
    topic = board.open("BINANCE:" + SYMBOL)
    across = board.open(SYMBOL)
    assert topic is not None and across is not None
    gap = market.apply_book(update(5, [(10.5, 1.0)]), 0)
    assert gap.result is ApplyResult.GAP
    msg, amsg = board.on_book(gap.book)
    assert msg is None
    assert amsg is not None and (amsg.bid, amsg.ask) == (None, None)  # no live venue left
    snap = market.apply_book(update(6, [(10.0, 1.0)], [(11.0, 2.0)], snapshot=True), 0)
    msg, amsg = board.on_book(snap.book)
    assert msg is None  # same top as announced before the gap
    assert amsg is not None and amsg.bid == (10.0, 1.0, "BINANCE") and amsg.sequence == 3
