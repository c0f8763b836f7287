"""OrderBook: sequencing results, validation before mutation, reading API, vs a naive model."""

from __future__ import annotations

import math
import struct
import zlib

import pytest
from core_model import SYMBOL, RefBook, ask_px, bid_px, book_ops, make_update, update
from hypothesis import given, settings
from hypothesis import strategies as st

from core.book import CHECKSUM_MISMATCH, NO_SNAPSHOT, SEQUENCE_GAP, ApplyResult, OrderBook
from core.errors import (
    ChecksumMismatchError,
    CoreError,
    CrossedBookError,
    InvalidLevelError,
    InvalidUpdateError,
)
from core.types import BookUpdate, Exchange

EX = Exchange.COINBASE
BIDS = [(100.0, 1.0), (99.5, 2.0), (99.0, 3.0)]
ASKS = [(100.5, 1.5), (101.0, 2.5)]


def upd(seq: int, bids: list | None = None, asks: list | None = None, **kw: object) -> BookUpdate:
    return update(seq, bids, asks, exchange=EX, **kw)  # type: ignore[arg-type]


def live(seq: int = 5) -> OrderBook:
    book = OrderBook(EX, SYMBOL)
    assert book.apply(upd(seq, BIDS, ASKS, snapshot=True)) is ApplyResult.SNAPSHOT
    return book


class TestNew:
    def test_attributes(self) -> None:
        book = OrderBook(EX, SYMBOL)
        assert (book.exchange, book.symbol, book.stream) == (EX, SYMBOL, "COINBASE:BTC-USD")
        assert (book.sequence, book.timestamp_ns, book.ingest_ns) == (0, 0, 0)
        assert book.stale and book.stale_reason == NO_SNAPSHOT
        assert book.bids() == [] and book.best_bid() is None and book.best_ask() is None
        assert "stale" in repr(book)

    @pytest.mark.parametrize(("exchange", "symbol"), [(Exchange.UNKNOWN, SYMBOL), (EX, "")])
    def test_rejects_unknown_exchange_or_empty_symbol(
        self, exchange: Exchange, symbol: str
    ) -> None:
        with pytest.raises(InvalidUpdateError):
            OrderBook(exchange, symbol)


class TestSequencing:
    def test_first_snapshot_makes_it_live(self) -> None:
        book = live(5)
        assert not book.stale and book.stale_reason == ""
        assert (book.sequence, book.timestamp_ns, book.ingest_ns) == (5, 5000, 5001)
        assert book.bids() == BIDS and book.asks() == ASKS
        assert book.last_changes is None
        assert "live" in repr(book)

    def test_delta_before_snapshot_is_ignored(self) -> None:
        book = OrderBook(EX, SYMBOL)
        assert book.apply(upd(1, [(1.0, 1.0)])) is ApplyResult.STALE_IGNORED
        assert book.bids() == [] and book.version == 0

    def test_next_delta_applies(self) -> None:
        book = live(5)
        bids, asks = [(100.0, 0.0), (99.75, 4.0)], [(100.5, 9.0)]
        assert book.apply(upd(6, bids, asks)) is ApplyResult.APPLIED
        assert book.bids() == [(99.75, 4.0), (99.5, 2.0), (99.0, 3.0)]
        assert book.asks() == [(100.5, 9.0), (101.0, 2.5)]
        assert book.sequence == 6 and book.last_changes == (bids, asks)

    @pytest.mark.parametrize("seq", [5, 4, 0])
    def test_old_delta_is_duplicate(self, seq: int) -> None:
        book = live(5)
        assert book.apply(upd(seq, [(100.0, 0.0)])) is ApplyResult.DUPLICATE
        assert book.bids() == BIDS and not book.stale

    @pytest.mark.parametrize("seq", [5, 3])
    def test_old_snapshot_while_live_is_duplicate(self, seq: int) -> None:
        book = live(5)
        assert book.apply(upd(seq, [(1.0, 1.0)], [], snapshot=True)) is ApplyResult.DUPLICATE
        assert book.bids() == BIDS

    def test_gap_marks_stale_and_does_not_apply(self) -> None:
        book = live(5)
        assert book.apply(upd(7, [(100.0, 0.0)])) is ApplyResult.GAP
        assert book.stale and book.stale_reason == SEQUENCE_GAP
        assert book.bids() == BIDS and book.sequence == 5
        assert book.apply(upd(6, [(100.0, 0.0)])) is ApplyResult.STALE_IGNORED

    def test_stale_book_accepts_any_snapshot(self) -> None:
        book = live(5)
        book.apply(upd(9))
        assert book.apply(upd(2, [(1.0, 1.0)], [(2.0, 1.0)], snapshot=True)) is ApplyResult.SNAPSHOT
        assert not book.stale and book.sequence == 2 and book.bids() == [(1.0, 1.0)]

    def test_newer_snapshot_while_live_replaces(self) -> None:
        book = live(5)
        assert book.apply(upd(9, [(1.0, 1.0)], [], snapshot=True)) is ApplyResult.SNAPSHOT
        assert book.bids() == [(1.0, 1.0)] and book.asks() == [] and book.sequence == 9

    def test_prev_sequence_is_informational(self) -> None:
        book = live(5)
        u = upd(6, [(100.0, 5.0)])
        u.prev_sequence = 1
        assert book.apply(u) is ApplyResult.APPLIED

    def test_crossing_delta_is_accepted(self) -> None:
        book = live(5)
        assert book.apply(upd(6, [(102.0, 1.0)])) is ApplyResult.APPLIED
        assert book.best_bid() == (102.0, 1.0) and book.best_ask() == (100.5, 1.5)

    def test_mark_stale(self) -> None:
        book = live(5)
        book.mark_stale("partition revoked")
        assert book.stale and book.stale_reason == "partition revoked"
        assert book.apply(upd(6, [(100.0, 0.0)])) is ApplyResult.STALE_IGNORED


BAD_PRICES = [math.nan, math.inf, -math.inf, -1.0, 0.0]
BAD_DELTA_QTYS = [math.nan, math.inf, -0.5]


class TestValidation:
    @pytest.mark.parametrize("price", BAD_PRICES)
    @pytest.mark.parametrize("side", ["bids", "asks"])
    def test_bad_delta_price(self, price: float, side: str) -> None:
        book = live(5)
        before = book.copy()
        u = upd(6, [(99.0, 1.0)], [(102.0, 1.0)])
        getattr(u, side).append((price, 1.0))
        with pytest.raises(InvalidLevelError, match=rf"COINBASE:BTC-USD.*{side[:3]}.*price="):
            book.apply(u)
        assert book.same_state(before) and book.sequence == 5

    @pytest.mark.parametrize("qty", BAD_DELTA_QTYS)
    def test_bad_delta_quantity(self, qty: float) -> None:
        book = live(5)
        before = book.copy()
        with pytest.raises(InvalidLevelError, match="quantity="):
            book.apply(upd(6, [(99.0, 1.0), (98.0, qty)]))
        assert book.same_state(before)

    @pytest.mark.parametrize("qty", [*BAD_DELTA_QTYS, 0.0])
    def test_snapshot_quantity_must_be_positive(self, qty: float) -> None:
        book = live(5)
        before = book.copy()
        with pytest.raises(InvalidLevelError, match="snapshot"):
            book.apply(upd(9, [(99.0, qty)], [], snapshot=True))
        assert book.same_state(before)

    @pytest.mark.parametrize("price", BAD_PRICES)
    def test_bad_snapshot_price(self, price: float) -> None:
        book = OrderBook(EX, SYMBOL)
        with pytest.raises(InvalidLevelError, match="ask"):
            book.apply(upd(9, [], [(price, 1.0)], snapshot=True))
        assert book.stale and book.sequence == 0

    @pytest.mark.parametrize("level", [("x", 1.0), (1.0,), (1.0, 2.0, 3.0), None])
    def test_malformed_levels(self, level: object) -> None:
        book = live(5)
        before = book.copy()
        for u in (upd(6, [level]), upd(9, [level], [], snapshot=True)):
            with pytest.raises(InvalidLevelError, match="malformed bid"):
                book.apply(u)
        assert book.same_state(before)

    def test_duplicate_price_in_snapshot(self) -> None:
        with pytest.raises(InvalidLevelError, match="duplicate bid"):
            live(5).apply(upd(9, [(99.0, 1.0), (99.0, 2.0)], [], snapshot=True))

    @pytest.mark.parametrize("ask", [100.0, 99.0])
    def test_crossed_snapshot(self, ask: float) -> None:
        book = live(5)
        before = book.copy()
        with pytest.raises(CrossedBookError, match=r"COINBASE:BTC-USD.*bid price 100\.0"):
            book.apply(
                upd(9, [(100.0, 1.0), (98.0, 1.0)], [(ask, 1.0), (105.0, 1.0)], snapshot=True)
            )
        assert book.same_state(before)

    def test_one_sided_snapshot_is_fine(self) -> None:
        book = OrderBook(EX, SYMBOL)
        assert book.apply(upd(1, [], [(5.0, 1.0)], snapshot=True)) is ApplyResult.SNAPSHOT

    @pytest.mark.parametrize(
        ("exchange", "symbol", "match"),
        [
            (Exchange.UNKNOWN, SYMBOL, "exchange="),
            (EX, "", "symbol=''"),
            (Exchange.KRAKEN, SYMBOL, "another stream KRAKEN:BTC-USD"),
            (EX, "ETH-USD", "another stream COINBASE:ETH-USD"),
        ],
    )
    def test_wrong_stream(self, exchange: Exchange, symbol: str, match: str) -> None:
        book = live(5)
        before = book.copy()
        with pytest.raises(InvalidUpdateError, match=match):
            book.apply(update(6, [(1.0, 1.0)], exchange=exchange, symbol=symbol))
        assert book.same_state(before)

    def test_errors_share_one_root(self) -> None:
        assert issubclass(InvalidLevelError, CoreError)
        assert issubclass(CrossedBookError, CoreError)
        assert issubclass(InvalidUpdateError, CoreError)


BAD = st.sampled_from([math.nan, math.inf, -1.0, 0.0, -math.inf])


@settings(deadline=None)
@given(
    ops=book_ops(10),
    bad_price=BAD,
    bad_qty=st.sampled_from([math.nan, math.inf, -1.0]),
    where=st.integers(0, 200),
    snapshot=st.booleans(),
)
def test_rejected_update_leaves_the_book_unchanged(
    ops: list[tuple], bad_price: float, bad_qty: float, where: int, snapshot: bool
) -> None:
    book = OrderBook(EX, SYMBOL)
    model = RefBook()
    for op in ops:
        u = make_update(op, model, 10, exchange=EX)
        book.apply(u)
        model.apply(u)
    before = book.copy()
    levels = [(bid_px(i), 1.0) for i in range(5)]
    bad = (bad_price, 1.0) if where % 2 else (bid_px(7), bad_qty)
    levels.insert(where % 6, bad)
    u = upd(book.sequence + 1, levels, [(ask_px(1), 1.0)], snapshot=snapshot)
    if book.stale and not snapshot:
        assert book.apply(u) is ApplyResult.STALE_IGNORED
    else:
        with pytest.raises(InvalidLevelError):
            book.apply(u)
    assert book.same_state(before)


@settings(deadline=None)
@given(ops=book_ops(10))
def test_book_equals_the_naive_model(ops: list[tuple]) -> None:
    book = OrderBook(EX, SYMBOL)
    model = RefBook()
    for op in ops:
        u = make_update(op, model, 10, exchange=EX)
        assert book.apply(u) is model.apply(u)
        bids, asks = model.top(0)
        assert (book.bids(), book.asks()) == (bids, asks)
        assert (book.bid_count, book.ask_count) == (len(bids), len(asks))
        assert (book.sequence, book.stale) == (model.sequence, model.stale)
        assert book.best_bid() == (bids[0] if bids else None)
        assert book.best_ask() == (asks[0] if asks else None)
        assert book.bids(3) == bids[:3] and book.asks(4) == asks[:4]
        assert book.checksum() == contract_checksum(asks[:10], bids[:10])


def contract_checksum(asks: list, bids: list) -> int:
    """docs/protocol.md §5, literally."""
    return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks[:10] + bids[:10]))


def with_checksum(u: BookUpdate, checksum: int) -> BookUpdate:
    u.checksum = checksum
    return u


class TestChecksums:
    def test_snapshot_with_its_own_checksum(self) -> None:
        book = OrderBook(EX, SYMBOL)
        u = with_checksum(upd(5, BIDS, ASKS, snapshot=True), contract_checksum(ASKS, BIDS))
        assert book.apply(u) is ApplyResult.SNAPSHOT
        assert book.checksum() == u.checksum

    def test_corrupt_snapshot_is_refused(self) -> None:
        book = live(5)
        before = book.copy()
        u = with_checksum(upd(9, BIDS[:1], ASKS, snapshot=True), contract_checksum(ASKS, BIDS))
        with pytest.raises(ChecksumMismatchError, match="COINBASE:BTC-USD: snapshot checksum"):
            book.apply(u)
        assert book.same_state(before)
        assert issubclass(ChecksumMismatchError, InvalidUpdateError)

    def test_delta_with_the_right_checksum(self) -> None:
        book = live(5)
        bids = [(100.0, 0.0), (99.75, 4.0)]
        want = contract_checksum(ASKS, [(99.75, 4.0), *BIDS[1:]])
        assert book.apply(with_checksum(upd(6, bids), want)) is ApplyResult.APPLIED
        assert book.checksum() == want and not book.stale

    def test_delta_with_a_wrong_checksum_is_undone_and_goes_stale(self) -> None:
        book = live(5)
        before = book.copy()
        u = with_checksum(upd(6, [(100.0, 0.0), (99.75, 4.0), (99.5, 7.0)], [(100.5, 0.0)]), 1)
        assert book.apply(u) is ApplyResult.GAP
        assert book.stale and book.stale_reason == CHECKSUM_MISMATCH
        assert (book.bids(), book.asks(), book.sequence, book.version) == (
            before.bids(),
            before.asks(),
            5,
            before.version,
        )
        assert book.bid_side.qty == before.bid_side.qty

    def test_verification_can_be_switched_off(self) -> None:
        book = OrderBook(EX, SYMBOL, verify_checksums=False)
        assert book.apply(with_checksum(upd(5, BIDS, ASKS, snapshot=True), 1)) is (
            ApplyResult.SNAPSHOT
        )
        assert book.apply(with_checksum(upd(6, [(98.0, 1.0)]), 1)) is ApplyResult.APPLIED


@settings(deadline=None)
@given(ops=book_ops(10), marks=st.lists(st.sampled_from(["none", "right", "wrong"]), max_size=70))
def test_checksummed_records_against_the_model(ops: list[tuple], marks: list[str]) -> None:
    """Right checksums never disturb; a wrong one on a delta that would apply is a GAP."""
    book = OrderBook(EX, SYMBOL)
    model = RefBook()
    for i, op in enumerate(ops):
        u = make_update(op, model, 10, exchange=EX)
        mark = marks[i] if i < len(marks) else "none"
        trial = model.copy()
        expected = trial.apply(u)
        bids, asks = trial.top(10)
        if mark != "none":
            u.checksum = contract_checksum(asks, bids) ^ (1 if mark == "wrong" else 0)
        if mark == "wrong" and expected is ApplyResult.SNAPSHOT:
            before = book.copy()
            with pytest.raises(ChecksumMismatchError):
                book.apply(u)
            assert book.same_state(before)
            continue
        if mark == "wrong" and expected is ApplyResult.APPLIED:
            before = book.copy()
            assert book.apply(u) is ApplyResult.GAP
            assert book.stale_reason == CHECKSUM_MISMATCH
            assert (book.bids(), book.asks()) == (before.bids(), before.asks())
            model.stale = True
            continue
        assert book.apply(u) is model.apply(u) is expected
        assert (book.bids(), book.asks()) == model.top(0)


class TestReading:
    def test_snapshot_at_depth(self) -> None:
        book = live(5)
        snap = book.snapshot(2)
        assert snap.is_snapshot and snap.depth == 2 and snap.sequence == 5
        assert snap.bids == BIDS[:2] and snap.asks == ASKS[:2]
        assert snap.checksum == contract_checksum(ASKS[:2], BIDS[:2])
        assert (snap.exchange, snap.symbol, snap.timestamp_ns, snap.ingest_ns) == (
            EX,
            SYMBOL,
            5000,
            5001,
        )
        full = book.snapshot()
        assert full.bids == BIDS and full.depth == 0

    def test_snapshot_round_trips_into_a_new_book(self) -> None:
        book = live(5)
        book.apply(upd(6, [(98.0, 1.0)]))
        other = OrderBook(EX, SYMBOL)
        other.apply(book.snapshot())
        assert other.same_state(book)

    def test_copy_is_independent(self) -> None:
        book = live(5)
        other = book.copy()
        book.apply(upd(6, [(100.0, 0.0)], [(100.5, 0.0)]))
        assert other.bids() == BIDS and other.asks() == ASKS and other.sequence == 5
        assert not other.same_state(book)

    def test_checksum_is_cached_per_version(self) -> None:
        book = live(5)
        first = book.checksum()
        assert book.checksum() == first
        book.apply(upd(6, [(100.0, 7.0)]))
        assert book.checksum() != first
