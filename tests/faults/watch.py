"""A verifying client kept running in the background, with a log of what it saw."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mdgw_client import MarketDataClient

from mdgw.config import KafkaConfig
from producers.simulator import default_streams

STREAMS: list[str] = [s.key for s in default_streams(3)]
"""The nine streams ``mdgw simulate`` publishes by default."""


@dataclass
class Seen:
    """One notable event: anything but a plain verified book message or heartbeat."""

    at: float
    kind: str
    key: str
    data: dict[str, Any]


@dataclass
class ClientWatch:
    """A MarketDataClient consuming in a task; counts and notable events are kept."""

    client: MarketDataClient
    counts: dict[str, int] = field(default_factory=dict)
    notable: list[Seen] = field(default_factory=list)
    last_book_at: dict[str, float] = field(default_factory=dict)
    last_snapshot_at: dict[str, float] = field(default_factory=dict)
    latencies_ns: list[tuple[float, int]] = field(default_factory=list)
    """(monotonic receive time, receive - ingest_ts in ns) of every book message."""
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None

    @classmethod
    async def start(
        cls,
        url: str,
        streams: list[str],
        *,
        depth: int = 20,
        fmt: str = "json",
        reconnect: bool = True,
        max_backoff: float = 0.5,
        **kwargs: Any,
    ) -> ClientWatch:
        client = MarketDataClient(
            url, fmt=fmt, reconnect=reconnect, max_backoff=max_backoff, **kwargs
        )
        await client.connect()
        await client.subscribe("book", streams, depth=depth)
        watch = cls(client)
        watch.task = asyncio.create_task(watch._run())
        return watch

    async def _run(self) -> None:
        try:
            async for ev in self.client.events():
                now = time.monotonic()
                self.counts[ev.kind] = self.counts.get(ev.kind, 0) + 1
                if ev.kind == "book":
                    self.last_book_at[ev.key] = now
                    if ev.data.get("type", "").endswith("_snapshot"):
                        self.last_snapshot_at[ev.key] = now
                    ingest = ev.data.get("ingest_ts") or 0
                    if ingest:
                        self.latencies_ns.append((now, ev.received_ns - ingest))
                elif ev.kind not in ("heartbeat", "subscribed"):
                    self.notable.append(Seen(now, ev.kind, ev.key, ev.data))
        except Exception as e:  # kept for the test to assert on, not swallowed
            self.error = e
            raise

    def all_valid(self, streams: list[str]) -> bool:
        return all((b := self.client.book(s)) is not None and b.valid for s in streams)

    def resynced_since(self, t: float, streams: list[str]) -> bool:
        """Every book got a snapshot after ``t`` and is valid now."""
        return self.all_valid(streams) and all(
            self.last_snapshot_at.get(s, 0.0) > t for s in streams
        )

    def kinds(self, since: float = 0.0) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.notable:
            if s.at >= since:
                key = f"{s.kind}:{s.data.get('status', '')}" if s.kind == "status" else s.kind
                out[key] = out.get(key, 0) + 1
        return out

    async def stop(self) -> None:
        await self.client.close()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


def p99(values: list[int]) -> int:
    if not values:
        return 0
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * 0.99))]


def fresh_topics(bootstrap: str, partitions: int = 3) -> Iterator[KafkaConfig]:
    """Generator for a fixture: uniquely named topics on ``bootstrap``, deleted at the end."""
    from mdgw.kafka.admin import admin_client, create_topics, topic_specs

    prefix = f"f{uuid.uuid4().hex[:10]}"
    base = KafkaConfig()
    cfg = dataclasses.replace(
        base,
        bootstrap=bootstrap,
        client_id=f"fault-{prefix}",
        book_topic=f"{prefix}.{base.book_topic}",
        trades_topic=f"{prefix}.{base.trades_topic}",
        snapshots_topic=f"{prefix}.{base.snapshots_topic}",
        checkpoints_topic=f"{prefix}.{base.checkpoints_topic}",
        stats_topic=f"{prefix}.{base.stats_topic}",
        dlq_topic=f"{prefix}.{base.dlq_topic}",
        partitions=partitions,
    )
    create_topics(cfg)
    yield cfg
    with contextlib.suppress(Exception):
        admin_client(cfg).delete_topics([s.name for s in topic_specs(cfg)], operation_timeout=10)
