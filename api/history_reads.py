"""``?at=`` reads of Kafka's history for the REST service: cached, single-flight, bounded.

Rebuilding a past book costs two Kafka consumers and up to a checkpoint interval
of records, so: answers are cached by (stream, instant in ms) (a past instant's
book never changes; instants in the last ``SETTLE_MS`` are not cached, records
for them may still arrive), identical requests in flight share one read, and at
most ``max_reads`` reads run at once, on a pool of that many threads; beyond,
:class:`mdgw.history.HistoryError` ``busy`` (the route answers 503 with
``Retry-After``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from core.book import OrderBook
from mdgw import metrics
from mdgw.history import HistoryError

SETTLE_MS = 10_000
"""Instants younger than this are read, never cached."""

Key = tuple[str, int]


class HistoryReads:
    """Serves ``read(stream, at_ns)`` (blocking) with a cache and a concurrency cap."""

    def __init__(
        self,
        read: Callable[[str, int], OrderBook],
        max_reads: int,
        cache_entries: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.read = read
        self.max_reads = max_reads
        self.cache_entries = cache_entries
        self.clock = clock
        self.pool = ThreadPoolExecutor(max(1, max_reads), thread_name_prefix="api-history")
        self._cache: OrderedDict[Key, OrderBook] = OrderedDict()
        self._inflight: dict[Key, asyncio.Future[OrderBook]] = {}
        self.reads = 0
        """Reads of Kafka started (cache misses that were admitted)."""

    async def book_at(self, stream: str, at_ns: int) -> OrderBook:
        key = (stream, at_ns // 1_000_000)
        book = self._cache.get(key)
        if book is not None:
            self._cache.move_to_end(key)
            return book
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        if len(self._inflight) >= self.max_reads:
            metrics.RATE_LIMITED.labels("api_history").inc()
            raise HistoryError("busy", "too many history reads at once; retry shortly")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, self.read, stream, key[1] * 1_000_000)
        self._inflight[key] = future
        self.reads += 1
        try:
            book = await asyncio.shield(future)  # a client going away does not cancel it
        finally:
            if future.done():
                self._inflight.pop(key, None)
            else:
                future.add_done_callback(lambda _: self._inflight.pop(key, None))
        if key[1] < self.clock() // 1_000_000 - SETTLE_MS:
            self._remember(key, book)
        return book

    def _remember(self, key: Key, book: OrderBook) -> None:
        if self.cache_entries <= 0:
            return
        self._cache[key] = book
        while len(self._cache) > self.cache_entries:
            self._cache.popitem(last=False)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
