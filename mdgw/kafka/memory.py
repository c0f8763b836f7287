"""A tiny in-process Kafka for tests: topics of partitions of records in lists.

:class:`MemoryBroker` is both a :class:`~mdgw.kafka.sink.RecordSink` (``send``) and
a :class:`~mdgw.kafka.client.SourceFactory` (calling it makes a
:class:`MemorySource`), so a gateway or an API built on it writes snapshots and dead
letters, and reads them back, without a Java broker. It honours what the code
relies on: offsets, low and high watermarks (``truncate`` plays retention),
timestamps and ``offsets_for_times``, keyed partitioning, blocking ``consume``
with a timeout. Not modelled: replication, transactions, compaction, committed
offsets (nothing here commits). ``set_down`` plays the loss of every broker: clients
are told (``BROKERS_DOWN``) and their requests fail until it is back.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from mdgw.config import KafkaConfig
from mdgw.kafka.admin import topic_specs
from mdgw.kafka.client import (
    BROKERS_DOWN,
    END,
    UNKNOWN_TOPIC,
    Assignment,
    ErrorHandler,
    RebalanceHandler,
    Record,
    SourceError,
)
from mdgw.kafka.headers import Headers
from mdgw.kafka.sink import SinkError


@dataclass
class _Partition:
    low: int = 0
    """Offset of ``records[0]``: records before it are gone (retention)."""
    records: list[Record] = field(default_factory=list)

    @property
    def high(self) -> int:
        return self.low + len(self.records)


class MemoryBroker:
    """Topics held in memory; thread-safe, as consumers read on their own threads."""

    def __init__(self, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000):
        self.clock_ms = clock_ms
        self.topics: dict[str, list[_Partition]] = {}
        self._cond = threading.Condition()
        self.down = False
        self._clients: list[MemorySource] = []

    def create_topic(self, name: str, partitions: int = 1) -> None:
        with self._cond:
            self.topics.setdefault(name, [_Partition() for _ in range(partitions)])

    def _parts(self, topic: str) -> list[_Partition]:
        if self.down:
            raise SourceError("all brokers down", code=BROKERS_DOWN, retriable=True)
        parts = self.topics.get(topic)
        if parts is None:
            raise SourceError(f"topic {topic}: unknown", code=UNKNOWN_TOPIC, retriable=False)
        return parts

    # ---- RecordSink ----------------------------------------------------------------

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        kb = key.encode() if isinstance(key, str) else key
        with self._cond:
            parts = self.topics.get(topic)
            if parts is None:
                raise SinkError(f"topic {topic} does not exist")
            if partition is None:  # librdkafka's default for keyed records: CRC32 of the key
                partition = zlib.crc32(kb) % len(parts) if kb is not None else 0
            p = parts[partition]
            ts = self.clock_ms() if timestamp_ms is None else timestamp_ms
            hdrs = list(headers) if headers else None
            p.records.append(Record(topic, partition, p.high, kb, value, hdrs, ts, 0))
            self._cond.notify_all()

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0

    # ---- administration --------------------------------------------------------------

    def truncate(self, topic: str, partition: int, before: int) -> None:
        """Drop the records below offset ``before``, as retention would."""
        with self._cond:
            p = self._parts(topic)[partition]
            cut = max(0, min(before, p.high) - p.low)
            del p.records[:cut]
            p.low += cut

    def set_down(self, down: bool) -> None:
        """Lose (True) or regain (False) every broker; clients hear of the loss."""
        with self._cond:
            self.down = down
            clients = [c for c in self._clients if not c.closed]
            self._clients = clients
        if down:
            for c in clients:
                if c.on_error is not None:
                    c.on_error(SourceError("all brokers down", code=BROKERS_DOWN))

    def records(self, topic: str) -> list[Record]:
        """Every retained record of a topic, partition by partition."""
        with self._cond:
            return [r for p in self._parts(topic) for r in p.records]

    # ---- SourceFactory ---------------------------------------------------------------

    def __call__(
        self,
        group_id: str,
        *,
        on_error: ErrorHandler | None = None,
        fetch_wait_ms: int | None = None,
        settings: Mapping[str, object] | None = None,
    ) -> MemorySource:
        source = MemorySource(self, on_error)
        with self._cond:
            self._clients.append(source)
        return source


def broker_with_topics(cfg: KafkaConfig, clock_ms: Callable[[], int] | None = None) -> MemoryBroker:
    """A broker holding the project's topics, partitioned as ``mdgw topics create`` makes
    them (``clock_ms``: the broker's clock for timestamps, default the wall clock)."""
    broker = MemoryBroker(clock_ms) if clock_ms is not None else MemoryBroker()
    for spec in topic_specs(cfg):
        broker.create_topic(spec.name, spec.partitions)
    return broker


class MemorySource:
    """One reading client of a :class:`MemoryBroker`."""

    def __init__(self, broker: MemoryBroker, on_error: ErrorHandler | None = None) -> None:
        self.broker = broker
        self.on_error = on_error
        self._next: dict[tuple[str, int], int] = {}
        self._pending: tuple[list[str], RebalanceHandler] | None = None
        self.closed = False

    def partitions(self, topic: str, timeout: float = 10.0) -> list[int]:
        with self.broker._cond:
            return list(range(len(self.broker._parts(topic))))

    def assign(self, partitions: Assignment) -> None:
        with self.broker._cond:
            nxt: dict[tuple[str, int], int] = {}
            for topic, part, offset in partitions:
                p = self.broker._parts(topic)[part]
                nxt[(topic, part)] = p.high if offset == END else p.low if offset < 0 else offset
            self._next = nxt

    def unassign(self) -> None:
        self._next = {}

    def subscribe(
        self, topics: list[str], on_assign: RebalanceHandler, on_revoke: RebalanceHandler
    ) -> None:
        """A group of one: every partition is given to this client at its next consume."""
        self._pending = (topics, on_assign)

    def consume(self, max_records: int, timeout: float) -> list[Record]:
        if self.closed:
            raise SourceError("consume on a closed client", code="closed", retriable=False)
        if self._pending is not None:
            topics, on_assign = self._pending
            self._pending = None
            on_assign(self, [(t, p) for t in topics for p in self.partitions(t)])
        deadline = time.monotonic() + timeout
        out: list[Record] = []
        with self.broker._cond:
            while True:
                now = time.perf_counter_ns()  # when the records were there (hop timings)
                for (topic, part), offset in self._next.items() if not self.broker.down else ():
                    p = self.broker._parts(topic)[part]
                    start = max(offset, p.low)  # auto.offset.reset=earliest past retention
                    taken = p.records[start - p.low : start - p.low + max_records - len(out)]
                    out += [_received(r, now) for r in taken]
                    self._next[(topic, part)] = start + len(taken)
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self.broker._cond.wait(left)

    def watermarks(self, topic: str, partition: int, timeout: float = 10.0) -> tuple[int, int]:
        with self.broker._cond:
            p = self.broker._parts(topic)[partition]
            return p.low, p.high

    def offsets_for_times(
        self, topic: str, partitions: list[int], at_ms: int, timeout: float = 10.0
    ) -> dict[int, int]:
        out: dict[int, int] = {}
        with self.broker._cond:
            parts = self.broker._parts(topic)
            for part in partitions:
                hit = (r.offset for r in parts[part].records if r.timestamp_ms >= at_ms)
                out[part] = next(hit, END)
        return out

    def close(self) -> None:
        self.closed = True


def _received(rec: Record, now_ns: int) -> Record:
    return Record(
        rec.topic, rec.partition, rec.offset, rec.key, rec.value, rec.headers,
        rec.timestamp_ms, now_ns,
    )  # fmt: skip
