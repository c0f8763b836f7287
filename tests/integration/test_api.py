"""The REST service end to end: real Kafka -> compacted snapshots + tail -> HTTP.

Feeds come from the pure simulator model (``producers.simulator``), published with
the project's Publisher; the same records are applied to a local Market, the
truth the API's answers are compared with. Snapshots reach the compacted topic
the way the gateway writes them (a Materializer with a snapshot sink). The API
runs in-process; Kafka is real.
"""

from __future__ import annotations

import asyncio
import dataclasses
import struct
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from api.main import RunningApi, start_api
from core.market import Market
from core.types import BookUpdate
from mdgw.config import Config
from mdgw.kafka.admin import admin_client, create_topics
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import read_to_end
from mdgw.materializer import Materializer
from producers.publisher import Publisher
from producers.simulator import SimulatedMarket, default_streams

pytestmark = [pytest.mark.kafka]

T0 = time.time_ns() - 60 * 1_000_000_000


def contract_checksum(bids: list[list[float]], asks: list[list[float]]) -> int:
    return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks[:10] + bids[:10]))


class Feed:
    """Simulated venues published to Kafka and applied to a local truth Market."""

    def __init__(self, config: Config, symbols_per_exchange: int = 3, levels: int = 60) -> None:
        self.sim = SimulatedMarket(
            default_streams(symbols_per_exchange, seed=3),
            seed=3,
            levels=levels,
            snapshot_every=0,
            trade_ratio=0.3,
        )
        self.sink = KafkaSink(config.kafka)
        self.publisher = Publisher(self.sink, config.kafka)
        self.truth = Market()
        self.t = T0
        self._publish(self.sim.snapshots(self.t))  # every stream starts with a full book

    def run(self, events: int) -> None:
        for _ in range(events):
            self.t += 1_000_000
            self._publish(self.sim.next_events(self.t))
        assert self.publisher.flush(30) == 0

    def _publish(self, records: list[Any]) -> None:
        for rec in records:
            self.publisher.publish(rec)
            if isinstance(rec, BookUpdate):
                self.truth.apply_book(rec, self.t)
            else:
                self.truth.apply_trade(rec, self.t)

    def sequences(self) -> dict[str, int]:
        return {s: b.sequence for s in self.truth.streams() if (b := self.truth.book(s))}


def write_snapshots(config: Config) -> int:
    """Materialize the book topic and write every book to the compacted topic (gateway-style)."""
    sink = KafkaSink(config.kafka)
    mat = Materializer(Market(), config.kafka, snapshot_sink=sink, snapshot_every_updates=10**9)
    mat.handle(list(read_to_end(config.kafka, config.kafka.book_topic)))
    mat.flush_snapshots()
    assert sink.flush(30) == 0
    return len(mat.positions)


@asynccontextmanager
async def running_api(config: Config) -> AsyncIterator[tuple[RunningApi, httpx.AsyncClient]]:
    api = await start_api(config)
    try:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
            yield api, client
    finally:
        await api.stop()


async def until(pred: Any, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await pred():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met in {timeout}s")
        await asyncio.sleep(0.05)


async def sequences(client: httpx.AsyncClient) -> dict[str, int]:
    r = await client.get("/api/v1/symbols")
    if r.status_code != 200:
        return {}
    return {f"{s['exchange']}:{s['symbol']}": s["sequence"] for s in r.json()}


async def caught_up(client: httpx.AsyncClient, expected: dict[str, int]) -> None:
    async def done() -> bool:
        return await sequences(client) == expected

    await until(done, what="API caught up with the feed")


async def test_ready_is_503_until_the_snapshot_topic_can_be_read(config: Config) -> None:
    late = f"{config.kafka.snapshots_topic}.late"
    cfg = dataclasses.replace(config, kafka=dataclasses.replace(config.kafka, snapshots_topic=late))
    try:
        async with running_api(cfg) as (_api, client):
            for _ in range(5):
                r = await client.get("/ready")
                assert r.status_code == 503 and "snapshot topic" in r.json()["error"]
                await asyncio.sleep(0.1)
            assert (await client.get("/health")).json() == {"status": "healthy"}
            assert (await client.get("/api/v1/symbols")).status_code == 503
            await asyncio.to_thread(create_topics, cfg.kafka)  # the topic appears

            async def ready() -> bool:
                return (await client.get("/ready")).status_code == 200

            await until(ready, timeout=20, what="/ready 200")
            assert (await client.get("/api/v1/symbols")).json() == []
    finally:
        admin_client(cfg.kafka).delete_topics([late], operation_timeout=10)


async def test_every_route_over_http_and_a_restart_from_the_compacted_topic(
    config: Config,
) -> None:
    feed = Feed(config)
    await asyncio.to_thread(feed.run, 600)
    loaded = await asyncio.to_thread(write_snapshots, config)
    assert loaded == 9
    await asyncio.to_thread(feed.run, 200)  # a tail after the snapshots
    expected = feed.sequences()

    async with running_api(config) as (_api, client):
        await until(lambda: _ok(client, "/ready"), what="/ready 200")
        await caught_up(client, expected)
        await check_every_route(client, feed.truth)
        metrics = (await client.get("/api/v1/metrics")).json()
        assert metrics["snapshots_loaded"] == 9 and metrics["dlq"] == 0
        first_consumed = metrics["records_consumed"]
        await asyncio.to_thread(feed.run, 100)
        expected = feed.sequences()
        await caught_up(client, expected)

    # Restart: books come back from the compacted topic + the tail, same sequences.
    async with running_api(config) as (_api, client):
        await until(lambda: _ok(client, "/ready"), what="/ready 200 after restart")
        # Ready means caught up with the book topic as it stood at start: no waiting.
        assert await sequences(client) == expected
        metrics = (await client.get("/api/v1/metrics")).json()
        assert metrics["snapshots_loaded"] == 9
        # Only the tail after the snapshot offsets was re-read, not the whole topic.
        assert metrics["records_consumed"] <= first_consumed + 100 * 2
        for stream in expected:
            r = await client.get(f"/api/v1/orderbook/{stream}?depth=50")
            book = feed.truth.book(stream)
            assert book is not None
            assert r.json()["bids"] == [list(lv) for lv in book.bids(50)]
            assert r.json()["asks"] == [list(lv) for lv in book.asks(50)]


async def _ok(client: httpx.AsyncClient, path: str) -> bool:
    return (await client.get(path)).status_code == 200


async def check_every_route(client: httpx.AsyncClient, truth: Market) -> None:
    """Each §6 route over real HTTP, compared with the truth Market."""
    for stream in truth.streams():
        book = truth.book(stream)
        assert book is not None
        for depth in (1, 5, 20):
            r = await client.get(f"/api/v1/orderbook/{stream}", params={"depth": depth})
            assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
            body = r.json()
            assert body["sequence"] == book.sequence
            assert body["bids"] == [list(lv) for lv in book.bids(depth)]
            assert body["asks"] == [list(lv) for lv in book.asks(depth)]
            assert body["checksum"] == contract_checksum(body["bids"], body["asks"])
            etag = r.headers["etag"]
            again = await client.get(
                f"/api/v1/orderbook/{stream}",
                params={"depth": depth},
                headers={"If-None-Match": etag},
            )
            assert again.status_code == 304
    agg = (await client.get("/api/v1/orderbook/aggregated/BTC-USD", params={"depth": 10})).json()
    truth_agg = truth.aggregated("BTC-USD")
    assert truth_agg is not None
    assert agg["exchanges"] == ["COINBASE", "KRAKEN"]
    assert [lv[:2] for lv in agg["bids"]] == [list(lv) for lv in truth_agg.bids(10)]
    only = await client.get("/api/v1/orderbook/aggregated/BTC-USD?exchanges=KRAKEN&depth=5")
    kraken = truth.book("KRAKEN:BTC-USD")
    assert kraken is not None
    assert [lv[:2] for lv in only.json()["bids"]] == [list(lv) for lv in kraken.bids(5)]
    trades = (await client.get("/api/v1/trades/KRAKEN:BTC-USD?limit=5")).json()["trades"]
    assert [t["trade_id"] for t in trades] == [
        t.trade_id for t in truth.trades("KRAKEN:BTC-USD", 5)
    ]
    merged = (await client.get("/api/v1/trades/BTC-USD?limit=50")).json()["trades"]
    assert {t["exchange"] for t in merged} == {"COINBASE", "KRAKEN"}
    stats = (await client.get("/api/v1/stats/BINANCE:BTC-USDT")).json()
    truth_stats = truth.stats("BINANCE:BTC-USDT", stats["timestamp_ns"])
    assert truth_stats is not None
    assert stats["trade_count"] == truth_stats.trade_count
    assert stats["volume"] == pytest.approx(truth_stats.volume)
    symbols = (await client.get("/api/v1/symbols")).json()
    assert len(symbols) == 9 and {s["status"] for s in symbols} == {"live"}
    feeds = (await client.get("/api/v1/feeds")).json()
    assert len(feeds["feeds"]) == 9 and all(f["status"] == "live" for f in feeds["feeds"])
    assert (await client.get("/health")).json() == {"status": "healthy"}
    prom = await client.get("/metrics")
    assert "api_requests_total" in prom.text and "kafka_records_consumed_total" in prom.text
    assert (await client.get("/schema/openapi.json")).json()["openapi"].startswith("3.1")
    index = await client.get("/")
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    missing = await client.get("/api/v1/orderbook/BINANCE:DOGE-USDT")
    assert missing.status_code == 404 and missing.json() == {"error": "Symbol not found"}


async def test_bootstrap_time_of_100_streams(config: Config) -> None:
    """Measured and printed, not asserted: 102 streams of 300 levels a side."""
    feed = Feed(config, symbols_per_exchange=34, levels=300)
    await asyncio.to_thread(feed.run, 300)
    loaded = await asyncio.to_thread(write_snapshots, config)
    assert loaded == 102
    t0 = time.perf_counter()
    async with running_api(config) as (api, client):
        await until(lambda: _ok(client, "/ready"), what="/ready 200")
        ready_s = time.perf_counter() - t0
        result = api.store.bootstrap_result
        assert result is not None
        await caught_up(client, feed.sequences())
        print(
            f"\nbootstrap of {result.loaded} streams x 300 levels/side from the compacted topic: "
            f"{result.seconds * 1000:.0f} ms (start -> /ready 200: {ready_s * 1000:.0f} ms)"
        )
        assert result.loaded == 102
