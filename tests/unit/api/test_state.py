"""Readiness of the state store and the catch-up tracker it relies on (no Kafka)."""

from __future__ import annotations

from api.state import KafkaStateStore, StateStore
from core.market import Market
from mdgw.catchup import CatchUp
from mdgw.kafka.source import Record
from mdgw.materializer import StreamPosition
from tests.unit.api.apidata import make_config


def rec(topic: str, partition: int, offset: int) -> Record:
    return Record(topic, partition, offset, b"k", b"v", None, 0, 0)


def test_catch_up_needs_every_partition_to_reach_its_end() -> None:
    c = CatchUp({("book", 0): 10, ("book", 1): 3})
    assert not c.done
    assert not c.observe([rec("book", 0, 8), rec("trades", 0, 99), rec("book", 1, 2)])
    assert not c.observe([rec("book", 0, 8)])
    assert c.observe([rec("book", 0, 9)])
    assert c.done and not c.observe([rec("book", 0, 10)])  # True once: on the transition


def test_nothing_to_catch_up_is_done_at_once() -> None:
    c = CatchUp({})
    assert c.done and not c.observe([rec("book", 0, 0)])


def test_readiness_reasons_in_order() -> None:
    s = StateStore(Market())
    assert s.not_ready_reason() is None
    s.kafka_ok = False
    assert "Kafka" in (s.not_ready_reason() or "")
    s.caught_up = False
    assert "catching up" in (s.not_ready_reason() or "")
    s.bootstrapped = False
    assert "snapshot topic" in (s.not_ready_reason() or "")


def test_kafka_store_is_not_ready_before_its_lifespan_runs() -> None:
    s = KafkaStateStore(make_config())
    assert s.not_ready_reason() is not None and s.consumer is None
    assert s.market.trades_per_stream == make_config().api.trades_per_stream


def test_lag_of_a_stream_is_its_book_partition_lag() -> None:
    s = KafkaStateStore(make_config())
    book_topic = s.config.kafka.book_topic
    s._materializer.positions["BINANCE:BTC-USDT"] = StreamPosition(partition=2, offset=41)
    s.lag = {(book_topic, 2): 7, (book_topic, 0): 1}
    assert s.lag_of("BINANCE:BTC-USDT") == 7
    assert s.lag_of("KRAKEN:BTC-USD") is None
    assert StateStore(Market()).lag_of("BINANCE:BTC-USDT") is None
