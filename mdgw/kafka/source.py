"""The record source: a confluent-kafka consumer on its own thread, feeding asyncio.

librdkafka's ``consume()`` releases the GIL while it waits, so a dedicated thread
gives the event loop whole batches with no polling latency. Batches cross into
the loop with ``call_soon_threadsafe``; a semaphore bounds the batches in flight,
so a slow loop slows the consumer instead of growing memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from mdgw.config import KafkaConfig
from mdgw.kafka.headers import BOOK_OFFSET, BOOK_PARTITION, Headers, int_header
from mdgw.kafka.security import security_conf

log = logging.getLogger(__name__)


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
        "enable.partition.eof": False,
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 2000,
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


def read_to_end(
    cfg: KafkaConfig,
    topic: str,
    start: dict[int, int] | None = None,
    stop: dict[int, int] | None = None,
    timeout: float = 60.0,
) -> Iterable[Record]:
    """Read partitions of a topic from ``start`` (default: beginning) to their end now."""
    consumer = Consumer(consumer_conf(cfg, f"{cfg.client_id}-reader", **{"fetch.wait.max.ms": 50}))
    try:
        md = consumer.list_topics(topic, timeout=10)
        tmeta = md.topics.get(topic)
        if tmeta is None or tmeta.error is not None:
            missing = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
            raise KafkaException(tmeta.error if tmeta else missing)
        ends: dict[int, int] = {}
        assign: list[TopicPartition] = []
        for p in tmeta.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            end = high if stop is None or p not in stop else min(stop[p], high)
            begin = max(low, (start or {}).get(p, low))
            if begin < end:
                ends[p] = end
                assign.append(TopicPartition(topic, p, begin if start else OFFSET_BEGINNING))
        if not assign:
            return
        consumer.assign(assign)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error():
                    log.warning("read %s: %s", topic, msg.error())
                    continue
                p = msg.partition()
                if p not in ends:
                    continue
                if msg.offset() >= ends[p]:
                    ends.pop(p)
                    continue
                yield to_record(msg, time.perf_counter_ns())
                if msg.offset() + 1 >= ends[p]:
                    ends.pop(p)
        if ends:
            raise TimeoutError(f"reading {topic} to its end timed out; left: {ends}")
    finally:
        consumer.close()


@dataclass(slots=True)
class Batch:
    """Records consumed together, with when the consumer thread got them."""

    records: list[Record]
    received_ns: int
    """perf_counter_ns when the thread had them."""
    received_wall_ns: int
    """time.time_ns at the same moment (compared with producers' ingest_ns)."""
    loop_ns: int = 0
    """perf_counter_ns when the event loop started on them."""


@dataclass(slots=True)
class SnapshotRecord:
    """A full book from the compacted topic, with where its stream's deltas resume."""

    value: bytes
    book_partition: int | None
    book_offset: int | None


def load_snapshots(cfg: KafkaConfig, topic: str | None = None) -> dict[str, SnapshotRecord]:
    """The latest snapshot record of every stream (compacted topic read to its end)."""
    latest: dict[str, SnapshotRecord] = {}
    for rec in read_to_end(cfg, topic or cfg.snapshots_topic):
        if rec.key is None or rec.value is None:
            continue
        latest[rec.key.decode(errors="replace")] = SnapshotRecord(
            rec.value, int_header(rec.headers, BOOK_PARTITION), int_header(rec.headers, BOOK_OFFSET)
        )
    return latest


class ThreadedConsumer:
    """Consumes assigned partitions on a thread and hands batches to the loop."""

    def __init__(
        self, cfg: KafkaConfig, group_id: str, *, max_batch: int = 2000, max_inflight: int = 8
    ) -> None:
        self._cfg = cfg
        self._meta_client: Consumer | None = None
        self.broker_down = False
        """Set by librdkafka's all-brokers-down error; cleared by ``probe()`` or a record."""
        self._consumer = Consumer(consumer_conf(cfg, group_id, error_cb=self._on_client_error))
        self._max_batch = max_batch
        self._inflight = threading.Semaphore(max_inflight)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error = ""
        self.connected = False
        self._positions: dict[tuple[str, int], int] = {}
        self._ends: dict[tuple[str, int], int] = {}

    def _on_client_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self.broker_down:
                log.warning("kafka: all brokers down (%s); clients are told stale", err.str())
            self.broker_down = True
        else:
            self._note_error(err.str())

    def probe(self, timeout: float = 2.0) -> bool:
        """Blocking metadata request; clears ``broker_down`` when a broker answers."""
        try:
            self._meta.list_topics(self._cfg.book_topic, timeout=timeout)
        except KafkaException:
            return False
        if self.broker_down:
            log.info("kafka: brokers reachable again")
        self.broker_down = False
        return True

    def assign(self, partitions: list[tuple[str, int, int]]) -> None:
        """Read these (topic, partition, start offset); a negative offset means beginning."""
        self._consumer.assign(
            [TopicPartition(t, p, o if o >= 0 else OFFSET_BEGINNING) for t, p, o in partitions]
        )

    def subscribe(
        self, topics: list[str], on_assign: Callable[..., None], on_revoke: Callable[..., None]
    ) -> None:
        """Join the consumer group (sharded mode); the callbacks set start offsets."""
        self._consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke)

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[list[Record]], None],
        on_drained: Callable[[list[Batch]], None] | None = None,
        budget_s: float = 0.02,
    ) -> None:
        """Hand batches to ``on_batch`` on the loop, then ``on_drained`` with those handled.

        The thread queues batches and wakes the loop only when it is not already due
        to run (one ``call_soon_threadsafe``, i.e. one self-pipe write, per wake-up,
        not per batch). The loop handles what is queued within ``budget_s``, then lets
        other callbacks and I/O run (handshakes, control messages) before the rest.
        """
        queue: deque[Batch] = deque()
        scheduled = threading.Event()

        def drain() -> None:
            scheduled.clear()
            t0 = time.perf_counter_ns()
            deadline = t0 + int(budget_s * 1e9)
            done: list[Batch] = []
            try:
                while queue:
                    batch = queue.popleft()
                    batch.loop_ns = time.perf_counter_ns()
                    try:
                        on_batch(batch.records)
                    finally:
                        self._inflight.release()
                    done.append(batch)
                    if queue and time.perf_counter_ns() > deadline:
                        if not scheduled.is_set():
                            scheduled.set()
                            loop.call_soon(drain)
                        break
            finally:
                if on_drained is not None and done:
                    on_drained(done)

        def run() -> None:
            while not self._stop.is_set():
                try:
                    # consume(n, t) waits for n records or t: block on the first one
                    # only, then take whatever else is already fetched.
                    first = self._consumer.poll(0.1)
                    if first is None:
                        continue
                    msgs = [first, *self._consumer.consume(self._max_batch - 1, 0)]
                except KafkaException as e:
                    self._note_error(str(e))
                    time.sleep(0.5)
                    continue
                now = time.perf_counter_ns()
                wall = time.time_ns()
                records: list[Record] = []
                for m in msgs:
                    err = m.error()
                    if err is not None:
                        self._note_error(err.str())
                        continue
                    records.append(to_record(m, now))
                    self._positions[(m.topic(), m.partition())] = m.offset() + 1
                if not records:
                    continue
                self.connected = True
                while not self._inflight.acquire(timeout=0.2):
                    if self._stop.is_set():
                        return
                queue.append(Batch(records, now, wall))
                if not scheduled.is_set():
                    scheduled.set()
                    try:
                        loop.call_soon_threadsafe(drain)
                    except RuntimeError:  # the loop is closed: shutting down
                        return

        self._thread = threading.Thread(target=run, name="kafka-consumer", daemon=True)
        self._thread.start()

    def _note_error(self, text: str) -> None:
        self.errors += 1
        self.last_error = text
        log.warning("kafka consumer: %s", text)

    @property
    def _meta(self) -> Consumer:
        """A second client that never consumes, for watermark and time look-ups:
        asked from another thread, the consuming client answers only between consume()
        calls (confluent-kafka 2.16), i.e. never while records keep flowing."""
        if self._meta_client is None:
            self._meta_client = Consumer(consumer_conf(self._cfg, f"{self._cfg.client_id}-meta"))
        return self._meta_client

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the high watermark per partition."""
        out: dict[tuple[str, int], int] = {}
        for (topic, part), pos in list(self._positions.items()):
            try:
                _, high = self._meta.get_watermark_offsets(
                    TopicPartition(topic, part), timeout=1, cached=False
                )
            except KafkaException:
                continue
            out[(topic, part)] = max(0, high - pos)
        return out

    def offsets_for_times(
        self, topic: str, partitions: list[int], at_ms: int, timeout: float = 10.0
    ) -> dict[int, int]:
        """First offset at or after ``at_ms`` per partition (-1 where nothing is that new)."""
        tps = [TopicPartition(topic, p, at_ms) for p in partitions]
        found = self._meta.offsets_for_times(tps, timeout=timeout)
        return {tp.partition: tp.offset for tp in found}

    def watermarks(self, topic: str, partition: int, timeout: float = 5.0) -> tuple[int, int]:
        tp = TopicPartition(topic, partition)
        return self._meta.get_watermark_offsets(tp, timeout=timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for client in (self._consumer, self._meta_client):
            if client is None:
                continue
            try:
                client.close()
            except (KafkaException, RuntimeError) as e:
                log.warning("closing consumer: %s", e)
