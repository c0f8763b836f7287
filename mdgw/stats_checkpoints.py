"""Checkpoints of the trade state (24 h statistics buckets, tape), so a restart reads
only the trades after them instead of the whole statistics window.

The writer (the process that writes the book snapshots) puts one record per stream
on the compacted topic ``marketdata.stats.snapshots`` (key: the stream), every
``checkpoint_every_ms`` per trades partition that had new records: a *round*. Each
record carries the trades-topic offset it covers: every trade of that stream
before it is in the state. A round writes every stream of its trades partition
with the same offset, into one partition of the stats topic (the trades partition
modulo the stats topic's partitions), streams that have no checkpoint yet first.
Records of one partition are delivered in order (idempotent producer), so after a
crash in the middle of a round every stream that lost its new record still has an
older one, and a stream without any record has all its trades after the oldest
offset of its partition's records. A restart therefore:

1. restores every stream's state from its record;
2. reads each trades partition from the lowest offset among its records (but not
   from before the statistics window), skipping the trades of each stream below
   its own record's offset (:meth:`Resume.skip`).

A partition with no record (data older than this feature), or with a record that
could not be used, is read over the whole window as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import KafkaException

from core.errors import CoreError
from core.market import Market
from mdgw.config import KafkaConfig
from mdgw.kafka.sink import RecordSink
from mdgw.kafka.source import read_to_end
from schemas.errors import SchemaError
from schemas.stats_codec import StatsRecord, decode_stats, encode_stats

log = logging.getLogger(__name__)


def load_stats(cfg: KafkaConfig) -> dict[str, StatsRecord]:
    """The latest usable checkpoint of every stream ({} when the topic does not exist)."""
    latest: dict[str, bytes] = {}
    try:
        for rec in read_to_end(cfg, cfg.stats_topic):
            if rec.key is not None:
                key = rec.key.decode(errors="replace")
                if rec.value is None:
                    latest.pop(key, None)  # a tombstone
                else:
                    latest[key] = rec.value
    except KafkaException as e:
        log.warning("no statistics checkpoints (%s): the trades are read in full", e)
        return {}
    out: dict[str, StatsRecord] = {}
    for stream, value in latest.items():
        try:
            record = decode_stats(value)
        except SchemaError as e:
            log.warning("skipping unusable statistics checkpoint of %s: %s", stream, e)
            continue
        if f"{record.checkpoint.exchange.name}:{record.checkpoint.symbol}" != stream:
            log.warning("skipping statistics checkpoint keyed %s of another stream", stream)
            continue
        out[stream] = record
    return out


@dataclass
class Resume:
    """Where the trades topic resumes after checkpoints were restored."""

    starts: dict[int, int] = field(default_factory=dict)
    """Trades partition -> lowest checkpoint offset of its streams."""
    full: set[int] = field(default_factory=set)
    """Trades partitions with an unusable checkpoint: read over the whole window."""
    covered: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Stream -> (trades partition, offset): its trades below the offset are in its state."""

    def skip(self, stream: str, partition: int, offset: int) -> bool:
        """True for a trade the stream's restored state already holds."""
        c = self.covered.get(stream)
        if c is None or c[0] != partition:
            return False
        if offset < c[1]:
            return True
        del self.covered[stream]  # past it: the stream's later records are all new
        return False


def restore(
    market: Market,
    records: dict[str, StatsRecord],
    partitions: set[int] | None,
    max_streams: int | None = None,
) -> Resume:
    """Restore the checkpoints (of ``partitions`` only, when given) into ``market``;
    no new stream past ``max_streams`` (its trades are refused live as well)."""
    resume = Resume()
    for stream, record in records.items():
        p = record.trades_partition
        if partitions is not None and p not in partitions:
            continue
        new = market.state(stream) is None
        if new and max_streams is not None and market.stream_count() >= max_streams:
            log.warning("statistics checkpoint of %s not restored: max_streams", stream)
            continue
        try:
            market.restore_stats(record.checkpoint)
        except CoreError as e:
            log.warning("statistics checkpoint of %s not restored: %s", stream, e)
            resume.full.add(p)
            continue
        resume.covered[stream] = (p, record.trades_offset)
        resume.starts[p] = min(resume.starts.get(p, record.trades_offset), record.trades_offset)
    return resume


class StatsCheckpointer:
    """Writes the rounds of checkpoints: one per trades partition per ``every_ms``."""

    def __init__(
        self,
        market: Market,
        cfg: KafkaConfig,
        sink: RecordSink,
        stats_partitions: int,
        every_ms: int,
        clock: Callable[[], int],
    ) -> None:
        self.market = market
        self.topic = cfg.stats_topic
        self.sink = sink
        self.stats_partitions = stats_partitions
        self.every_ns = every_ms * 1_000_000
        self.clock = clock
        self.next_offset: dict[int, int] = {}
        """Trades partition -> offset after the last record consumed from it."""
        self.dirty: set[int] = set()
        """Trades partitions with records consumed since their last round."""
        self.last_round_ns: dict[int, int] = {}
        self.written: set[str] = set()
        """Streams that have a checkpoint on the topic (restored or written)."""
        self.started_ns = clock()
        self.records_written = 0

    def consumed(self, partition: int, offset: int) -> None:
        """Note a record of the trades topic as handled (applied, skipped or dead-lettered)."""
        self.next_offset[partition] = offset + 1
        self.dirty.add(partition)

    def maybe_write(self, streams_of: Callable[[int], list[str]]) -> None:
        """Write the most overdue round, if one is due: one per call (a consumed batch),
        so the partitions' rounds spread out instead of stalling the loop together."""
        now = self.clock()
        last, start = self.last_round_ns, self.started_ns
        p = min(self.dirty, key=lambda p: (last.get(p, start), p))
        if now - last.get(p, start) >= self.every_ns:
            self.write_round(p, streams_of(p), now)

    def flush(self, streams_of: Callable[[int], list[str]]) -> None:
        """Write a round for every partition with news (graceful shutdown)."""
        now = self.clock()
        for p in sorted(self.dirty):
            self.write_round(p, streams_of(p), now)

    def write_round(self, partition: int, streams: list[str], now_ns: int) -> None:
        offset = self.next_offset.get(partition)
        self.dirty.discard(partition)
        self.last_round_ns[partition] = now_ns
        if offset is None:
            return
        target = partition % self.stats_partitions
        # streams without a checkpoint first: see the module docstring
        for stream in sorted(streams, key=lambda s: (s in self.written, s)):
            cp = self.market.stats_checkpoint(stream, copy=False)  # encoded right away
            if cp is None:
                continue
            value = encode_stats(cp, partition, offset, now_ns)
            self.sink.send(self.topic, stream, value, partition=target)
            self.written.add(stream)
            self.records_written += 1
