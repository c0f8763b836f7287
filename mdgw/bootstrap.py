"""Bootstrap of a consuming process: compacted snapshots -> Market -> consumer assignment.

The gateway and the REST service start the same way, so they share this function:

1. read the compacted snapshot topic to its end and apply every stream's latest
   full book (in chunks, yielding to the event loop, so a process that already
   serves HTTP stays responsive while thousands of books load);
2. assign every book partition at the offset its snapshots resume from (the
   beginning for partitions without a snapshot);
3. assign every trades partition at the first record of the statistics window
   (``offsets_for_times(now - window)``), or at its end when nothing is that new;
4. note where each book partition ends now: the process is caught up (and may
   say it is ready) once it has applied the records up to there (:class:`CatchUp`).

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
from mdgw.kafka.admin import partition_count
from mdgw.kafka.source import Record, SnapshotRecord, ThreadedConsumer, load_snapshots
from mdgw.materializer import Materializer

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
    """(book topic, partition) -> its end offset at start-up, where there is a tail to read."""


class CatchUp:
    """Whether the book partitions have been read up to where they ended at start-up."""

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
    consumer: ThreadedConsumer, topic: str, partitions: int, since_ms: int
) -> Assignment:
    """First offset of each trades partition at or after ``since_ms`` (else its end)."""
    found = consumer.offsets_for_times(topic, list(range(partitions)), since_ms)
    out: Assignment = []
    for part, offset in sorted(found.items()):
        if offset < 0:  # nothing that new: start at the end, not at the beginning
            offset = consumer.watermarks(topic, part)[1]
        out.append((topic, part, offset))
    return out


def book_ends(
    consumer: ThreadedConsumer, book_topic: str, assignment: Assignment
) -> dict[tuple[str, int], int]:
    """End offset now of each assigned book partition that has records past its start."""
    ends: dict[tuple[str, int], int] = {}
    for topic, part, start in assignment:
        if topic == book_topic:
            low, high = consumer.watermarks(topic, part)
            if high > max(start, low):
                ends[(topic, part)] = high
    return ends


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
    snapshots = await asyncio.to_thread(load_snapshots, cfg)
    book_parts = await asyncio.to_thread(partition_count, cfg, cfg.book_topic)
    marks = {  # a snapshot's book_offset outside these is poison (Materializer.load_snapshots)
        p: await asyncio.to_thread(consumer.watermarks, cfg.book_topic, p)
        for p in range(book_parts)
    }
    resume = await apply_snapshots(materializer, snapshots, watermarks=marks)
    trade_parts = await asyncio.to_thread(partition_count, cfg, cfg.trades_topic)
    since_ms = int(time.time() * 1000) - trades_window_ms
    assignment: Assignment = [(cfg.book_topic, p, resume.get(p, -2)) for p in range(book_parts)]
    assignment += await asyncio.to_thread(
        trade_start_offsets, consumer, cfg.trades_topic, trade_parts, since_ms
    )
    consumer.assign(assignment)
    catch_up = await asyncio.to_thread(book_ends, consumer, cfg.book_topic, assignment)
    result = BootstrapResult(
        snapshots=len(snapshots),
        loaded=len(materializer.positions),
        assignment=assignment,
        seconds=time.perf_counter() - t0,
        catch_up=catch_up,
    )
    log.info(
        "bootstrap: %d snapshots (%d streams loaded) in %.3fs",
        result.snapshots,
        result.loaded,
        result.seconds,
    )
    return result
