"""A live connector publishing through a real KafkaSink, read back from the broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from confluent_kafka import Consumer

from mdgw.config import Config
from mdgw.kafka.sink import MemorySink
from producers.connectors import ConnectorOptions, run_connector
from tests.unit.connectors.fake_coinbase import FakeCoinbase
from tests.unit.connectors.fakes import book_matches, check_published

pytestmark = pytest.mark.kafka

PRODUCTS = ["BTC-USD", "ETH-USD"]
FAST = ConnectorOptions(
    open_timeout=2.0, idle_timeout=5.0, tick=0.02, backoff_initial=0.01, backoff_max=0.05,
    snapshot_timeout=2.0, flush_timeout=10.0,
)  # fmt: skip


async def test_coinbase_feed_through_kafka(config: Config) -> None:
    plans = [
        [("updates", 30), ("trades", 3), ("lose", 1), ("updates", 20), ("close",)],
        [("updates", 20), ("trades", 2), ("updates", 10)],
    ]
    consumer = Consumer(
        {
            "bootstrap.servers": config.kafka.bootstrap,
            "group.id": f"connectors-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([config.kafka.book_topic, config.kafka.trades_topic])
    seen = MemorySink()
    stop = asyncio.Event()
    try:
        async with FakeCoinbase(PRODUCTS, plans, seed=21) as fake:
            task = asyncio.create_task(
                run_connector(
                    config, "coinbase", PRODUCTS, ws_url=fake.url, stop=stop, options=FAST
                )
            )

            def caught_up() -> bool:
                pub = check_published(seen)
                return fake.finished and all(
                    book_matches(pub.books.get(f"COINBASE:{p}"), fake.books[p])
                    and {t.trade_id for t in pub.trades.get(f"COINBASE:{p}", [])}
                    == fake.delivered[p]
                    for p in PRODUCTS
                )

            deadline = asyncio.get_running_loop().time() + 20
            while not caught_up():
                assert not task.done(), task
                assert asyncio.get_running_loop().time() < deadline, "Kafka never caught up"
                msg = await asyncio.to_thread(consumer.poll, 0.2)
                if msg is not None and msg.error() is None:
                    seen.records.append((msg.topic(), msg.key().decode(), msg.value(), None))
            stop.set()
            stats = await asyncio.wait_for(task, 15)
    finally:
        consumer.close()
    assert stats.connects == 2 and stats.resyncs >= len(PRODUCTS)
    pub = check_published(seen)
    assert sum(pub.snapshots.values()) == stats.snapshot_records
    assert {topic for topic, *_ in seen.records} == {
        config.kafka.book_topic,
        config.kafka.trades_topic,
    }
