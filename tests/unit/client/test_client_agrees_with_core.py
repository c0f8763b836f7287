"""The client's own book and checksum agree with the server's core on random books.

The server side is the real core (OrderBook, AggregatedBook, DepthView) encoded by the
real wire encoders; the client side is mdgw_client decoding those bytes into its
LocalBook. After every message both must hold the same levels at the subscribed depth,
and the client's checksum must equal the one the server put in the message.
"""

from __future__ import annotations

import pytest
from core_model import RefBook, book_ops, make_update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mdgw_client import LocalBook, checksum, decode_frame

from core.aggregate import AggregatedBook
from core.book import OrderBook
from core.checksum import book_checksum
from core.types import VALID_DEPTHS, BookUpdate, Exchange
from core.views import DepthView
from schemas import wire

FORMATS = ["json", "protobuf"]
VENUES = (Exchange.COINBASE, Exchange.KRAKEN)


def deliver(local: LocalBook, msg: BookUpdate, fmt: str, aggregated: bool) -> None:
    """Encode as the gateway does, decode and apply as the client does, check the chain."""
    encode = wire.book_pb if fmt == "protobuf" else wire.book_json
    frame = encode(msg, aggregated=aggregated)
    [data] = decode_frame(frame, protobuf=fmt == "protobuf", batch=False)
    if data["type"].endswith("_snapshot"):
        local.load(data["bids"], data["asks"], data["sequence"])
    else:
        assert local.valid and data["prev_sequence"] == local.sequence
        local.apply(data["bids"], data["asks"], data["sequence"])
    assert local.local_checksum() == data["checksum"] == msg.checksum


def assert_same(local: LocalBook, view: DepthView) -> None:
    bids = sorted(view.sent_bids.items(), reverse=True)
    asks = sorted(view.sent_asks.items())
    assert local.top_bids() == bids and local.top_asks() == asks
    assert local.best_bid() == (bids[0] if bids else None)
    assert local.best_ask() == (asks[0] if asks else None)
    assert local.local_checksum() == book_checksum(asks, bids)


@pytest.mark.parametrize("depth", VALID_DEPTHS)
def test_client_book_follows_a_venue_book(depth: int) -> None:
    shape = min(depth, 50) or 10  # the price grid of the ops: levels cross the N-th often

    @settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=book_ops(shape, extra=("resync",)), fmt=st.sampled_from(FORMATS))
    def run(ops: list[tuple], fmt: str) -> None:
        book, model = OrderBook(Exchange.BINANCE, "BTC-USD"), RefBook()
        view = DepthView(book, depth)
        local = LocalBook("BINANCE:BTC-USD", depth)
        deliver(local, view.snapshot(), fmt, False)
        for op in ops:
            if op[0] == "resync":  # the server's answer to a resync op, or a new subscriber
                view.reset()
                deliver(local, view.snapshot(), fmt, False)
            else:
                u = make_update(op, model, shape)
                model.apply(u)
                book.apply(u)
                msg = view.on_update()
                if msg is not None:
                    deliver(local, msg, fmt, False)
            assert_same(local, view)
            if not book.stale:
                assert local.top_bids() == book.bids(depth)
                assert local.top_asks() == book.asks(depth)

    run()


@pytest.mark.parametrize("depth", [10, 20, 0])
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(st.tuples(st.sampled_from(VENUES), book_ops(10)), min_size=1, max_size=4),
    fmt=st.sampled_from(FORMATS),
)
def test_client_book_follows_an_aggregated_book(
    depth: int, fmt: str, ops: list[tuple[Exchange, list[tuple]]]
) -> None:
    """Levels ``[price, total, {venue: q}]``: the client keeps totals, checksummed over them."""
    venues = {ex: (OrderBook(ex, "BTC-USD"), RefBook()) for ex in VENUES}
    agg = AggregatedBook("BTC-USD")
    view = DepthView(agg, depth)
    local = LocalBook("agg:BTC-USD", depth)
    deliver(local, view.snapshot(), fmt, True)
    for ex, book_ops_ in ops:
        book, model = venues[ex]
        for op in book_ops_:
            u = make_update(op, model, 10, exchange=ex)
            model.apply(u)
            book.apply(u)
            changed = agg.remove_venue(ex) if book.stale else agg.sync_venue(book)
            msg = view.on_update() if changed else None
            if msg is not None:
                deliver(local, msg, fmt, True)
            assert_same(local, view)


def test_checksum_is_the_documented_formula() -> None:
    """docs/protocol.md §5, spelled out with struct and zlib."""
    import struct
    import zlib

    asks = [(100.5 + i, 0.1 * i + 1) for i in range(12)]
    bids = [(100.0 - i, 2.0) for i in range(3)]
    want = zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks[:10] + bids[:10]))
    assert checksum(asks, bids) == want == book_checksum(asks, bids)
    assert checksum([], []) == 0
