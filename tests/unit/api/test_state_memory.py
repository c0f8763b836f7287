"""The REST service's Kafka state store on the in-memory broker: bootstrap, catch-up, history."""

from __future__ import annotations

import asyncio
import time

from api.state import KafkaStateStore
from mdgw.config import Config, KafkaConfig
from tests.unit.kafka.memkafka import Clock, broker_for, feed

STREAM = "BINANCE:BTC-USDT"
KAFKA = KafkaConfig(partitions=3)


async def test_ready_after_catch_up_and_serves_past_books() -> None:
    clock = Clock()
    broker = broker_for(KAFKA, clock)
    states = feed(broker, KAFKA, clock, 30)
    store = KafkaStateStore(Config(kafka=KAFKA), sources=broker)
    assert store.not_ready_reason() is not None
    await store.start()
    try:
        deadline = time.monotonic() + 10
        while store.not_ready_reason() is not None:
            assert time.monotonic() < deadline, store.not_ready_reason()
            await asyncio.sleep(0.01)
        assert store.bootstrap_result is not None and store.bootstrap_result.snapshots == 1
        assert store.market.book(STREAM).sequence == 31  # type: ignore[union-attr]
        past = await store.book_at(STREAM, states[12][0])
        assert past.snapshot(0).bids == states[12][1].bids and past.sequence == 13
    finally:
        await store.stop()
    assert store.consumer is None
