"""Kafka as history on the in-memory broker: the book at an instant, retention, recording."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.types import BookUpdate
from mdgw.config import Config, KafkaConfig
from mdgw.history import (
    HistoryError,
    book_at,
    earliest_ns,
    find_checkpoint,
    offset_for_time,
    stream_records,
)
from mdgw.kafka.memory import MemoryBroker
from producers.captures.native import read_native
from producers.record import record
from schemas import codec
from tests.unit.kafka.memkafka import Clock, book, broker_for, feed, publisher, trade

CFG = KafkaConfig(partitions=3)
STREAM = "BINANCE:BTC-USDT"
LOOKBACK = 7_000


@pytest.fixture
def history() -> tuple[MemoryBroker, list[tuple[int, BookUpdate]]]:
    clock = Clock()
    broker = broker_for(CFG, clock)
    return broker, feed(broker, CFG, clock, 40)


def test_the_book_at_any_instant_is_the_book_then(history) -> None:
    broker, states = history
    part = broker.records(CFG.book_topic)[0].partition
    for ingest, want in states[::7] + states[-1:]:
        for at in (ingest, ingest + 50_000_000):  # on a record, and between two
            got = book_at(CFG, STREAM, at, LOOKBACK, part, sources=broker).snapshot(0)
            assert (got.sequence, got.bids, got.asks) == (want.sequence, want.bids, want.asks)


def test_the_newest_checkpoint_before_the_instant_is_used(history) -> None:
    broker, states = history
    at = states[25][0]
    cp = find_checkpoint(CFG, STREAM, at, LOOKBACK, sources=broker)
    assert cp is not None and cp.book.ingest_ns <= at
    assert at - cp.book.ingest_ns <= 1_000_000_000  # within one checkpoint interval
    assert find_checkpoint(CFG, "KRAKEN:ETH-USD", at, LOOKBACK, sources=broker) is None


def test_before_retention_and_without_checkpoint(history) -> None:
    broker, states = history
    part = broker.records(CFG.book_topic)[0].partition
    broker.truncate(CFG.book_topic, part, 20)
    broker.truncate(CFG.checkpoints_topic, part, 10**6)
    oldest = earliest_ns(CFG, CFG.book_topic, part, sources=broker)
    assert oldest == states[20][0] // 1_000_000 * 1_000_000
    with pytest.raises(HistoryError) as e:
        book_at(CFG, STREAM, states[5][0], LOOKBACK, part, sources=broker)
    assert e.value.code == "before_retention"
    with pytest.raises(HistoryError) as e:
        book_at(CFG, STREAM, states[30][0], LOOKBACK, part, sources=broker)
    assert e.value.code == "no_checkpoint"
    with pytest.raises(HistoryError) as e:
        book_at(CFG, "NOPE", states[30][0], LOOKBACK, part, sources=broker)
    assert e.value.code == "unknown_symbol"


def test_a_bounded_read_ends_and_a_live_read_follows_until_stopped(history) -> None:
    broker, states = history
    part = broker.records(CFG.book_topic)[0].partition
    until = states[9][0]
    got = list(stream_records(CFG, CFG.book_topic, part, 0, STREAM, None, until, sources=broker))
    assert [r.sequence for r in got] == list(range(1, 11))
    stop = threading.Event()
    live = stream_records(CFG, CFG.book_topic, part, 38, STREAM, stop, sources=broker)
    assert [next(live).sequence for _ in range(3)] == [39, 40, 41]
    broker.send(CFG.book_topic, STREAM, codec.encode(book(42)), partition=part)
    assert next(live).sequence == 42
    stop.set()
    assert list(live) == []


def test_offset_for_time(history) -> None:
    broker, states = history
    part = broker.records(CFG.book_topic)[0].partition
    assert offset_for_time(CFG, CFG.book_topic, part, states[3][0], sources=broker) == 3
    assert offset_for_time(CFG, CFG.book_topic, part, states[-1][0] + 10**9, sources=broker) is None


def test_record_writes_every_book_and_trade_record(tmp_path: Path) -> None:
    clock = Clock()
    broker = broker_for(CFG, clock)
    pub = publisher(broker, CFG, clock)
    for seq in range(1, 6):
        clock.advance(1)
        pub.publish(book(seq, snapshot=seq == 1))
        pub.publish(trade(seq))
    out = tmp_path / "rec.mdgw"
    config = Config(kafka=CFG)
    n = record(config, str(out), from_beginning=True, idle_exit=0.3, sources=broker)
    assert n == 10
    written = list(read_native(out))
    want = {(r.timestamp_ms * 1_000_000, r.value) for t in (CFG.book_topic, CFG.trades_topic)
            for r in broker.records(t)}  # fmt: skip
    assert set(written) == want
    # from the end: only what is produced while recording
    stop = threading.Event()
    assert record(config, str(out), stop=stop, idle_exit=0.3, sources=broker) == 0
