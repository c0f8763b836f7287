"""One contract, two sources: the in-memory broker must read like the real one.

Every test runs over :class:`MemoryBroker` (always) and a real broker (marked
``kafka``), writing through the matching sink and reading through the seam.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mdgw.config import KafkaConfig
from mdgw.kafka.client import (
    BEGINNING,
    END,
    UNKNOWN_TOPIC,
    Record,
    RecordSource,
    SourceError,
    SourceFactory,
)
from mdgw.kafka.sink import RecordSink
from tests.unit.kafka.memkafka import broker_for

TS = 1_700_000_000_000
"""Record timestamps (ms) written explicitly, so both brokers index the same times."""


@dataclass
class Env:
    cfg: KafkaConfig
    sink: RecordSink
    sources: SourceFactory
    topic: str


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    if request.param == "memory":
        cfg = KafkaConfig(partitions=3)
        broker = broker_for(cfg)
        yield Env(cfg, broker, broker, cfg.book_topic)
        return
    from mdgw.kafka.client import KafkaSources
    from mdgw.kafka.sink import KafkaSink

    cfg = request.getfixturevalue("kafka_cfg")
    sink = KafkaSink(cfg)
    yield Env(cfg, sink, KafkaSources(cfg), cfg.book_topic)
    sink.flush(10)


def put(env: Env, partition: int, n: int, *, start_ts: int = TS, key: str = "k") -> None:
    for i in range(n):
        env.sink.send(
            env.topic, key, f"v{i}".encode(), [("h", b"x")], partition, start_ts + 1000 * i
        )
    assert env.sink.flush(10) == 0


def drain(source: RecordSource, n: int, timeout: float = 15.0) -> list[Record]:
    """Consume until ``n`` records arrived (or the timeout: then fewer)."""
    out: list[Record] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        out += source.consume(n - len(out), 0.2)
    return out


@pytest.fixture
def source(env: Env) -> Iterator[RecordSource]:
    s = env.sources(f"{env.cfg.client_id}-contract")
    deadline = time.monotonic() + 20
    while True:  # a topic just created is "unknown", then "not leader", for a moment
        try:
            for p in s.partitions(env.topic):
                s.watermarks(env.topic, p)
            break
        except SourceError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    yield s
    s.close()


def test_partitions_of_a_topic_and_of_a_missing_one(env: Env, source: RecordSource) -> None:
    assert source.partitions(env.topic) == [0, 1, 2]
    with pytest.raises(SourceError) as e:
        source.partitions(f"{env.topic}.missing", timeout=5)
    assert not e.value.retriable and e.value.code == UNKNOWN_TOPIC


def test_watermarks_follow_writes(env: Env, source: RecordSource) -> None:
    assert source.watermarks(env.topic, 0) == (0, 0)
    put(env, 0, 3)
    assert source.watermarks(env.topic, 0) == (0, 3)
    assert source.watermarks(env.topic, 1) == (0, 0)


def test_assign_from_beginning_reads_in_order_with_every_field(
    env: Env, source: RecordSource
) -> None:
    put(env, 1, 4)
    source.assign([(env.topic, 1, BEGINNING)])
    recs = drain(source, 4)
    assert [r.offset for r in recs] == [0, 1, 2, 3]
    r = recs[2]
    assert (r.topic, r.partition, r.key, r.value) == (env.topic, 1, b"k", b"v2")
    assert list(r.headers or []) == [("h", b"x")]
    assert r.timestamp_ms == TS + 2000 and r.received_ns > 0


def test_assign_at_an_offset_and_at_the_end(env: Env, source: RecordSource) -> None:
    put(env, 0, 5)
    put(env, 2, 2)
    source.assign([(env.topic, 0, 3), (env.topic, 2, END)])
    assert sorted((r.partition, r.offset) for r in drain(source, 2)) == [(0, 3), (0, 4)]
    assert source.consume(10, 0.5) == []  # at the end of partition 2: nothing old
    put(env, 2, 1)
    assert [(r.partition, r.offset) for r in drain(source, 1)] == [(2, 2)]


def test_reassign_replaces_the_assignment(env: Env, source: RecordSource) -> None:
    put(env, 0, 2)
    put(env, 1, 2)
    source.assign([(env.topic, 0, BEGINNING)])
    assert len(drain(source, 2)) == 2
    source.assign([(env.topic, 1, 1)])
    assert [(r.partition, r.offset) for r in drain(source, 1)] == [(1, 1)]
    source.unassign()
    put(env, 1, 1)
    assert source.consume(10, 0.5) == []


def test_consume_returns_at_most_what_was_asked(env: Env, source: RecordSource) -> None:
    put(env, 0, 6)
    source.assign([(env.topic, 0, BEGINNING)])
    first = drain(source, 2)
    assert [r.offset for r in first] == [0, 1]
    assert [r.offset for r in drain(source, 4)] == [2, 3, 4, 5]


def test_offsets_for_times(env: Env, source: RecordSource) -> None:
    put(env, 0, 3)  # timestamps TS, TS+1000, TS+2000
    found = source.offsets_for_times(env.topic, [0, 1], TS + 500)
    assert found == {0: 1, 1: -1}
    assert source.offsets_for_times(env.topic, [0], TS)[0] == 0
    assert source.offsets_for_times(env.topic, [0], TS + 2000)[0] == 2
    assert source.offsets_for_times(env.topic, [0], TS + 2001)[0] == -1


def test_a_group_of_one_is_given_every_partition(env: Env, source: RecordSource) -> None:
    put(env, 1, 2)
    given: list[tuple[str, int]] = []

    def on_assign(src: RecordSource, parts: list[tuple[str, int]]) -> None:
        given.extend(parts)
        src.assign([(t, p, BEGINNING) for t, p in parts])

    source.subscribe([env.topic], on_assign, lambda _s, _p: None)
    recs = drain(source, 2, timeout=30)
    assert sorted(given) == [(env.topic, 0), (env.topic, 1), (env.topic, 2)]
    assert [(r.partition, r.offset) for r in recs] == [(1, 0), (1, 1)]
