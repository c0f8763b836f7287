"""Poisoned input must not freeze a stream: absurd sequence jumps, snapshot offsets outside
the partition, too many streams, over-long trade ids."""

from __future__ import annotations

import dataclasses

import pytest

from core.book import OrderBook
from core.market import Market
from core.plausible import SequenceGuard
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import KafkaConfig
from mdgw.kafka.sink import MemorySink
from mdgw.kafka.source import Record, SnapshotRecord
from mdgw.materializer import Materializer
from schemas import codec
from schemas.errors import ValidationError

CFG = KafkaConfig()
STREAM = "KRAKEN:BTC-USD"


def snap(seq: int, symbol: str = "BTC-USD") -> BookUpdate:
    return BookUpdate(Exchange.KRAKEN, symbol, seq, seq, [(100.0, 1.0)], [(101.0, 1.0)], True)


def delta(seq: int, qty: float = 2.0) -> BookUpdate:
    return BookUpdate(Exchange.KRAKEN, "BTC-USD", seq, seq, [(100.0, qty)], [], False, seq - 1)


def rec(update: BookUpdate | Trade, offset: int, topic: str = CFG.book_topic) -> Record:
    key = f"{update.exchange.name}:{update.symbol}".encode()
    return Record(topic, 0, offset, key, codec.encode(update), None, 0, 0)


def materializer(**cfg: object) -> tuple[Materializer, MemorySink]:
    sink = MemorySink()
    mat = Materializer(Market(verify_checksums=False), dataclasses.replace(CFG, **cfg), dlq=sink)
    return mat, sink


def reasons(sink: MemorySink) -> list[str]:
    out = []
    for _topic, _key, _value, headers in sink.records:
        error = dict(headers or [])["error"].decode()
        out.append(error.split(":", 1)[0])
    return out


# ---- the guard (pure) ------------------------------------------------------------------


def test_guard_refuses_jumps_past_the_bound_and_follows_a_confirmed_rebase() -> None:
    guard = SequenceGuard(1000)
    book = OrderBook(Exchange.KRAKEN, "BTC-USD")
    assert guard.refusal(book, snap(10**15)) is None  # no sequence yet: anything starts it
    book.apply(snap(100))
    assert guard.refusal(book, delta(1100)) is None  # a real gap: the book handles it
    assert "jumps" in (guard.refusal(book, delta(2**62)) or "")
    assert guard.refusal(book, snap(10**12)) is not None
    assert guard.refusal(book, snap(10**12 + 500)) is None  # consistent second snapshot
    assert SequenceGuard(0).refusal(book, snap(2**63 - 1)) is None  # off


# ---- through the materializer ------------------------------------------------------------


def test_an_absurd_snapshot_is_dead_lettered_and_the_stream_keeps_flowing() -> None:
    mat, sink = materializer(max_sequence_jump=1_000_000)
    mat.handle([rec(snap(100), 0), rec(delta(101), 1)])
    mat.handle([rec(snap(2**63 - 1), 2)])  # without the guard: every later record is "old"
    mat.handle([rec(delta(102, 5.0), 3), rec(snap(103), 4), rec(delta(104, 7.0), 5)])
    book = mat.market.book(STREAM)
    assert book is not None and not book.stale and book.sequence == 104
    assert book.bids(1) == [(100.0, 7.0)]
    assert reasons(sink) == ["sequence_jump"]


def test_an_absurd_delta_is_dead_lettered_without_making_the_stream_stale() -> None:
    mat, sink = materializer(max_sequence_jump=1_000_000)
    mat.handle([rec(snap(100), 0), rec(delta(10**13), 1), rec(delta(101), 2)])
    book = mat.market.book(STREAM)
    assert book is not None and not book.stale and book.sequence == 101
    assert reasons(sink) == ["sequence_jump"]


def test_a_snapshot_offset_outside_the_watermarks_is_skipped_not_trusted() -> None:
    mat, _ = materializer()
    good = SnapshotRecord(codec.encode(snap(50, "ETH-USD")), 0, 10)
    bad = SnapshotRecord(codec.encode(snap(50)), 0, 10**12)  # past the partition's end
    resume = mat.load_snapshots({"KRAKEN:ETH-USD": good, STREAM: bad}, watermarks={0: (0, 40)})
    assert resume == {0: 10}
    assert mat.market.book(STREAM) is None and STREAM not in mat.positions
    assert mat.counters.by_reason["bad_snapshot_offset"] == 1
    # its records after the resume point are read, not skipped as re-reads
    mat.handle([rec(snap(60), 12), rec(delta(61), 13)])
    book = mat.market.book(STREAM)
    assert book is not None and book.sequence == 61 and mat.counters.rereads == 0


def test_streams_are_capped_for_books_and_trades() -> None:
    mat, sink = materializer(max_streams=2)
    mat.handle([rec(snap(1), 0), rec(snap(1, "ETH-USD"), 1), rec(snap(1, "SOL-USD"), 2)])
    trade = Trade(Exchange.KRAKEN, "XRP-USD", 1, "t1", 1.0, 1.0, "buy", 1)
    mat.handle([rec(trade, 0, CFG.trades_topic)])
    assert mat.market.stream_count() == 2
    assert reasons(sink) == ["too_many_streams", "too_many_streams"]
    mat.handle([rec(delta(2), 3)])  # known streams go on
    assert mat.market.book(STREAM).sequence == 2  # type: ignore[union-attr]


def test_trade_ids_and_symbols_have_a_length_cap() -> None:
    ok = Trade(Exchange.KRAKEN, "BTC-USD", 1, "x" * 64, 1.0, 1.0, "buy", 1)
    assert codec.decode(codec.encode(ok)) == ok
    with pytest.raises(ValidationError, match="trade_id"):
        codec.decode(codec.encode(dataclasses.replace(ok, trade_id="x" * 65)))
    with pytest.raises(ValidationError, match="symbol"):
        codec.decode(codec.encode(dataclasses.replace(ok, symbol="A" * 17 + "-USD")))
