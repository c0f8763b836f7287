"""Gateway end to end: simulator -> real Kafka -> gateway -> verifying clients.

The simulator and the gateway run in-process (``tests/integration/helpers.py``);
Kafka is real.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from mdgw_client import MarketDataClient

from core.book import ApplyResult, OrderBook
from core.types import VALID_DEPTHS, BookUpdate
from mdgw.kafka.source import read_to_end
from schemas import codec
from tests.integration.helpers import collect, gateway_with_feed, wait_for

pytestmark = [pytest.mark.kafka]

BOOKS = ["BINANCE:BTC-USDT", "KRAKEN:BTC-USD", "COINBASE:ETH-USD"]


async def test_every_depth_speed_and_format_stays_exact(config) -> None:
    """Guarantees 1-4 for every depth, both speeds, both formats, batched or not."""
    async with gateway_with_feed(config, rate=600) as (rt, url, sim):
        clients: list[tuple[tuple, MarketDataClient]] = []
        for fmt in ("json", "protobuf"):
            for depth in VALID_DEPTHS:
                for speed in ("raw", "100ms"):
                    batch = depth in (20, 0)
                    c = MarketDataClient(url, fmt=fmt, batch=batch)
                    await c.connect()
                    await c.subscribe("book", BOOKS, depth=depth, speed=speed)
                    await c.subscribe("aggregated_book", ["BTC-USD"], depth=depth, speed=speed)
                    await c.subscribe("trades", ["KRAKEN:BTC-USD"])
                    clients.append(((fmt, depth, speed, batch), c))
        counts = await asyncio.gather(*(collect(c, 10.0) for _, c in clients))
        sim.stop()
        # On a busy machine the gateway may still be working through a backlog: keep the
        # clients reading until it has consumed everything, then one more second for the
        # last (conflated) messages; then compare every client book with the server's.
        last = -1
        for _ in range(60):
            consumed = rt.materializer.counters.consumed
            if consumed == last:
                break
            last = consumed
            await asyncio.gather(*(collect(c, 1.0) for _, c in clients))
        final = await asyncio.gather(*(collect(c, 1.0) for _, c in clients))
        for (label, c), n, m in zip(clients, counts, final, strict=True):
            assert c.sequence_breaks == 0, label
            assert c.checksum_failures == 0, label
            assert n.get("book", 0) > 20, (label, n)
            assert n.get("trade", 0) > 0, (label, n)
            for stream in BOOKS:
                local = c.book(stream)
                server = rt.market.book(stream)
                assert local is not None and server is not None and local.valid
                depth = label[1]
                assert local.top_bids() == server.bids(depth), (label, stream)
                assert local.top_asks() == server.asks(depth), (label, stream)
            agg = c.book("agg:BTC-USD")
            assert agg is not None and agg.valid, label
            assert agg.top_bids() == rt.market.aggregated("BTC-USD").bids(label[1]), label
            await c.close()
        assert rt.materializer.counters.dlq == 0


async def test_conflated_speed_sends_at_most_one_message_per_100ms(config) -> None:
    async with gateway_with_feed(config, rate=1500) as (_rt, url, _sim):
        c = MarketDataClient(url, fmt="json")
        await c.connect()
        await c.subscribe("book", ["BINANCE:BTC-USDT"], depth=0, speed="100ms")
        stamps: list[int] = []

        async def run() -> None:
            async for ev in c.events():
                if ev.kind == "book" and ev.data["type"] == "order_book_update":
                    stamps.append(ev.received_ns)

        try:
            await asyncio.wait_for(run(), 5)
        except TimeoutError:
            pass
        await c.close()
        assert len(stamps) > 10
        assert len(stamps) <= 5 / 0.1 + 2
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        # timer jitter on a loaded box: no two messages much closer than the interval
        assert min(gaps) > 50_000_000


async def test_heartbeats_stats_and_timestamps(config) -> None:
    cfg = config
    import dataclasses

    cfg = dataclasses.replace(
        config, gateway=dataclasses.replace(config.gateway, heartbeat_interval=0.5)
    )
    async with gateway_with_feed(cfg) as (_rt, url, _sim):
        c = MarketDataClient(url, fmt="json")
        await c.connect()
        await c.subscribe("stats", ["KRAKEN:BTC-USD"])
        await c.subscribe("book", ["KRAKEN:BTC-USD"], depth=10)
        seen: dict[str, dict] = {}

        async def run() -> None:
            async for ev in c.events():
                seen.setdefault(ev.kind, ev.data)
                if ev.kind == "book" and ev.data["type"] == "order_book_update":
                    seen["update"] = ev.data

        try:
            await asyncio.wait_for(run(), 3)
        except TimeoutError:
            pass
        await c.close()
        assert "heartbeat" in seen and seen["heartbeat"]["timestamp"] > 0
        stats = seen["stats"]
        assert stats["symbol"] == "BTC-USD" and stats["exchange"] == "KRAKEN"
        assert stats["best_bid"] < stats["best_ask"]
        upd = seen["update"]
        assert upd["timestamp"] > 0 and upd["ingest_ts"] > 0
        assert upd["gateway_ts"] >= upd["ingest_ts"]


async def test_health_and_metrics_on_the_same_port(config) -> None:
    import httpx

    async with gateway_with_feed(config) as (rt, _url, _sim):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{rt.port}") as http:
            h = await http.get("/health")
            assert h.status_code == 200 and h.json()["status"] == "healthy"
            m = await http.get("/metrics")
            assert m.status_code == 200
            for name in (
                "ws_connections_total",
                "ws_connections_active",
                "message_broadcast_latency_seconds_bucket",
                'ws_probes_total{how="with_data"}',
                'ws_probes_total{how="alone"}',
                "ws_probe_answers_total",
            ):
                assert name in m.text
            assert (await http.get("/nope")).status_code == 404


async def test_gateway_restart_clients_reconnect_and_stay_exact(config, caplog) -> None:
    """In-process gateway stopped and started again on the same port: the client
    reconnects, the new gateway starts from the compacted snapshots (its bootstrap says
    it loaded every stream), and once the feed stops every level of the client's depth-20
    books equals the new gateway's books (the checksum alone covers only 10 levels)."""
    import dataclasses

    from gateway.app import start_gateway

    caplog.set_level(logging.INFO, logger="mdgw.bootstrap")
    async with gateway_with_feed(config) as (rt, url, sim):
        port = rt.port
        streams = len(rt.market.streams())
        c = MarketDataClient(url, fmt="protobuf", max_backoff=0.5)
        await c.connect()
        await c.subscribe("book", BOOKS, depth=20)
        task = asyncio.create_task(collect(c, 14.0))
        await asyncio.sleep(2)
        await rt.stop()
        await asyncio.sleep(1)
        caplog.clear()
        fixed = dataclasses.replace(config, gateway=dataclasses.replace(config.gateway, port=port))
        rt2 = await start_gateway(fixed)
        try:
            counts = await task
            assert c.reconnects >= 1
            assert c.checksum_failures == 0 and c.sequence_breaks == 0
            await wait_for(lambda: all(c.book(s).valid for s in BOOKS), 5)
            assert counts.get("book", 0) > 20
            # the second gateway picked the books up from the compacted snapshot topic
            loaded = [r.args[1] for r in caplog.records if r.msg.startswith("bootstrap: %d")]
            assert loaded == [streams], caplog.text
            sim.stop()
            await collect(c, 1.5)  # drain: the client reaches the last record
            for stream in BOOKS:
                local, server = c.book(stream), rt2.market.book(stream)
                assert local is not None and server is not None and local.valid
                assert local.top_bids() == server.bids(20), stream
                assert local.top_asks() == server.asks(20), stream
        finally:
            await c.close()
            await rt2.stop()


async def test_websocket_book_equals_the_rest_book_at_the_same_sequence(config) -> None:
    """A full-depth WebSocket client and the REST API, both drained after the feed stops:
    the same sequence, every level equal, the same checksum."""
    import httpx

    from api.main import start_api

    async with gateway_with_feed(config, rate=300) as (_rt, url, sim):
        api = await start_api(config)
        try:
            c = MarketDataClient(url, fmt="protobuf")
            await c.connect()
            # depth 0: the client's sequence is the book's (a depth-N view's may trail it)
            await c.subscribe("book", BOOKS, depth=0)
            await collect(c, 3.0)
            sim.stop()
            await collect(c, 1.5)  # drain: both sides reach the last record
            async with httpx.AsyncClient(base_url=api.url) as http:
                for stream in BOOKS:
                    local = c.book(stream)
                    assert local is not None and local.valid
                    path = f"/api/v1/orderbook/{stream}"
                    body = (await http.get(path, params={"depth": 1000})).json()
                    for _ in range(50):  # the API tails Kafka on its own: let it catch up
                        if body["sequence"] >= local.sequence:
                            break
                        await asyncio.sleep(0.1)
                        body = (await http.get(path, params={"depth": 1000})).json()
                    assert body["sequence"] == local.sequence, stream
                    assert [tuple(x) for x in body["bids"]] == local.top_bids(), stream
                    assert [tuple(x) for x in body["asks"]] == local.top_asks(), stream
                    assert body["checksum"] == local.checksum
            await c.close()
        finally:
            await api.stop()


async def test_an_idle_gateway_fetches_in_bulk_and_its_first_client_switches_it_back(
    config, monkeypatch
) -> None:
    """No client: the consumer's client is replaced by one fetching in bulk; the first
    client switches it back. Across both switches no record is lost or applied twice:
    none is read twice, the gateway's books end equal to the book topic read back from
    the beginning, and the client's books stay exact."""
    from gateway import app as gateway_app

    monkeypatch.setattr(gateway_app, "IDLE_AFTER_S", 0.5)
    async with gateway_with_feed(config, rate=400) as (rt, url, sim):
        rereads = rt.materializer.counters.rereads  # from here on, one would be a repeat
        await wait_for(lambda: rt.consumer.idle, timeout=30)
        consumed = rt.materializer.counters.consumed
        await wait_for(lambda: rt.materializer.counters.consumed > consumed + 200)
        c = MarketDataClient(url, fmt="json")
        await c.connect()
        await c.subscribe("book", BOOKS, depth=10)
        await wait_for(lambda: not rt.consumer.idle, timeout=10)
        counts = await collect(c, 2.0)
        sim.stop()
        last = -1
        for _ in range(60):  # until everything published is consumed
            if rt.materializer.counters.consumed == last:
                break
            last = rt.materializer.counters.consumed
            await collect(c, 1.0)
        assert counts.get("book", 0) > 20, counts
        assert c.sequence_breaks == 0 and c.checksum_failures == 0
        for stream in BOOKS:
            local, server = c.book(stream), rt.market.book(stream)
            assert local is not None and server is not None and local.valid
            assert local.top_bids() == server.bids(10) and local.top_asks() == server.asks(10)
        replayed: dict[str, OrderBook] = {}
        for rec in read_to_end(config.kafka, config.kafka.book_topic):
            u = codec.decode(rec.value)
            assert isinstance(u, BookUpdate)
            book = replayed.setdefault(u.stream, OrderBook(u.exchange, u.symbol))
            assert book.apply(u) in (ApplyResult.SNAPSHOT, ApplyResult.APPLIED)
        assert len(replayed) == 9
        for stream, book in replayed.items():
            server = rt.market.book(stream)
            assert server is not None and server.sequence == book.sequence, stream
            assert server.bids(0) == book.bids(0) and server.asks(0) == book.asks(0), stream
        await c.close()
        assert rt.materializer.counters.dlq == 0
        assert rt.materializer.counters.gaps == 0
        assert rt.materializer.counters.rereads == rereads
