"""Bootstrap of a consuming process: compacted snapshots -> Market -> consumer assignment.

The gateway and the REST service start the same way, so they share this function:

1. read the compacted snapshot topic to its end and apply every stream's latest
   full book (in chunks, yielding to the event loop, so a process that already
   serves HTTP stays responsive while thousands of books load);
2. assign every book partition at the offset its snapshots resume from (the
   beginning for partitions without a snapshot);
3. restore the statistics checkpoints (:mod:`mdgw.stats_checkpoints`) and assign
   every trades partition where they leave off; a partition without one starts at
   the first record of the statistics window (``offsets_for_times(now - window)``),
   or at its end when nothing is that new;
4. note where each book and trades partition ends now: the process is caught up
   (and may say it is ready) once it has applied the records up to there
   (:class:`CatchUp`), so its 24 h statistics are complete when it is ready.

The caller starts the consumer afterwards (``consumer.start(loop, on_batch)``)
and passes every batch to ``CatchUp.observe``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice

from mdgw.config import KafkaConfig
from mdgw.kafka.admin import TopicAdminError, partition_count
from mdgw.kafka.source import Record, SnapshotRecord, ThreadedConsumer, load_snapshots
from mdgw.materializer import Materializer
from mdgw.stats_checkpoints import Resume, load_stats

log = logging.getLogger(__name__)

TRADES_WINDOW_MS = 24 * 3600 * 1000
"""How far back trades are re-read at start: the rolling statistics window."""
CHUNK = 64
"""Snapshots applied between two yields to the event loop."""

Assignment = list[tuple[str, int, int]]
"""(topic, partition, start offset) as ``ThreadedConsumer.assign`` takes it."""


@dataclass(frozen=True)
class BootstrapResult:
    """What a bootstrap loaded and where consumption starts."""

    snapshots: int
    """Snapshot records read from the compacted topic (one per stream)."""
    loaded: int
    """Streams whose snapshot was applied (unusable ones are skipped and logged)."""
    assignment: Assignment
    seconds: float
    """Wall time of the whole bootstrap."""
    catch_up: dict[tuple[str, int], int] = field(default_factory=dict)
    """(topic, partition) -> its end offset at start-up, where there is a tail to read."""
    stats_restored: int = 0
    """Streams whose statistics came from a checkpoint."""
    trades_to_read: int = 0
    """Records of the trades topic between the assigned offsets and the ends."""


class CatchUp:
    """Whether the book and trades partitions have been read up to where they ended at start."""

    def __init__(self, targets: dict[tuple[str, int], int]) -> None:
        self._left = dict(targets)

    @property
    def done(self) -> bool:
        return not self._left

    def observe(self, records: Iterable[Record]) -> bool:
        """Account a consumed batch; True once every partition reached its target."""
        left = self._left
        if left:
            for rec in records:
                key = (rec.topic, rec.partition)
                end = left.get(key)
                if end is not None and rec.offset + 1 >= end:
                    del left[key]
        return not left


async def apply_snapshots(
    materializer: Materializer,
    snapshots: dict[str, SnapshotRecord],
    chunk: int = CHUNK,
    watermarks: dict[int, tuple[int, int]] | None = None,
) -> dict[int, int]:
    """Apply snapshots in chunks on the loop; returns {book partition: resume offset}."""
    resume: dict[int, int] = {}
    items = iter(snapshots.items())
    while part := dict(islice(items, chunk)):
        for p, offset in materializer.load_snapshots(part, watermarks=watermarks).items():
            resume[p] = min(resume.get(p, offset), offset)
        await asyncio.sleep(0)
    return resume


def trade_start_offsets(
    consumer: ThreadedConsumer,
    topic: str,
    partitions: int,
    since_ms: int,
    resume: Resume | None = None,
) -> Assignment:
    """Where each trades partition starts: after its statistics checkpoints when it has
    usable ones, never before the first offset at or after ``since_ms`` (else its end)."""
    found = consumer.offsets_for_times(topic, list(range(partitions)), since_ms)
    out: Assignment = []
    for part, offset in sorted(found.items()):
        if offset < 0:  # nothing that new: start at the end, not at the beginning
            offset = consumer.watermarks(topic, part)[1]
        if resume is not None and part in resume.starts and part not in resume.full:
            offset = max(offset, resume.starts[part])
        out.append((topic, part, offset))
    return out


def tail_ends(consumer: ThreadedConsumer, assignment: Assignment) -> dict[tuple[str, int], int]:
    """End offset now of each assigned partition that has records past its start."""
    ends: dict[tuple[str, int], int] = {}
    for topic, part, start in assignment:
        low, high = consumer.watermarks(topic, part)
        if high > max(start, low):
            ends[(topic, part)] = high
    return ends


def partitions_or_zero(cfg: KafkaConfig, topic: str) -> int:
    """Partitions of ``topic``; 0 when it does not exist (an older deployment)."""
    try:
        return partition_count(cfg, topic)
    except TopicAdminError:
        return 0


async def bootstrap(
    cfg: KafkaConfig,
    materializer: Materializer,
    consumer: ThreadedConsumer,
    *,
    trades_window_ms: int = TRADES_WINDOW_MS,
) -> BootstrapResult:
    """Load the compacted snapshots into the materializer's Market and assign the consumer.

    Raises the Kafka client's errors (``KafkaException``, ``TopicAdminError``,
    ``TimeoutError``) when the broker cannot be read; a caller that wants to wait
    for the broker retries, which is safe: re-applying a snapshot is a no-op.
    """
    t0 = time.perf_counter()
    # independent round trips to the broker: in parallel, a restart waits for the slowest
    snapshots, stats, stats_parts, book_parts, trade_parts = await asyncio.gather(
        asyncio.to_thread(load_snapshots, cfg),
        asyncio.to_thread(load_stats, cfg),
        asyncio.to_thread(partitions_or_zero, cfg, cfg.stats_topic),
        asyncio.to_thread(partition_count, cfg, cfg.book_topic),
        asyncio.to_thread(partition_count, cfg, cfg.trades_topic),
    )
    marks = {  # a snapshot's book_offset outside these is poison (Materializer.load_snapshots)
        p: await asyncio.to_thread(consumer.watermarks, cfg.book_topic, p)
        for p in range(book_parts)
    }
    resume = await apply_snapshots(materializer, snapshots, watermarks=marks)
    stats_resume = materializer.load_stats(stats)
    materializer.enable_stats_checkpoints(stats_parts)
    since_ms = int(time.time() * 1000) - trades_window_ms
    assignment: Assignment = [(cfg.book_topic, p, resume.get(p, -2)) for p in range(book_parts)]
    assignment += await asyncio.to_thread(
        trade_start_offsets, consumer, cfg.trades_topic, trade_parts, since_ms, stats_resume
    )
    consumer.assign(assignment)
    catch_up = await asyncio.to_thread(tail_ends, consumer, assignment)
    starts = {p: o for t, p, o in assignment if t == cfg.trades_topic}
    result = BootstrapResult(
        snapshots=len(snapshots),
        loaded=len(materializer.positions),
        assignment=assignment,
        seconds=time.perf_counter() - t0,
        catch_up=catch_up,
        stats_restored=len(stats_resume.covered),
        trades_to_read=sum(
            end - starts[p] for (t, p), end in catch_up.items() if t == cfg.trades_topic
        ),
    )
    log.info(
        "bootstrap: %d snapshots (%d streams loaded), %d statistics checkpoints, "
        "%d trades to read, in %.3fs",
        result.snapshots,
        result.loaded,
        result.stats_restored,
        result.trades_to_read,
        result.seconds,
    )
    return result
