"""Start-up on the in-memory broker: snapshots + tail, catch-up, retry, dead letters."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.market import Market
from mdgw import catchup
from mdgw.bootstrap import bootstrap
from mdgw.catchup import CatchUp, bootstrap_with_retry
from mdgw.config import KafkaConfig
from mdgw.kafka import headers as H
from mdgw.kafka.client import Record, SourceError
from mdgw.kafka.memory import MemoryBroker
from mdgw.kafka.source import ThreadedConsumer, load_snapshots, read_to_end
from mdgw.materializer import Materializer
from schemas import codec
from tests.unit.kafka.memkafka import Clock, book, broker_for, publisher, trade

CFG = KafkaConfig(partitions=3)
STREAM = "BINANCE:BTC-USDT"


def writer_history(broker: MemoryBroker, clock: Clock, deltas: int) -> Materializer:
    """A feed and a writing gateway: a snapshot, ``deltas`` deltas, books written back."""
    pub = publisher(broker, CFG, clock)
    writer = Materializer(Market(), CFG, snapshot_sink=broker, clock=clock.ns)
    pub.publish(book(1, snapshot=True))
    for seq in range(2, deltas + 2):
        clock.advance(10)
        pub.publish(book(seq))
    writer.handle(broker.records(CFG.book_topic))
    return writer


async def consume_until_caught_up(
    consumer: ThreadedConsumer, mat: Materializer, catch: CatchUp
) -> list[Record]:
    seen: list[Record] = []
    done = asyncio.Event()

    def on_batch(records: list[Record]) -> None:
        seen.extend(records)
        mat.handle(records)
        if catch.observe(records):
            done.set()

    consumer.start(asyncio.get_running_loop(), on_batch)
    await asyncio.wait_for(done.wait(), 10)
    return seen


async def test_bootstrap_loads_the_snapshot_and_resumes_after_it() -> None:
    clock = Clock()
    broker = broker_for(CFG, clock)
    writer = writer_history(broker, clock, 20)
    snap = load_snapshots(CFG, sources=broker)[STREAM]
    pub = publisher(broker, CFG, clock)
    for seq in range(22, 27):  # the tail written after the last snapshot
        pub.publish(book(seq))
    writer.handle(broker.records(CFG.book_topic)[-5:])

    market = Market()
    mat = Materializer(market, CFG)
    consumer = ThreadedConsumer(CFG, "g", sources=broker)
    try:
        result = await bootstrap(CFG, mat, consumer)
        assert (result.snapshots, result.loaded) == (1, 1)
        part = snap.book_partition
        assert (CFG.book_topic, part, snap.book_offset) in result.assignment
        assert result.catch_up == {(CFG.book_topic, part): 26}
        seen = await consume_until_caught_up(consumer, mat, CatchUp(result.catch_up))
    finally:
        consumer.close()
    assert min(r.offset for r in seen if r.topic == CFG.book_topic) == snap.book_offset
    live, want = market.book(STREAM), writer.market.book(STREAM)
    assert live is not None and want is not None
    assert live.sequence == 26 and live.snapshot(0).bids == want.snapshot(0).bids


async def test_without_snapshots_the_tail_is_read_from_the_beginning() -> None:
    clock = Clock()
    broker = broker_for(CFG, clock)
    pub = publisher(broker, CFG, clock)
    pub.publish(book(1, snapshot=True))
    pub.publish(book(2))
    market = Market()
    mat = Materializer(market, CFG)
    consumer = ThreadedConsumer(CFG, "g", sources=broker)
    try:
        result = await bootstrap(CFG, mat, consumer)
        assert result.snapshots == 0
        assert {(t, p, o) for t, p, o in result.assignment if t == CFG.book_topic} == {
            (CFG.book_topic, p, -2) for p in range(3)
        }
        await consume_until_caught_up(consumer, mat, CatchUp(result.catch_up))
    finally:
        consumer.close()
    assert market.book(STREAM).sequence == 2  # type: ignore[union-attr]


async def test_trades_are_reread_for_the_statistics_window_only() -> None:
    clock = Clock(time.time_ns() - 48 * 3600 * 10**9)  # two days ago
    broker = broker_for(CFG, clock)
    pub = publisher(broker, CFG, clock)
    pub.publish(trade(1, 99.0))  # outside the 24 h window
    clock.now_ns = time.time_ns() - 3600 * 10**9
    pub.publish(trade(2, 101.0))
    pub.publish(trade(3, 102.0))
    consumer = ThreadedConsumer(CFG, "g", sources=broker)
    try:
        result = await bootstrap(CFG, Materializer(Market(), CFG), consumer)
    finally:
        consumer.close()
    starts = {p: o for t, p, o in result.assignment if t == CFG.trades_topic}
    (part,) = {r.partition for r in broker.records(CFG.trades_topic)}
    assert starts[part] == 1
    assert all(o == 0 for p, o in starts.items() if p != part)  # empty: start at the end


def test_catch_up_reports_the_transition_once_and_logs_its_time() -> None:
    now = [10.0]
    c = CatchUp({("b", 0): 2, ("b", 1): 1}, clock=lambda: now[0])
    rec = lambda p, o: Record("b", p, o, None, None, None, 0, 0)  # noqa: E731
    assert not c.observe([rec(0, 0), rec(1, 0)])
    now[0] = 12.5
    assert c.observe([rec(0, 1)]) and c.done
    assert not c.observe([rec(0, 2)])


async def test_bootstrap_is_retried_until_the_topics_exist() -> None:
    broker = MemoryBroker()  # no topics yet: the broker has just started
    failures: list[BaseException] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 3:
            for name, parts in ((CFG.snapshots_topic, 3), (CFG.book_topic, 3)):
                broker.create_topic(name, parts)
            broker.create_topic(CFG.trades_topic, 3)

    consumer = ThreadedConsumer(CFG, "g", sources=broker)
    try:
        result = await bootstrap_with_retry(
            CFG, Materializer(Market(), CFG), consumer, on_failure=failures.append, sleep=sleep
        )
    finally:
        consumer.close()
    assert waits == [0.5, 1.0, 2.0] and len(failures) == 3
    assert all(isinstance(e, SourceError) for e in failures)
    assert result.snapshots == 0 and len(result.assignment) == 6


async def test_an_unexpected_bootstrap_error_is_raised_or_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = []

    async def failing(*_a: object, **_k: object) -> object:
        calls.append(1)
        if len(calls) < 3:
            raise ValueError("a bug")
        return "result"

    async def no_sleep(_s: float) -> None:
        return None

    monkeypatch.setattr(catchup, "bootstrap", failing)
    mat = Materializer(Market(), CFG)
    with pytest.raises(ValueError):
        await bootstrap_with_retry(CFG, mat, None, sleep=no_sleep)  # type: ignore[arg-type]
    calls.clear()
    got = await bootstrap_with_retry(
        CFG,
        mat,
        None,
        retry_unexpected=True,
        max_wait=0.7,
        sleep=no_sleep,  # type: ignore[arg-type]
    )
    assert got == "result" and len(calls) == 3


def test_poison_records_are_dead_lettered_with_the_contract_headers() -> None:
    clock = Clock()
    broker = broker_for(CFG, clock)
    broker.send(CFG.book_topic, STREAM, codec.encode(book(5, snapshot=True)), partition=0)
    broker.send(CFG.book_topic, STREAM, b"\xff\x00not protobuf", partition=0)
    broker.send(CFG.book_topic, "KRAKEN:ETH-USD", codec.encode(book(6)), partition=0)
    broker.send(CFG.book_topic, STREAM, codec.encode(trade(1)), partition=0)
    broker.send(CFG.book_topic, STREAM, codec.encode(book(3)), partition=0)  # backwards
    mat = Materializer(Market(), CFG, dlq=broker, clock=clock.ns)
    mat.handle(list(read_to_end(CFG, CFG.book_topic, sources=broker)))
    dead = broker.records(CFG.dlq_topic)
    assert mat.counters.dlq == len(dead) == 4
    reasons = [H.header(r.headers, H.DLQ_ERROR).decode().split(":")[0] for r in dead]  # type: ignore[union-attr]
    assert reasons[1:] == ["key_mismatch", "wrong_type", "sequence_backwards"]
    for r, offset in zip(dead, (1, 2, 3, 4), strict=True):
        assert H.header(r.headers, H.DLQ_SOURCE_TOPIC) == CFG.book_topic.encode()
        assert H.header(r.headers, H.DLQ_SOURCE_PARTITION) == b"0"
        assert H.header(r.headers, H.DLQ_SOURCE_OFFSET) == str(offset).encode()
    assert dead[0].value == b"\xff\x00not protobuf"
    assert mat.market.book(STREAM).sequence == 5  # type: ignore[union-attr]


def test_probe_tells_a_lost_broker_from_a_missing_topic() -> None:
    broker = MemoryBroker()
    consumer = ThreadedConsumer(CFG, "g", sources=broker)
    try:
        assert consumer.probe()  # the broker answers, even without the book topic
        broker.set_down(True)
        assert consumer.broker_down and not consumer.probe()
        broker.set_down(False)
        assert consumer.probe() and not consumer.broker_down
    finally:
        consumer.close()
