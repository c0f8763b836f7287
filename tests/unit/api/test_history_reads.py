"""?at= reads: cache by (stream, ms), single flight, at most N at once then 503 Retry-After."""

from __future__ import annotations

import asyncio
import threading

import pytest

from api.history_reads import SETTLE_MS, HistoryReads
from api.state import StateStore
from core.book import OrderBook
from core.types import Exchange
from mdgw.history import HistoryError

NOW_NS = 1_800_000_000_000_000_000
OLD = NOW_NS - 3600 * 10**9


class SlowHistory:
    """A blocking read that waits until released; counts what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.go = threading.Event()

    def __call__(self, stream: str, at_ns: int) -> OrderBook:
        self.asked.append((stream, at_ns))
        self.go.wait(5)
        return OrderBook(Exchange.KRAKEN, "BTC-USD")


def reads(history: SlowHistory, n: int = 2) -> HistoryReads:
    return HistoryReads(history, max_reads=n, cache_entries=2, clock=lambda: NOW_NS)


async def test_same_stream_and_ms_is_read_once() -> None:
    h = SlowHistory()
    r = reads(h)
    first = asyncio.gather(*(r.book_at("KRAKEN:BTC-USD", OLD + i) for i in range(5)))
    await asyncio.sleep(0.05)
    h.go.set()
    books = await first
    assert all(b is books[0] for b in books)
    assert await r.book_at("KRAKEN:BTC-USD", OLD + 999_999) is books[0]  # same ms: cached
    assert h.asked == [("KRAKEN:BTC-USD", OLD // 1_000_000 * 1_000_000)]
    r.close()


async def test_beyond_max_reads_is_busy_and_the_cache_is_bounded() -> None:
    h = SlowHistory()
    r = reads(h, n=2)
    running = [asyncio.ensure_future(r.book_at(f"KRAKEN:S{i}-USD", OLD)) for i in range(2)]
    await asyncio.sleep(0.05)
    with pytest.raises(HistoryError) as e:
        await r.book_at("KRAKEN:S9-USD", OLD)
    assert e.value.code == "busy"
    h.go.set()
    await asyncio.gather(*running)
    for i in range(3, 6):
        await r.book_at(f"KRAKEN:S{i}-USD", OLD)
    assert len(r._cache) == 2 and not r._inflight
    r.close()


async def test_recent_instants_are_not_cached() -> None:
    h = SlowHistory()
    h.go.set()
    r = reads(h)
    recent = NOW_NS - (SETTLE_MS - 1000) * 1_000_000
    await r.book_at("KRAKEN:BTC-USD", recent)
    await r.book_at("KRAKEN:BTC-USD", recent)
    assert len(h.asked) == 2
    r.close()


class BusyStore(StateStore):
    async def book_at(self, stream: str, at_ns: int) -> OrderBook:
        raise HistoryError("busy", "too many history reads at once; retry shortly")


def test_rest_answers_503_with_retry_after_when_busy(make_client, market) -> None:
    c = make_client(state=BusyStore(market))
    r = c.get("/api/v1/orderbook/BINANCE:BTC-USDT?at=1000000000")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json()["error"].startswith("Too many history reads")
