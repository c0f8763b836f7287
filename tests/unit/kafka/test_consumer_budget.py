"""The loop's share of a consumed batch is bounded by time, inside a batch too: a batch
of 2,000 records fanned out to many clients must not hold the loop for its whole length
(handshakes and control messages wait behind it)."""

from __future__ import annotations

import asyncio
import time

from mdgw.config import KafkaConfig
from mdgw.kafka import source
from mdgw.kafka.client import Record
from mdgw.kafka.source import Batch, ThreadedConsumer
from tests.unit.kafka.memkafka import broker_for

CFG = KafkaConfig(partitions=1)


async def test_a_big_batch_is_handled_over_several_loop_turns_in_order() -> None:
    broker = broker_for(CFG)
    for i in range(1000):
        broker.send(CFG.book_topic, "k", str(i).encode(), partition=0)
    consumer = ThreadedConsumer(CFG, "g", sources=broker, max_batch=2000)
    consumer.assign([(CFG.book_topic, 0, 0)])
    seen: list[bytes] = []
    calls: list[int] = []
    drained: list[list[Batch]] = []
    turns = 0
    turn_of_call: list[int] = []
    """The loop turn (counted by another task) of each call of the handler."""
    done = asyncio.Event()

    def on_batch(records: list[Record]) -> None:
        calls.append(len(records))
        turn_of_call.append(turns)
        for r in records:
            seen.append(r.value or b"")
            time.sleep(0.0001)  # 0.1 ms a record: the batch is 100 ms, the budget 5 ms
        if len(seen) == 1000:
            done.set()

    async def count_turns() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_turns())
    consumer.start(asyncio.get_running_loop(), on_batch, drained.append, budget_s=0.005)
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        consumer.close()
        await counter
    assert seen == [str(i).encode() for i in range(1000)]  # each once, in order
    assert max(calls) <= source.CHUNK
    # other callbacks ran between the chunks: a turn ends once the budget (5 ms) is
    # spent, looked at after each chunk, and a chunk takes at least 1.6 ms (16 sleeps of
    # at least 0.1 ms), so a turn holds 4 chunks at most, and fewer on a slow machine
    # (CI once saw 28 loop turns in all where a bound of 2 chunks a turn asked for 31)
    assert len(set(turn_of_call)) >= 1000 // (source.CHUNK * 4)
    handed = [b for batch in drained for b in batch]
    assert sum(len(b.records) for b in handed) == 1000  # each batch reported once, whole
    assert all(b.handled == len(b.records) for b in handed)
    # every turn that handled records reported, finished batches or not (its flush)
    assert len(drained) > 1 and any(not batch for batch in drained)


async def test_the_handler_sees_the_batch_it_is_given_and_when_it_arrived() -> None:
    """``current`` is the batch being handed over (the gateway counts clients' lag from
    its arrival), and None between turns."""
    broker = broker_for(CFG)
    for i in range(10):
        broker.send(CFG.book_topic, "k", str(i).encode(), partition=0)
    consumer = ThreadedConsumer(CFG, "g", sources=broker)
    consumer.assign([(CFG.book_topic, 0, 0)])
    seen: list[tuple[int, int]] = []
    done = asyncio.Event()

    def on_batch(records: list[Record]) -> None:
        batch = consumer.current
        assert batch is not None and records[0] in batch.records
        seen.append((batch.received_ns, time.perf_counter_ns()))
        if sum(1 for _ in seen) and records[-1].value == b"9":
            done.set()

    consumer.start(asyncio.get_running_loop(), on_batch)
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        consumer.close()
    assert consumer.current is None
    assert all(0 < received <= handled for received, handled in seen)
