"""Readers built on the record-source seam (:mod:`mdgw.kafka.client`).

:func:`read_to_end` reads partitions up to where they end now (the compacted
snapshots at start-up, tests); :class:`ThreadedConsumer` consumes on its own thread
and feeds asyncio. Its source's ``consume()`` (librdkafka releases the GIL while it
waits) gives the event loop whole batches with no polling latency. Batches cross
into the loop with ``call_soon_threadsafe``; a semaphore bounds the batches in
flight, so a slow loop slows the consumer instead of growing memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mdgw.config import KafkaConfig
from mdgw.kafka.client import (
    BEGINNING,
    BROKERS_DOWN,
    UNKNOWN_TOPIC,
    RebalanceHandler,
    Record,
    RecordSource,
    SourceError,
    SourceFactory,
    consumer_conf,
    sources_for,
)
from mdgw.kafka.headers import BOOK_OFFSET, BOOK_PARTITION, int_header
from mdgw.metrics import KAFKA_FETCH_IDLE, KAFKA_FETCH_SWITCHES

__all__ = [
    "Batch",
    "Record",
    "SnapshotRecord",
    "ThreadedConsumer",
    "consumer_conf",
    "load_snapshots",
    "read_to_end",
]

log = logging.getLogger(__name__)


def read_to_end(
    cfg: KafkaConfig,
    topic: str,
    start: dict[int, int] | None = None,
    stop: dict[int, int] | None = None,
    timeout: float = 60.0,
    *,
    sources: SourceFactory | None = None,
) -> Iterable[Record]:
    """Read partitions of a topic from ``start`` (default: beginning) to their end now."""

    def warn(err: SourceError) -> None:
        log.warning("read %s: %s", topic, err)

    source = sources_for(cfg, sources)(f"{cfg.client_id}-reader", on_error=warn, fetch_wait_ms=50)
    try:
        ends: dict[int, int] = {}
        assign: list[tuple[str, int, int]] = []
        for p in source.partitions(topic):
            low, high = source.watermarks(topic, p)
            end = high if stop is None or p not in stop else min(stop[p], high)
            begin = max(low, (start or {}).get(p, low))
            if begin < end:
                ends[p] = end
                assign.append((topic, p, begin if start else BEGINNING))
        if not assign:
            return
        source.assign(assign)
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            for rec in source.consume(1000, 0.2):
                p = rec.partition
                if p not in ends:
                    continue
                if rec.offset >= ends[p]:
                    ends.pop(p)
                    continue
                yield rec
                if rec.offset + 1 >= ends[p]:
                    ends.pop(p)
        if ends:
            raise TimeoutError(f"reading {topic} to its end timed out; left: {ends}")
    finally:
        source.close()


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
    handled: int = 0
    """Records handed to the loop's handler so far (a batch may span loop turns)."""
    catches_up: bool = False
    """The first batch after the idle fetch: the backlog it held (``on_caught_up``)."""


@dataclass(slots=True)
class SnapshotRecord:
    """A full book from the compacted topic, with where its stream's deltas resume."""

    value: bytes
    book_partition: int | None
    book_offset: int | None


def load_snapshots(
    cfg: KafkaConfig, topic: str | None = None, *, sources: SourceFactory | None = None
) -> dict[str, SnapshotRecord]:
    """The latest snapshot record of every stream (compacted topic read to its end)."""
    latest: dict[str, SnapshotRecord] = {}
    for rec in read_to_end(cfg, topic or cfg.snapshots_topic, sources=sources):
        if rec.key is None or rec.value is None:
            continue
        latest[rec.key.decode(errors="replace")] = SnapshotRecord(
            rec.value, int_header(rec.headers, BOOK_PARTITION), int_header(rec.headers, BOOK_OFFSET)
        )
    return latest


IDLE_FETCH_MIN_BYTES = 1 << 20
"""fetch.min.bytes of the idle fetch: more than arrives in its wait at any rate seen
here, so the broker answers once a wait (``kafka.idle_fetch_wait_ms``)."""


CHUNK = 16
"""Records handled between two looks at the clock: a batch of 2,000 records, each
fanned out to hundreds of clients, is longer than the loop's whole budget (and 64
records to 700 clients each overran a 5 ms budget)."""


def _handle_some(batch: Batch, on_batch: Callable[[list[Record]], None], deadline: int) -> bool:
    """Hand ``batch``'s records on from ``batch.handled``, ``CHUNK`` at a time, until all
    are handled (True) or ``deadline`` (perf_counter ns) has passed (False)."""
    records = batch.records
    start = batch.handled
    if start == 0 and len(records) <= CHUNK:
        batch.handled = len(records)
        on_batch(records)
        return True
    while start < len(records):
        end = start + CHUNK
        batch.handled = min(end, len(records))
        on_batch(records[start:end])
        start = end
        if start < len(records) and time.perf_counter_ns() > deadline:
            return False
    return True


class ThreadedConsumer:
    """Consumes assigned partitions on a thread and hands batches to the loop."""

    def __init__(
        self,
        cfg: KafkaConfig,
        group_id: str,
        *,
        max_batch: int = 2000,
        max_inflight: int = 8,
        sources: SourceFactory | None = None,
    ) -> None:
        self._cfg = cfg
        self._sources = sources_for(cfg, sources)
        self._meta_client: RecordSource | None = None
        self.broker_down = False
        """Set by librdkafka's all-brokers-down error; cleared by ``probe()`` or a record."""
        self._source = self._sources(group_id, on_error=self._on_client_error)
        self._max_batch = max_batch
        self._inflight = threading.Semaphore(max_inflight)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error = ""
        self.connected = False
        self._positions: dict[tuple[str, int], int] = {}
        self.current: Batch | None = None
        """The batch whose records the loop's handler is being given (None between)."""
        self._group_id = group_id
        self._assigned: dict[tuple[str, int], int] = {}
        """The hand-made assignment's start offsets (empty in group mode)."""
        self._subscribed = False
        self._lock = threading.Lock()
        """Held while the client is replaced or assigned (two threads may do either)."""
        self.idle = False
        """The client fetches in bulk (:meth:`pace`)."""
        self.on_caught_up: Callable[[], None] | None = None
        """Called on the loop once the records the idle fetch held back are applied: the
        first fetch after a switch back to the eager one has been handled (or was empty)."""
        self._want_idle = False

    def _on_client_error(self, err: SourceError) -> None:
        if err.code == BROKERS_DOWN:
            if not self.broker_down:
                log.warning("kafka: all brokers down (%s); clients are told stale", err)
            self.broker_down = True
        else:
            self._note_error(str(err))

    def probe(self, timeout: float = 2.0) -> bool:
        """Blocking metadata request; clears ``broker_down`` when a broker answers."""
        try:
            self._meta.partitions(self._cfg.book_topic, timeout=timeout)
        except SourceError as e:
            if e.code != UNKNOWN_TOPIC:  # "no such topic" is an answer: the broker is up
                return False
        if self.broker_down:
            log.info("kafka: brokers reachable again")
        self.broker_down = False
        return True

    @property
    def sources(self) -> SourceFactory:
        """Where this consumer's clients come from (bootstrap reads snapshots there too)."""
        return self._sources

    def partitions(self, topic: str, timeout: float = 10.0) -> list[int]:
        """The topic's partition ids (``SourceError`` when it does not exist)."""
        return self._meta.partitions(topic, timeout=timeout)

    def assign(self, partitions: list[tuple[str, int, int]]) -> None:
        """Read these (topic, partition, start offset); a negative offset means beginning."""
        assignment = [(t, p, o if o >= 0 else BEGINNING) for t, p, o in partitions]
        with self._lock:
            self._source.assign(assignment)
            # where a replacement client starts (``pace``) until records come
            self._assigned = {(t, p): o for t, p, o in assignment}
            for tp in list(self._positions):
                if tp in self._assigned:  # read again from the given offset
                    del self._positions[tp]

    def pace(self, idle: bool) -> None:
        """Fetch in bulk (``idle``: nobody waits for the records, e.g. no client is
        connected) or eagerly, answered as soon as a record is there (the default).

        librdkafka fixes its fetch settings when a client is made, so the consumer
        thread replaces its client between two ``consume()`` calls: the new one is
        assigned where the old one's last record handed on ends, so no record is lost or
        read twice. Only for a hand-made assignment (a group member would rebalance), and
        only when ``kafka.idle_fetch_wait_ms`` is set."""
        self._want_idle = idle and self._cfg.idle_fetch_wait_ms > 0 and not self._subscribed

    def _repace(self) -> None:
        """On the consumer thread: a new client with the fetch ``pace`` asked for."""
        idle = self._want_idle
        with self._lock:
            if self._subscribed:
                self._want_idle = self.idle  # group mode: the client stays
                return
            assignment = [
                (t, p, self._positions.get((t, p), start))
                for (t, p), start in self._assigned.items()
            ]
            t0 = time.perf_counter()
            try:
                source = self._sources(
                    self._group_id,
                    on_error=self._on_client_error,
                    fetch_wait_ms=self._cfg.idle_fetch_wait_ms if idle else None,
                    settings={"fetch.min.bytes": IDLE_FETCH_MIN_BYTES} if idle else None,
                )
                source.assign(assignment)
            except Exception as e:  # the library's own types too: the running client stays
                self._want_idle = self.idle
                self._note_error(f"switching the fetch: {e}")
                return
            old, self._source = self._source, source
            self.idle = idle
        old.close()
        KAFKA_FETCH_IDLE.set(1 if idle else 0)
        KAFKA_FETCH_SWITCHES.labels("idle" if idle else "eager").inc()
        log.info(
            "kafka: %s fetch (%d partitions, %.0f ms)",
            "idle" if idle else "eager",
            len(assignment),
            (time.perf_counter() - t0) * 1e3,
        )

    def subscribe(
        self, topics: list[str], on_assign: RebalanceHandler, on_revoke: RebalanceHandler
    ) -> None:
        """Join the consumer group (sharded mode); the callbacks set start offsets."""
        self._subscribed = True
        self._source.subscribe(topics, on_assign, on_revoke)

    def start(
        self,
        loop: asyncio.AbstractEventLoop,
        on_batch: Callable[[list[Record]], None],
        on_drained: Callable[[list[Batch]], None] | None = None,
        budget_s: float = 0.005,
    ) -> None:
        """Hand batches to ``on_batch`` on the loop, then, every loop turn that handled
        records, ``on_drained`` with the batches finished in it (possibly none: a big
        batch spans turns, and what it produced so far is flushed all the same).

        The thread queues batches and wakes the loop only when it is not already due
        to run (one ``call_soon_threadsafe``, i.e. one self-pipe write, per wake-up,
        not per batch). The loop handles what is queued within ``budget_s``, looking at
        the clock every :data:`CHUNK` records, then lets other callbacks and I/O run
        (handshakes, control messages) before the rest. 5 ms, not 20: under overload a
        ping waited for whole 20 ms turns of records and flushes (bench/README.md).
        """
        queue: deque[Batch] = deque()
        scheduled = threading.Event()

        def caught_up() -> None:
            if self.on_caught_up is not None:
                self.on_caught_up()

        def drain() -> None:
            scheduled.clear()
            t0 = time.perf_counter_ns()
            deadline = t0 + int(budget_s * 1e9)
            done: list[Batch] = []
            handled = False
            try:
                while queue:
                    batch = queue[0]
                    handled = True
                    if not batch.loop_ns:
                        batch.loop_ns = time.perf_counter_ns()
                    self.current = batch
                    if not _handle_some(batch, on_batch, deadline):
                        break  # the budget ran out inside this batch: the rest waits
                    queue.popleft()
                    self._inflight.release()
                    done.append(batch)
                    if batch.catches_up:
                        caught_up()
                    if queue and time.perf_counter_ns() > deadline:
                        break
            except BaseException:
                # a record that breaks the handler: its batch is given up, as before
                if queue:
                    queue.popleft()
                    self._inflight.release()
                raise
            finally:
                self.current = None
                if queue and not scheduled.is_set():
                    scheduled.set()
                    loop.call_soon(drain)
                if on_drained is not None and handled:
                    on_drained(done)  # the batches finished in this turn (maybe none yet)

        def run() -> None:
            catching_up = False  # the first fetch of the eager client after an idle one
            while not self._stop.is_set():
                if self._want_idle != self.idle:
                    was_idle = self.idle
                    self._repace()
                    catching_up = was_idle and not self.idle
                try:
                    records = self._source.consume(self._max_batch, 0.1)
                except SourceError as e:
                    self._note_error(str(e))
                    time.sleep(0.5)
                    continue
                if not records:
                    if catching_up:  # the idle fetch held nothing back
                        catching_up = False
                        with contextlib.suppress(RuntimeError):  # the loop is closed
                            loop.call_soon_threadsafe(caught_up)
                    continue
                wall = time.time_ns()
                for rec in records:
                    self._positions[(rec.topic, rec.partition)] = rec.offset + 1
                self.connected = True
                while not self._inflight.acquire(timeout=0.2):
                    if self._stop.is_set():
                        return
                queue.append(Batch(records, records[0].received_ns, wall, catches_up=catching_up))
                catching_up = False
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
    def _meta(self) -> RecordSource:
        """A second client that never consumes, for watermark and time look-ups:
        asked from another thread, the consuming client answers only between consume()
        calls (confluent-kafka 2.16), i.e. never while records keep flowing."""
        if self._meta_client is None:
            self._meta_client = self._sources(f"{self._cfg.client_id}-meta")
        return self._meta_client

    def lag(self) -> dict[tuple[str, int], int]:
        """Records behind the high watermark per partition."""
        out: dict[tuple[str, int], int] = {}
        for (topic, part), pos in list(self._positions.items()):
            try:
                _, high = self._meta.watermarks(topic, part, timeout=1)
            except SourceError:
                continue
            out[(topic, part)] = max(0, high - pos)
        return out

    def offsets_for_times(
        self, topic: str, partitions: list[int], at_ms: int, timeout: float = 10.0
    ) -> dict[int, int]:
        """First offset at or after ``at_ms`` per partition (-1 where nothing is that new)."""
        return self._meta.offsets_for_times(topic, partitions, at_ms, timeout=timeout)

    def watermarks(self, topic: str, partition: int, timeout: float = 5.0) -> tuple[int, int]:
        return self._meta.watermarks(topic, partition, timeout=timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for client in (self._source, self._meta_client):
            if client is not None:
                client.close()
