"""Sharded mode: one consumer group splits the partitions between gateway processes.

Used when the feed outgrows one process. On assignment the new owner loads the
compacted snapshots of its partitions and resumes deltas where they end; on
revocation it writes a last snapshot of each stream it gives up (so the next owner
starts from it), drops those books and tells their subscribers ``status`` ``stale``.
Clients must connect to the process that owns their streams (route by stream in the
load balancer, or ask each shard's ``/health``, which lists its streams).

The callbacks run on the consumer thread inside ``poll``; the work on books runs on
the event loop, and the thread waits for it, so nothing else touches them meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, TopicPartition

from gateway.hub import Hub
from mdgw.bootstrap import partitions_or_zero
from mdgw.config import KafkaConfig
from mdgw.kafka.source import load_snapshots
from mdgw.materializer import Materializer
from mdgw.stats_checkpoints import load_stats

log = logging.getLogger(__name__)

TRADES_WINDOW_MS = 24 * 3600 * 1000


class Shards:
    """Rebalance callbacks that keep the Market equal to the partitions owned."""

    def __init__(
        self,
        kafka: KafkaConfig,
        materializer: Materializer,
        hub: Hub,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.kafka = kafka
        self.mat = materializer
        self.hub = hub
        self.loop = loop
        self.owned: set[int] = set()
        self.assignments = 0

    def _on_loop(self, fn: Any, *args: Any, timeout: float = 60.0) -> Any:
        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    def on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        k = self.kafka
        book_parts = {tp.partition for tp in partitions if tp.topic == k.book_topic}
        snapshots = load_snapshots(k)
        marks = {  # a snapshot's book_offset outside these is poison (Materializer)
            p: consumer.get_watermark_offsets(TopicPartition(k.book_topic, p), timeout=10)
            for p in book_parts
        }
        resume = self._on_loop(self.mat.load_snapshots, snapshots, book_parts, marks)
        trade_parts = {tp.partition for tp in partitions if tp.topic == k.trades_topic}
        stats = self._on_loop(self.mat.load_stats, load_stats(k), trade_parts)
        self._on_loop(self.mat.enable_stats_checkpoints, partitions_or_zero(k, k.stats_topic))
        since_ms = int(time.time() * 1000) - TRADES_WINDOW_MS
        trades = [
            TopicPartition(k.trades_topic, tp.partition, since_ms)
            for tp in partitions
            if tp.topic == k.trades_topic
        ]
        found = {
            tp.partition: tp.offset
            for tp in (consumer.offsets_for_times(trades, timeout=10) if trades else [])
        }
        for tp in partitions:
            if tp.topic == k.book_topic:
                tp.offset = resume.get(tp.partition, OFFSET_BEGINNING)
            else:
                offset = found.get(tp.partition, -1)
                if offset >= 0 and tp.partition in stats.starts and tp.partition not in stats.full:
                    offset = max(offset, stats.starts[tp.partition])  # after its checkpoints
                tp.offset = offset if offset >= 0 else OFFSET_END
        self.owned |= book_parts
        self.mat.owned_partitions = set(self.owned)
        self.assignments += 1
        consumer.assign(partitions)
        log.info("assigned book partitions %s (%d streams loaded)", sorted(book_parts), len(resume))

    def on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        parts = {tp.partition for tp in partitions if tp.topic == self.kafka.book_topic}
        dropped = self._on_loop(self._drop, parts)
        self.owned -= parts
        self.mat.owned_partitions = set(self.owned)
        consumer.unassign()
        log.info("revoked book partitions %s (%d streams handed over)", sorted(parts), dropped)

    def _drop(self, parts: set[int]) -> int:
        streams = [s for s, pos in self.mat.positions.items() if pos.partition in parts]
        for s in streams:
            self.mat.write_snapshot(s, self.mat.positions[s], checkpoint=False)
        if self.mat.stats_writer is not None:  # the next owner starts from these
            self.mat.stats_writer.flush(self.mat.streams_of_trades_partition)
        gone = set(streams)
        self.hub.market.drop_streams(lambda s: s in gone)
        for s in streams:
            self.hub.stream_lost(s, "partition moved to another gateway")
            del self.mat.positions[s]
        return len(streams)
