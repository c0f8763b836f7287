"""The state store: the Market the handlers read, and whether it can be trusted yet.

:class:`StateStore` is the in-memory store (tests, tools): a Market someone else
fills, ready at once. :class:`KafkaStateStore` fills its Market from Kafka the way
the gateway does (:func:`mdgw.bootstrap.bootstrap`: compacted snapshots, then the
tail), in a task started by the app's lifespan, so ``/health`` answers from the
first second while ``/ready`` (and the market-data routes) say 503 until the
snapshots are loaded and the book and trades topics are read up to where they ended.

The API only reads: it writes no snapshots and no dead letters (the gateway's
writer does both), so two processes never duplicate them.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from api.candles import SKEW_NS, read_trades
from api.history_reads import HistoryReads
from core.book import OrderBook
from core.market import Market
from core.types import Trade
from mdgw import metrics
from mdgw.bootstrap import TRADES_WINDOW_MS, BootstrapResult
from mdgw.catchup import CatchUp, bootstrap_with_retry
from mdgw.config import Config
from mdgw.history import HistoryError, book_at
from mdgw.kafka.client import SourceFactory
from mdgw.kafka.source import Record, ThreadedConsumer
from mdgw.materializer import Counters, Materializer

log = logging.getLogger(__name__)

PROBE_INTERVAL = 2.0
"""Seconds between Kafka reachability probes and consumer-lag refreshes."""
RETRY_MAX = 10.0
"""Longest wait between two bootstrap attempts while Kafka cannot be read."""


class StateStore:
    """A Market plus readiness, lag and counters; the in-memory variant is always ready."""

    def __init__(self, market: Market, materializer: Materializer | None = None) -> None:
        self.market = market
        self.materializer = materializer
        self.started = time.monotonic()
        self.bootstrapped = True
        """True once the books of the compacted snapshot topic are loaded."""
        self.caught_up = True
        """True once the book topic's tail, as it stood at start-up, is applied."""
        self.kafka_ok = True
        """Result of the last reachability probe."""
        self.bootstrap_result: BootstrapResult | None = None
        self.lag: dict[tuple[str, int], int] = {}
        """Records behind the high watermark per (topic, partition), refreshed in the background."""
        self.kafka_errors = 0
        self.trades_complete_from_ns = 0
        """Trades with a timestamp from here on are all in the Market's statistics (candles
        older than that are read from the trades topic: api/candles.py)."""

    async def book_at(self, stream: str, at_ns: int) -> OrderBook:
        """The book of ``stream`` at a past instant (time travel); raises HistoryError."""
        raise HistoryError("unsupported", "this API instance keeps no Kafka history")

    async def trades_between(
        self, stream: str, from_ns: int, to_ns: int
    ) -> tuple[list[Trade], int]:
        """A stream's trades with a timestamp in ``[from_ns, to_ns]`` read from Kafka, and
        the records read (the candles' route, api/candles.py); raises HistoryError."""
        raise HistoryError("unsupported", "this API instance keeps no Kafka history")

    def not_ready_reason(self) -> str | None:
        """None when ready; else why not, for the 503 answer."""
        if not self.bootstrapped:
            return "Not ready: loading order books from the snapshot topic"
        if not self.caught_up:
            return "Not ready: catching up with the book topic"
        if not self.kafka_ok:
            return "Not ready: Kafka is unreachable"
        return None

    @property
    def counters(self) -> Counters:
        return self.materializer.counters if self.materializer is not None else Counters()

    def lag_of(self, stream: str) -> int | None:
        """Lag of the book partition a stream lives on; None when not known."""
        mat = self.materializer
        pos = mat.positions.get(stream) if mat is not None else None
        if pos is None or mat is None:
            return None
        return self.lag.get((mat.cfg.book_topic, pos.partition))

    @property
    def bootstrap_seconds(self) -> float | None:
        r = self.bootstrap_result
        return None if r is None else round(r.seconds, 6)

    async def start(self) -> None:
        """Start filling the Market (nothing to do in memory)."""

    async def stop(self) -> None:
        """Stop filling the Market and release clients."""

    @contextlib.asynccontextmanager
    async def lifespan(self, _app: Any) -> AsyncIterator[None]:
        """Litestar lifespan hook: start before serving, stop after the last request."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()


class KafkaStateStore(StateStore):
    """Fills its Market from Kafka: snapshots, then the book and trades topics' tail."""

    def __init__(self, config: Config, *, sources: SourceFactory | None = None) -> None:
        market = Market(trades_per_stream=config.api.trades_per_stream)
        self._materializer = Materializer(market, config.kafka)
        super().__init__(market, self._materializer)
        self.config = config
        self.sources = sources
        """Where Kafka is read (None: the configured cluster; tests pass a MemoryBroker)."""
        self.bootstrapped = self.caught_up = self.kafka_ok = False
        self._catch_up = CatchUp({})
        self.consumer: ThreadedConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        api = config.api
        self.history = HistoryReads(self._read_book_at, api.history_reads, api.history_cache)
        """?at= reads: cached, at most api.history_reads at once."""
        self._trade_reads = 0
        """Candle reads of the trades topic running (at most api.history_reads)."""

    async def book_at(self, stream: str, at_ns: int) -> OrderBook:
        return await self.history.book_at(stream, at_ns)

    async def trades_between(
        self, stream: str, from_ns: int, to_ns: int
    ) -> tuple[list[Trade], int]:
        partition = self._materializer.trade_partitions.get(stream)
        if partition is None:
            return [], 0  # no trade of it in the topic's tail: none in the window either
        if self._trade_reads >= self.config.api.history_reads:
            metrics.RATE_LIMITED.labels("api_history").inc()
            raise HistoryError("busy", "too many history reads at once; retry shortly")
        self._trade_reads += 1
        try:
            loop = asyncio.get_running_loop()
            cfg = self.config.kafka
            return await loop.run_in_executor(
                self.history.pool,
                functools.partial(
                    read_trades, cfg, stream, partition, from_ns, to_ns, sources=self.sources
                ),
            )
        finally:
            self._trade_reads -= 1

    def _read_book_at(self, stream: str, at_ns: int) -> OrderBook:
        """Blocking: the book at ``at_ns`` from the checkpoints and the book topic."""
        pos = self._materializer.positions.get(stream)
        lookback = 2 * self.config.gateway.checkpoint_every_ms + 5_000
        partition = pos.partition if pos is not None else None
        return book_at(self.config.kafka, stream, at_ns, lookback, partition, sources=self.sources)

    async def start(self) -> None:
        self.consumer = ThreadedConsumer(
            self.config.kafka, self.config.api.group_id, sources=self.sources
        )
        self._task = asyncio.create_task(self._run(self.consumer), name="api-state")

    async def stop(self) -> None:
        self.history.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.consumer is not None:
            await asyncio.to_thread(self.consumer.close)
            self.consumer = None

    async def _run(self, consumer: ThreadedConsumer) -> None:
        # The trades read at start begin at ingest time now - window (mdgw.bootstrap), and a
        # restored checkpoint was written before now by a process whose own history began at
        # most a window before it: every trade from here on is in the statistics.
        self.trades_complete_from_ns = time.time_ns() - TRADES_WINDOW_MS * 1_000_000 + SKEW_NS
        result = await bootstrap_with_retry(
            self.config.kafka,
            self._materializer,
            consumer,
            max_wait=RETRY_MAX,
            retry_unexpected=True,
            on_failure=self._bootstrap_failed,
        )
        self.bootstrap_result = result
        self._catch_up = CatchUp(result.catch_up, clock=time.monotonic, started=self.started)
        self.caught_up = self._catch_up.done
        consumer.start(asyncio.get_running_loop(), self._on_batch)
        self.bootstrapped = self.kafka_ok = True
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await self._probe(consumer)
            except Exception:  # the probe must never die and freeze /ready
                log.exception("state probe failed")

    def _bootstrap_failed(self, _error: BaseException) -> None:
        self.kafka_errors += 1  # Kafka may come up after us: bootstrap_with_retry retries

    def _on_batch(self, records: list[Record]) -> None:
        try:
            self._materializer.handle(records)
        except Exception:  # a bug in one batch must not stop the next ones
            log.exception("applying a batch of %d records failed", len(records))
        if self._catch_up.observe(records):
            self.caught_up = True

    async def _probe(self, consumer: ThreadedConsumer) -> None:
        """Kafka reachable? Refresh lag and the gauges the API owns."""
        k = self.config.kafka
        ok = await asyncio.to_thread(consumer.probe, PROBE_INTERVAL)
        if not ok:
            self.kafka_errors += 1
            if self.kafka_ok:
                log.warning("Kafka unreachable: %s", k.bootstrap)
        if ok and not self.kafka_ok:
            log.info("Kafka reachable again")
        self.kafka_ok = ok
        if ok:
            self.lag = await asyncio.to_thread(consumer.lag)
            for (topic, part), n in self.lag.items():
                metrics.CONSUMER_LAG.labels(topic, str(part)).set(n)
        metrics.STALE_STREAMS.set(sum(1 for s in self.market.streams() if _stale(self.market, s)))


def _stale(market: Market, stream: str) -> bool:
    book = market.book(stream)
    return book is None or book.stale
