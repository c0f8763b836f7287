"""The idle fetch: a consumer with nobody waiting for its records replaces its client by
one that fetches in bulk, and back, without losing or repeating a record."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from mdgw.config import KafkaConfig
from mdgw.kafka.client import BEGINNING, Record
from mdgw.kafka.memory import MemoryBroker, MemorySource
from mdgw.kafka.source import IDLE_FETCH_MIN_BYTES, ThreadedConsumer
from tests.unit.kafka.memkafka import broker_for

CFG = KafkaConfig(partitions=2)


class Made:
    """A source factory over the in-memory broker that keeps every client it made and
    the fetch settings it was asked for."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.clients: list[tuple[MemorySource, int | None, Mapping[str, object] | None]] = []

    def __call__(self, group_id: str, **asked: Any) -> MemorySource:
        source = self.broker(group_id, on_error=asked.get("on_error"))
        self.clients.append((source, asked.get("fetch_wait_ms"), asked.get("settings")))
        return source


async def _until(cond: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)


async def test_switching_the_fetch_loses_and_repeats_no_record_while_records_flow() -> None:
    broker = broker_for(CFG)
    made = Made(broker)
    consumer = ThreadedConsumer(CFG, "g", sources=made, max_batch=7)
    topic = CFG.book_topic
    consumer.assign([(topic, 0, BEGINNING), (topic, 1, BEGINNING)])
    seen: list[tuple[int, int]] = []
    stop = threading.Event()
    sent = 0

    def produce() -> None:  # records keep coming while the clients are replaced
        nonlocal sent
        while not stop.is_set() or sent < 50:
            broker.send(topic, None, str(sent).encode(), partition=sent % 2)
            sent += 1
            stop.wait(0.0005)

    def on_batch(records: list[Record]) -> None:
        seen.extend((r.partition, r.offset) for r in records)

    producer = threading.Thread(target=produce)
    producer.start()
    consumer.start(asyncio.get_running_loop(), on_batch)
    try:
        for idle in (True, False, True, False, True, False):
            await _until(lambda: len(seen) >= 20)
            consumer.pace(idle)
            await _until(lambda idle=idle: consumer.idle is idle)
        replaced = [client.closed for client, _, _ in made.clients]
        stop.set()
        producer.join()
        await _until(lambda: len(seen) >= sent)
    finally:
        stop.set()
        consumer.close()
    for part in (0, 1):
        offsets = [o for p, o in seen if p == part]
        assert offsets == list(range(len(offsets)))  # each once, in order
    assert len(seen) == sent
    # the first client, then one per switch: idle ones with the bulk fetch
    assert len(made.clients) == 7
    for i, (client, wait, settings) in enumerate(made.clients):
        if i % 2:
            assert wait == CFG.idle_fetch_wait_ms > 0
            assert settings == {"fetch.min.bytes": IDLE_FETCH_MIN_BYTES}
        else:
            assert wait is None and settings is None
    assert replaced == [True] * 6 + [False]  # every replaced client was closed


@pytest.mark.parametrize(
    ("cfg", "group"),
    [(KafkaConfig(partitions=1, idle_fetch_wait_ms=0), False), (CFG, True)],
    ids=["switched off", "group member"],
)
async def test_no_switch_when_off_or_in_a_group(cfg: KafkaConfig, group: bool) -> None:
    broker = broker_for(cfg)
    made = Made(broker)
    consumer = ThreadedConsumer(cfg, "g", sources=made)
    if group:
        consumer.subscribe([cfg.book_topic], lambda s, tps: s.assign([]), lambda s, tps: None)
    else:
        consumer.assign([(cfg.book_topic, 0, BEGINNING)])
    consumer.start(asyncio.get_running_loop(), lambda records: None)
    try:
        consumer.pace(True)
        await asyncio.sleep(0.3)  # the consumer thread looks between consume() calls
    finally:
        consumer.close()
    assert not consumer.idle
    assert len(made.clients) == 1


async def test_a_switch_that_fails_keeps_the_running_client_and_can_be_asked_again() -> None:
    broker = broker_for(CFG)
    made = Made(broker)
    fail = [False]

    def factory(group_id: str, **asked: Any) -> MemorySource:
        if fail[0]:
            fail[0] = False
            raise RuntimeError("no client today")
        return made(group_id, **asked)

    consumer = ThreadedConsumer(CFG, "g", sources=factory)
    topic = CFG.book_topic
    consumer.assign([(topic, 0, BEGINNING)])
    seen: list[int] = []
    consumer.start(asyncio.get_running_loop(), lambda rs: seen.extend(r.offset for r in rs))
    try:
        consumer.pace(True)
        await _until(lambda: consumer.idle)
        fail[0] = True
        consumer.pace(False)
        await _until(lambda: consumer.errors == 1)
        assert consumer.idle and "switching the fetch" in consumer.last_error
        for i in range(5):
            broker.send(topic, None, str(i).encode(), partition=0)
        await _until(lambda: len(seen) == 5)  # the idle client still reads
        consumer.pace(False)
        await _until(lambda: not consumer.idle)
        for i in range(5, 10):
            broker.send(topic, None, str(i).encode(), partition=0)
        await _until(lambda: len(seen) == 10)
    finally:
        consumer.close()
    assert seen == list(range(10))
    assert len(made.clients) == 3  # the first, the idle one, the eager one after the failure


async def test_caught_up_after_the_first_eager_fetch_with_or_without_records() -> None:
    """``on_caught_up`` fires once per switch back from the idle fetch: after the records
    the first eager fetch brought have been handed on, or at once if it brought none."""
    broker = broker_for(CFG)
    consumer = ThreadedConsumer(CFG, "g", sources=Made(broker))
    topic = CFG.book_topic
    consumer.assign([(topic, 0, BEGINNING)])
    seen: list[int] = []
    seen_when_caught_up: list[int] = []
    consumer.on_caught_up = lambda: seen_when_caught_up.append(len(seen))
    consumer.start(asyncio.get_running_loop(), lambda rs: seen.extend(r.offset for r in rs))
    try:
        for sent in (0, 5):  # nothing held back, then five records
            consumer.pace(True)
            await _until(lambda: consumer.idle)
            for i in range(sent):
                broker.send(topic, None, str(i).encode(), partition=0)
            calls = len(seen_when_caught_up)
            consumer.pace(False)
            await _until(lambda calls=calls: len(seen_when_caught_up) > calls)
        await asyncio.sleep(0.3)  # no more calls without a switch
    finally:
        consumer.close()
    assert seen_when_caught_up == [0, 5]
