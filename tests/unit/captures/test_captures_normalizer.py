"""StreamNormalizer / LocalBook: sequences, snapshots, gaps, truncation, trades."""

from __future__ import annotations

import pytest

from core.checksum import book_checksum
from core.types import Exchange
from producers.captures.errors import CorruptLineError
from producers.captures.normalizer import LocalBook, StreamNormalizer, parse_level


def lv(price: str, qty: str) -> tuple[float, float, str, str]:
    return parse_level(price, qty)


def test_parse_level_keeps_text() -> None:
    assert parse_level("0.043130", "1.50") == (0.04313, 1.5, "0.043130", "1.50")
    assert parse_level(2, 0.5)[:2] == (2.0, 0.5)


@pytest.mark.parametrize(
    ("price", "qty"),
    [("x", "1"), ("1", "nan"), ("0", "1"), ("1", "-1"), ("inf", "1"), (None, "1"), (True, "1")],
)
def test_parse_level_rejects(price: object, qty: object) -> None:
    with pytest.raises(CorruptLineError):
        parse_level(price, qty)


def test_sequences_snapshot_then_deltas() -> None:
    n = StreamNormalizer(Exchange.KRAKEN, "BTC-USD")
    assert n.update(1, [lv("1", "1")], []) is None  # before any snapshot: dropped
    snap = n.snapshot(5, [lv("9", "1"), lv("8", "2"), lv("7", "0")], [lv("10", "1")])
    assert (snap.sequence, snap.prev_sequence, snap.is_snapshot) == (1, 0, True)
    assert snap.bids == [(9.0, 1.0), (8.0, 2.0)]  # best first, zero dropped
    assert snap.asks == [(10.0, 1.0)]
    delta = n.update(6, [lv("9", "0")], [lv("11", "3")])
    assert delta is not None
    assert (delta.sequence, delta.prev_sequence, delta.is_snapshot) == (2, 1, False)
    assert delta.bids == [(9.0, 0.0)] and delta.asks == [(11.0, 3.0)]
    assert delta.checksum == book_checksum([(10.0, 1.0), (11.0, 3.0)], [(8.0, 2.0)])
    assert n.stats.dropped_diffs == 1 and n.stats.applied_diffs == 1


def test_gap_waits_for_snapshot_then_resync() -> None:
    n = StreamNormalizer(Exchange.BINANCE, "BTC-USDT")
    n.snapshot(1, [lv("1", "1")], [lv("2", "1")])
    n.gap("test")
    assert n.update(2, [lv("1", "2")], []) is None
    again = n.snapshot(3, [lv("1", "3")], [lv("2", "1")])
    assert again.is_snapshot and again.sequence == 2 and again.prev_sequence == 1
    assert (n.stats.gaps, n.stats.resyncs, n.stats.snapshots, n.stats.dropped_diffs) == (1, 1, 2, 1)
    assert n.stats.gap_reasons == ["test"]


def test_failed_verify_is_a_gap_and_uses_no_sequence() -> None:
    n = StreamNormalizer(Exchange.KRAKEN, "BTC-USD")
    n.snapshot(1, [lv("1", "1")], [lv("2", "1")])
    assert n.update(2, [lv("1", "2")], [], verify=lambda book: False) is None
    assert n.stats.checksum_failures == 1 and n.stats.gaps == 1 and not n.synced
    assert n.snapshot(3, [], []).sequence == 2


def test_depth_truncation_emits_removals() -> None:
    n = StreamNormalizer(Exchange.KRAKEN, "BTC-USD", depth=2)
    snap = n.snapshot(1, [lv("9", "1"), lv("8", "1"), lv("7", "1")], [lv("10", "1")])
    assert snap.bids == [(9.0, 1.0), (8.0, 1.0)]  # the snapshot is cut too
    delta = n.update(2, [lv("9.5", "1")], [])
    assert delta is not None and delta.bids == [(9.5, 1.0), (8.0, 0.0)]
    assert n.book.levels("bid") == [(9.5, 1.0), (9.0, 1.0)]
    book = LocalBook(depth=2)
    book.apply("ask", [lv("1", "1"), lv("2", "1"), lv("3", "1")])
    assert book.truncate("ask") == [(3.0, 0.0)]


def test_crossed_counted() -> None:
    n = StreamNormalizer(Exchange.COINBASE, "BTC-USD")
    n.snapshot(1, [lv("1", "1")], [lv("2", "1")])
    n.update(2, [lv("2.5", "1")], [])
    assert n.stats.crossed == 1 and n.book.is_crossed()


def test_trades_sequence_and_dedupe() -> None:
    n = StreamNormalizer(Exchange.COINBASE, "BTC-USD")
    t1 = n.trade(1, "7", "100.5", "0.1", "buy")
    assert t1 is not None and (t1.sequence, t1.price, t1.quantity, t1.side) == (
        1,
        100.5,
        0.1,
        "buy",
    )
    assert n.trade(2, "7", "100.5", "0.1", "buy") is None
    t2 = n.trade(3, "", "100", "1", "")
    assert t2 is not None and t2.sequence == 2
    assert n.stats.trades == 2 and n.stats.duplicate_trades == 1
    with pytest.raises(CorruptLineError):
        n.trade(4, "9", "100", "0", "buy")


def test_current_book_for_compaction() -> None:
    n = StreamNormalizer(Exchange.KRAKEN, "BTC-USD")
    n.snapshot(1, [lv("1", "1")], [lv("2", "1")])
    n.update(2, [lv("1.5", "1")], [])
    full = n.current_book(9)
    assert full.is_snapshot and full.sequence == 2
    assert full.bids == [(1.5, 1.0), (1.0, 1.0)] and full.asks == [(2.0, 1.0)]
