"""Kafka records -> the pure Market: bootstrap from snapshots, then apply the tail.

Shared by the gateway and the REST service, so there is one way a book is built.
Every record is decoded and validated; anything refused goes to the dead-letter
topic with the contract's headers and a counter, and the loop goes on. Re-reads
after a restart (offsets at or below the last applied one) are skipped silently;
a sequence going backwards at a new offset is poison and is dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from core.book import ApplyResult
from core.errors import CoreError
from core.market import Market
from core.plausible import SequenceGuard
from core.types import BookUpdate, Trade
from mdgw import metrics, tracing
from mdgw.config import KafkaConfig
from mdgw.kafka import headers as H
from mdgw.kafka.sink import RecordSink
from mdgw.kafka.source import Record, SnapshotRecord
from mdgw.stats_checkpoints import Resume, StatsCheckpointer, restore
from schemas import codec
from schemas.errors import SchemaError
from schemas.stats_codec import StatsRecord

R = TypeVar("R", BookUpdate, Trade)

log = logging.getLogger(__name__)

BookHook = Callable[[str, ApplyResult, "str | None"], None]
TradeHook = Callable[[Trade], None]


@dataclass
class StreamPosition:
    partition: int
    offset: int
    """Offset of the last book record applied (or covered by the loaded snapshot)."""
    updates_since_snapshot: int = 0
    last_snapshot_ns: int = 0
    last_checkpoint_ns: int = 0


@dataclass
class Counters:
    consumed: int = 0
    applied: int = 0
    dlq: int = 0
    gaps: int = 0
    rereads: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Materializer:
    """Applies consumed records to a Market and tells hooks what changed."""

    def __init__(
        self,
        market: Market,
        cfg: KafkaConfig,
        *,
        dlq: RecordSink | None = None,
        on_book: BookHook | None = None,
        on_trade: TradeHook | None = None,
        snapshot_sink: RecordSink | None = None,
        snapshot_every_updates: int = 1000,
        snapshot_every_ms: int = 5000,
        checkpoint_every_ms: int = 60_000,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.market = market
        self.cfg = cfg
        self.dlq = dlq
        self.on_book = on_book
        self.on_trade = on_trade
        self.snapshot_sink = snapshot_sink
        self.snapshot_every_updates = snapshot_every_updates
        self.snapshot_every_ns = snapshot_every_ms * 1_000_000
        self.checkpoint_every_ns = checkpoint_every_ms * 1_000_000
        self.clock = clock
        self.positions: dict[str, StreamPosition] = {}
        self.owned_partitions: set[int] | None = None
        """Sharded mode: book partitions this process owns (records of others are skipped)."""
        self.trade_partitions: dict[str, int] = {}
        """Trades-topic partition of each stream (time-travel replays read it)."""
        self.counters = Counters()
        self._consumed_books = metrics.RECORDS_CONSUMED.labels(cfg.book_topic)
        self._consumed_trades = metrics.RECORDS_CONSUMED.labels(cfg.trades_topic)
        """Looked up once: ``labels()`` per call was 1.2 % of a live gateway's loop."""
        self.last_ingest_ns = 0
        """Producer ``ingest_ns`` of the last book record decoded (the Kafka hop metric)."""
        self.guard = SequenceGuard(cfg.max_sequence_jump)
        """Refuses implausible sequence jumps (docs/security.md: poisoned input)."""
        self.resume = Resume()
        """Restored statistics checkpoints: which trades to skip as already counted."""
        self.stats_writer: StatsCheckpointer | None = None
        """Set by :meth:`enable_stats_checkpoints` in the process that writes snapshots."""

    # ---- bootstrap -----------------------------------------------------------------

    def load_snapshots(
        self,
        snapshots: dict[str, SnapshotRecord],
        partitions: set[int] | None = None,
        watermarks: dict[int, tuple[int, int]] | None = None,
    ) -> dict[int, int]:
        """Apply the compacted snapshots; returns {book partition: offset to resume at}.

        A snapshot whose ``book_offset`` lies outside its partition's ``watermarks``
        (low, high) is skipped: resuming there would skip every later record of the
        stream as a re-read. The stream then waits for a snapshot on the book topic.
        """
        resume: dict[int, int] = {}
        now = self.clock()
        for stream, snap in snapshots.items():
            if snap.book_partition is None or snap.book_offset is None:
                continue
            if partitions is not None and snap.book_partition not in partitions:
                continue
            marks = (watermarks or {}).get(snap.book_partition)
            if watermarks is not None and (
                marks is None or not marks[0] <= snap.book_offset <= marks[1]
            ):
                self._count("bad_snapshot_offset")
                log.warning(
                    "skipping snapshot of %s: book offset %d outside partition %d's %s",
                    stream,
                    snap.book_offset,
                    snap.book_partition,
                    f"watermarks {marks}" if marks else "range (no such partition)",
                )
                continue
            if stream not in self.positions and len(self.positions) >= self.cfg.max_streams:
                self._count("too_many_streams")
                continue
            try:
                update = codec.decode(snap.value)
                if not isinstance(update, BookUpdate) or update.stream != stream:
                    raise SchemaError(f"snapshot record for {stream} is not its book")
                update.is_snapshot = True
                self.market.apply_book(update, now)
            except (SchemaError, CoreError) as e:
                log.warning("skipping unusable snapshot of %s: %s", stream, e)
                continue
            self.positions[stream] = StreamPosition(
                snap.book_partition, snap.book_offset - 1, 0, now, now
            )
            p = snap.book_partition
            resume[p] = min(resume.get(p, snap.book_offset), snap.book_offset)
        return resume

    def load_stats(
        self, records: dict[str, StatsRecord], partitions: set[int] | None = None
    ) -> Resume:
        """Restore statistics checkpoints (of trades ``partitions`` only, when given)."""
        resume = restore(self.market, records, partitions, self.cfg.max_streams)
        self.resume.covered.update(resume.covered)
        for stream, (p, _offset) in resume.covered.items():
            self.trade_partitions[stream] = p
        if self.stats_writer is not None:
            self.stats_writer.written |= set(resume.covered)
        return resume

    def enable_stats_checkpoints(self, stats_partitions: int) -> None:
        """Write statistics checkpoints (needs ``snapshot_sink``), every checkpoint interval."""
        if self.snapshot_sink is None or stats_partitions <= 0 or self.stats_writer is not None:
            return
        self.stats_writer = StatsCheckpointer(
            self.market,
            self.cfg,
            self.snapshot_sink,
            stats_partitions,
            self.checkpoint_every_ns // 1_000_000,
            self.clock,
        )
        self.stats_writer.written |= set(self.resume.covered)

    def streams_of_trades_partition(self, partition: int) -> list[str]:
        return [s for s, p in self.trade_partitions.items() if p == partition]

    # ---- the tail ------------------------------------------------------------------

    def handle(self, records: list[Record]) -> None:
        # per record only what each one needs: this runs for every record consumed (live
        # in hand-offs of mdgw.kafka.source.CHUNK), so the metrics are counted per call
        book_topic = self.cfg.book_topic
        trades_topic = self.cfg.trades_topic
        self.counters.consumed += len(records)
        owned = self.owned_partitions  # None: every partition (not sharded)
        writer = self.stats_writer
        traced = tracing.ENABLED  # tracing hook
        books = trades = 0
        others: dict[str, int] = {}
        for rec in records:
            span = tracing.start_process(rec) if traced else None  # tracing hook
            topic = rec.topic
            # a record of a partition just handed to another gateway is counted, not applied
            if topic == book_topic:
                books += 1
                if owned is None or rec.partition in owned:
                    self._book_record(rec)
            elif topic == trades_topic:
                trades += 1
                if owned is None or rec.partition in owned:
                    self._trade_record(rec)
                    if writer is not None:
                        writer.consumed(rec.partition, rec.offset)
            else:
                others[topic] = others.get(topic, 0) + 1
            if span is not None:  # tracing hook
                tracing.end_process(span)
        if books:
            self._consumed_books.inc(books)
        if trades:
            self._consumed_trades.inc(trades)
        for topic, n in others.items():
            metrics.RECORDS_CONSUMED.labels(topic).inc(n)
        if writer is not None and writer.dirty:
            writer.maybe_write(self.streams_of_trades_partition)

    def _decoded(self, rec: Record, kind: type[R], topic: str) -> tuple[R, str] | None:
        """The record's value if it is a valid ``kind`` keyed by its own stream, and that
        stream (built once: every step after needs it); else it is dead-lettered (with
        why) and None is returned."""
        try:
            value = codec.decode(rec.value or b"")
        except SchemaError as e:
            self.dead_letter(rec, e.reason, str(e))
            return None
        if not isinstance(value, kind):
            self.dead_letter(rec, "wrong_type", f"{type(value).__name__} on the {topic} topic")
            return None
        key = (rec.key or b"").decode(errors="replace")
        stream = value.stream
        if key != stream:
            self.dead_letter(rec, "key_mismatch", f"key {key!r} but record is {stream}")
            return None
        return value, stream

    def _book_record(self, rec: Record) -> None:
        decoded = self._decoded(rec, BookUpdate, "book")
        if decoded is None:
            return
        update, stream = decoded
        self.last_ingest_ns = update.ingest_ns
        pos = self.positions.get(stream)
        if pos is not None and rec.partition == pos.partition and rec.offset <= pos.offset:
            self.counters.rereads += 1
            return
        if pos is None and self._new_stream_over_cap(stream, rec):  # a position: known
            return
        jump = self.guard.refusal(self.market.book(stream), update)
        if jump is not None:
            self.dead_letter(rec, "sequence_jump", jump)
            return
        now = self.clock()
        try:
            event = self.market.apply_book(update, now)
        except CoreError as e:
            self.dead_letter(rec, "invalid", str(e))
            return
        result = event.result
        if result is ApplyResult.DUPLICATE:
            self.dead_letter(
                rec,
                "sequence_backwards",
                f"{stream} sequence {update.sequence} <= {event.book.sequence}",
            )
            return
        if pos is None:
            pos = self.positions[stream] = StreamPosition(rec.partition, rec.offset)
        pos.partition, pos.offset = rec.partition, rec.offset
        if result is ApplyResult.GAP:
            self.counters.gaps += 1
            metrics.SEQUENCE_GAPS.inc()
            log.warning(
                "sequence gap on %s at %d: stale until the next snapshot", stream, update.sequence
            )
        elif result is ApplyResult.APPLIED or result is ApplyResult.SNAPSHOT:
            self.counters.applied += 1
            pos.updates_since_snapshot += 1
            if self.snapshot_sink is not None:
                self._maybe_snapshot(stream, pos, now)
        if self.on_book is not None:
            agg = event.aggregated
            self.on_book(stream, result, agg.symbol if agg is not None else None)

    def _trade_record(self, rec: Record) -> None:
        covered = self.resume.covered
        if covered and rec.key is not None:
            stream = rec.key.decode(errors="replace")
            if self.resume.skip(stream, rec.partition, rec.offset):
                self.counters.rereads += 1
                return
        decoded = self._decoded(rec, Trade, "trades")
        if decoded is None:
            return
        trade, stream = decoded
        if self._new_stream_over_cap(stream, rec):
            return
        self.trade_partitions[stream] = rec.partition
        if self.market.apply_trade(trade, self.clock()):
            self.counters.applied += 1
            if self.on_trade is not None:
                self.on_trade(trade)

    def _new_stream_over_cap(self, stream: str, rec: Record) -> bool:
        """A record of a stream not yet known when ``max_streams`` are: dead-lettered."""
        market = self.market
        if market.stream_count() < self.cfg.max_streams or market.state(stream) is not None:
            return False
        self.dead_letter(rec, "too_many_streams", f"{stream}: over {self.cfg.max_streams}")
        return True

    def _count(self, reason: str) -> None:
        c = self.counters
        c.by_reason[reason] = c.by_reason.get(reason, 0) + 1

    # ---- outputs -------------------------------------------------------------------

    def dead_letter(self, rec: Record, reason: str, detail: str) -> None:
        c = self.counters
        c.dlq += 1
        c.by_reason[reason] = c.by_reason.get(reason, 0) + 1
        metrics.DLQ_RECORDS.labels(reason).inc()
        log.warning("dead-letter %s[%d]@%d: %s", rec.topic, rec.partition, rec.offset, detail)
        if self.dlq is None:
            return
        hdrs = [
            (H.DLQ_ERROR, f"{reason}: {detail}"[:1000].encode()),
            (H.DLQ_SOURCE_TOPIC, rec.topic.encode()),
            (H.DLQ_SOURCE_PARTITION, str(rec.partition).encode()),
            (H.DLQ_SOURCE_OFFSET, str(rec.offset).encode()),
        ]
        value = rec.value
        if value is not None and len(value) > 4_000_000:
            value = value[:4_000_000]  # keep the DLQ writable; the error says it was cut
            hdrs.append(("truncated", b"true"))
        self.dlq.send(self.cfg.dlq_topic, rec.key, value, hdrs)

    def _maybe_snapshot(self, stream: str, pos: StreamPosition, now: int) -> None:
        due = (
            pos.updates_since_snapshot >= self.snapshot_every_updates
            or now - pos.last_snapshot_ns >= self.snapshot_every_ns
        )
        checkpoint_due = now - pos.last_checkpoint_ns >= self.checkpoint_every_ns
        if due or checkpoint_due:
            self.write_snapshot(stream, pos, checkpoint=checkpoint_due)

    def write_snapshot(self, stream: str, pos: StreamPosition, *, checkpoint: bool) -> None:
        """Write the full book to the compacted topic (and the time-indexed checkpoints)."""
        book = self.market.book(stream)
        if book is None or book.stale or self.snapshot_sink is None:
            return
        value = codec.encode(book.snapshot(0))
        hdrs = [
            (H.BOOK_PARTITION, str(pos.partition).encode()),
            (H.BOOK_OFFSET, str(pos.offset + 1).encode()),
        ]
        ts_ms = (book.ingest_ns or self.clock()) // 1_000_000
        self.snapshot_sink.send(self.cfg.snapshots_topic, stream, value, hdrs)
        if checkpoint:
            self.snapshot_sink.send(
                self.cfg.checkpoints_topic, stream, value, hdrs, timestamp_ms=ts_ms
            )
            pos.last_checkpoint_ns = self.clock()
        pos.updates_since_snapshot = 0
        pos.last_snapshot_ns = self.clock()
        metrics.SNAPSHOTS_WRITTEN.inc()

    def flush_snapshots(self) -> None:
        """Write every live book now (graceful shutdown)."""
        for stream, pos in list(self.positions.items()):
            self.write_snapshot(stream, pos, checkpoint=False)
        if self.stats_writer is not None:
            self.stats_writer.flush(self.streams_of_trades_partition)
