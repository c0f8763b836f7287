"""The record-source seam: every read of Kafka goes through :class:`RecordSource`.

Like the producer side (:class:`mdgw.kafka.sink.RecordSink`), reading has one small
interface with two implementations: :class:`KafkaSource` over a confluent-kafka
``Consumer``, and :class:`mdgw.kafka.memory.MemoryBroker`'s sources, a tiny
in-process broker for tests. Callers get a :class:`SourceFactory` (one client per
call, as each reader owns its client) and see only :class:`Record` values and
:class:`SourceError`, never the client library's types.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from mdgw.config import KafkaConfig
from mdgw.kafka.headers import Headers
from mdgw.kafka.security import security_conf

log = logging.getLogger(__name__)

BEGINNING = OFFSET_BEGINNING
"""Start offset meaning the oldest retained record (-2)."""
END = -1
"""Start offset meaning the end: only records produced after the assignment (-1)."""
BROKERS_DOWN = "all_brokers_down"
"""``SourceError.code`` of the client-wide "no broker reachable" condition."""
UNKNOWN_TOPIC = "unknown_topic_or_part"


class SourceError(Exception):
    """Kafka could not be read; ``code`` names the condition, ``retriable`` says whether
    trying again later can help (a broker restarting) or not (a missing topic)."""

    def __init__(self, message: str, *, code: str = "", retriable: bool = True) -> None:
        super().__init__(message)
        self.code = code
        self.retriable = retriable


@dataclass(slots=True)
class Record:
    """One consumed record, detached from the client library."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers | None
    timestamp_ms: int
    received_ns: int
    """When the Kafka client handed the record to us (perf_counter_ns clock)."""


Assignment = Sequence[tuple[str, int, int]]
"""(topic, partition, start offset); the offset may be :data:`BEGINNING` or :data:`END`."""
ErrorHandler = Callable[[SourceError], None]
"""Told of errors that do not stop reading (a record's error, a broker going away)."""
RebalanceHandler = Callable[["RecordSource", list[tuple[str, int]]], None]
"""Group rebalance callback: the source and the (topic, partition)s given or taken."""


class RecordSource(Protocol):
    """One reading client: partitions assigned by hand (or by a group), batches out."""

    def partitions(self, topic: str, timeout: float = 10.0) -> list[int]:
        """The topic's partition ids; ``SourceError`` (not retriable) if it does not exist."""
        ...

    def assign(self, partitions: Assignment) -> None:
        """Read exactly these partitions from these offsets (replaces any assignment)."""
        ...

    def unassign(self) -> None: ...

    def subscribe(
        self, topics: list[str], on_assign: RebalanceHandler, on_revoke: RebalanceHandler
    ) -> None:
        """Join the consumer group; ``on_assign`` must call ``assign`` with start offsets."""
        ...

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        """Wait up to ``timeout`` s for a first record, then add what is already fetched."""
        ...

    def watermarks(self, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
        """(oldest retained offset, next offset to be written), asked of the broker now."""
        ...

    def offsets_for_times(
        self, topic: str, partitions: list[int], at_ms: int, timeout: float = 10.0
    ) -> dict[int, int]:
        """First offset with a timestamp at or after ``at_ms`` per partition (-1: none)."""
        ...

    def close(self) -> None: ...


class SourceFactory(Protocol):
    """Makes one client per call: ``group_id`` is its consumer group (never committed)."""

    def __call__(
        self,
        group_id: str,
        *,
        on_error: ErrorHandler | None = None,
        fetch_wait_ms: int | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> RecordSource:
        """``fetch_wait_ms`` None: the configured wait; ``settings``: librdkafka tuning
        (buffer sizes) a real client applies and an in-memory one ignores."""
        ...


SOCKET_CONF: dict[str, object] = {
    # librdkafka leaves Nagle on: a small request written while the previous one is
    # unacknowledged waits for that ACK, tens of ms at the tail (bench/README.md).
    "socket.nagle.disable": True,
    # after a broker restart, back within 2 s rather than librdkafka's 10 s ceiling
    "reconnect.backoff.ms": 100,
    "reconnect.backoff.max.ms": 2000,
}
"""How every client here (consumer_conf, mdgw.kafka.sink) talks to the brokers."""


def consumer_conf(cfg: KafkaConfig, group_id: str, **extra: object) -> dict:
    return {
        "bootstrap.servers": cfg.bootstrap,
        **security_conf(cfg),
        "group.id": group_id,
        "client.id": cfg.client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # The broker answers a fetch as soon as fetch.min.bytes are there, so a long
        # wait costs no latency and spares both sides empty fetches (bench/README.md).
        "fetch.wait.max.ms": cfg.fetch_wait_max_ms,
        "fetch.min.bytes": cfg.fetch_min_bytes,
        "queued.max.messages.kbytes": 65536,
        **SOCKET_CONF,
        "enable.partition.eof": False,
        **extra,
    }


def to_record(msg: object, now_ns: int) -> Record:
    return Record(
        msg.topic(),  # type: ignore[attr-defined]
        msg.partition(),  # type: ignore[attr-defined]
        msg.offset(),  # type: ignore[attr-defined]
        msg.key(),  # type: ignore[attr-defined]
        msg.value(),  # type: ignore[attr-defined]
        msg.headers(),  # type: ignore[attr-defined]
        msg.timestamp()[1],  # type: ignore[attr-defined]
        now_ns,
    )


def source_error(err: KafkaError) -> SourceError:
    """The client library's error as ours (the boundary translation)."""
    if err.code() == KafkaError._ALL_BROKERS_DOWN:
        return SourceError(err.str(), code=BROKERS_DOWN, retriable=True)
    return SourceError(err.str(), code=err.name().lower(), retriable=bool(err.retriable()))


def _translated(e: KafkaException) -> SourceError:
    err = e.args[0] if e.args else None
    return source_error(err) if isinstance(err, KafkaError) else SourceError(str(e))


def _log_error(err: SourceError) -> None:
    log.warning("kafka consumer: %s", err)


class KafkaSource:
    """:class:`RecordSource` over one confluent-kafka ``Consumer``."""

    def __init__(
        self,
        cfg: KafkaConfig,
        group_id: str,
        *,
        on_error: ErrorHandler | None = None,
        fetch_wait_ms: int | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> None:
        self._on_error = on_error or _log_error
        wait = cfg.fetch_wait_max_ms if fetch_wait_ms is None else fetch_wait_ms
        extra = {"fetch.wait.max.ms": wait, **(settings or {})}
        conf = consumer_conf(cfg, group_id, error_cb=self._client_error, **extra)
        self._consumer = Consumer(conf)

    def _client_error(self, err: KafkaError) -> None:
        self._on_error(source_error(err))

    def partitions(self, topic: str, timeout: float = 10.0) -> list[int]:
        try:
            md = self._consumer.list_topics(topic, timeout=timeout)
        except KafkaException as e:
            raise _translated(e) from e
        tmeta = md.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            text = tmeta.error.str() if tmeta is not None else "missing"
            raise SourceError(f"topic {topic}: {text}", code=UNKNOWN_TOPIC, retriable=False)
        return sorted(tmeta.partitions)

    def assign(self, partitions: Assignment) -> None:
        try:
            self._consumer.assign([TopicPartition(t, p, o) for t, p, o in partitions])
        except KafkaException as e:
            raise _translated(e) from e

    def unassign(self) -> None:
        try:
            self._consumer.unassign()
        except KafkaException as e:
            raise _translated(e) from e

    def subscribe(
        self, topics: list[str], on_assign: RebalanceHandler, on_revoke: RebalanceHandler
    ) -> None:
        def given(_c: Consumer, tps: list[TopicPartition]) -> None:
            on_assign(self, [(tp.topic, tp.partition) for tp in tps])

        def taken(_c: Consumer, tps: list[TopicPartition]) -> None:
            on_revoke(self, [(tp.topic, tp.partition) for tp in tps])

        try:
            self._consumer.subscribe(topics, on_assign=given, on_revoke=taken)
        except KafkaException as e:
            raise _translated(e) from e

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        try:
            # consume(n, t) waits for n records or t: block on the first one only,
            # then take whatever else is already fetched.
            first = self._consumer.poll(timeout)
            if first is None:
                return []
            msgs = [first]
            if max_records > 1:
                msgs += self._consumer.consume(max_records - 1, 0)
        except KafkaException as e:
            raise _translated(e) from e
        now = time.perf_counter_ns()
        out: list[Record] = []
        for m in msgs:
            err = m.error()
            if err is not None:
                self._on_error(source_error(err))
                continue
            out.append(to_record(m, now))
        return out

    def watermarks(self, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
        try:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=timeout, cached=False
            )
        except KafkaException as e:
            raise _translated(e) from e
        return low, high

    def offsets_for_times(
        self, topic: str, partitions: list[int], at_ms: int, timeout: float = 10.0
    ) -> dict[int, int]:
        tps = [TopicPartition(topic, p, at_ms) for p in partitions]
        try:
            found = self._consumer.offsets_for_times(tps, timeout=timeout)
        except KafkaException as e:
            raise _translated(e) from e
        return {tp.partition: tp.offset for tp in found}

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as e:
            log.warning("closing consumer: %s", e)


@dataclass(frozen=True)
class KafkaSources:
    """The :class:`SourceFactory` of a real cluster."""

    cfg: KafkaConfig

    def __call__(
        self,
        group_id: str,
        *,
        on_error: ErrorHandler | None = None,
        fetch_wait_ms: int | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> KafkaSource:
        return KafkaSource(
            self.cfg, group_id, on_error=on_error, fetch_wait_ms=fetch_wait_ms, settings=settings
        )


def sources_for(cfg: KafkaConfig, sources: SourceFactory | None) -> SourceFactory:
    """``sources`` when given (tests inject a MemoryBroker), else the real cluster's."""
    return sources if sources is not None else KafkaSources(cfg)
