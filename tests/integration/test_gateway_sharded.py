"""Sharded mode: one consumer group splits the partitions between two gateways.

Both gateways run in-process; Kafka is real.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from mdgw_client import MarketDataClient

from core.book import OrderBook
from core.types import BookUpdate
from gateway.app import start_gateway
from mdgw.kafka.source import read_to_end
from schemas import codec
from tests.integration.helpers import SimThread, collect, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_two_shards_split_the_streams_and_hand_over_on_rebalance(config) -> None:
    gw = dataclasses.replace(
        config.gateway, mode="sharded", group_id=f"{config.kafka.client_id}-sh"
    )
    cfg = dataclasses.replace(config, gateway=gw)
    sim = SimThread(cfg, rate=300).start()
    first = await start_gateway(cfg)
    second = None
    try:
        await wait_for(lambda: len(first.market.streams()) == 9, 30)
        streams = first.market.streams()
        client = MarketDataClient(f"ws://127.0.0.1:{first.port}/ws", fmt="json", reconnect=False)
        await client.connect()
        await client.subscribe("book", streams, depth=20)
        watch = asyncio.create_task(collect(client, 25))
        await asyncio.sleep(2)
        second = await start_gateway(cfg)
        # the group rebalances: each gateway ends up with some of the 3 partitions
        await wait_for(
            lambda: (
                0 < len(second.market.streams()) < 9
                and len(first.market.streams()) + len(second.market.streams()) == 9
            ),
            40,
        )
        moved = set(second.market.streams())
        assert not moved & set(first.market.streams())
        await asyncio.sleep(3)
        sim.stop()
        await asyncio.sleep(2)
        counts = await watch
        assert counts.get("status", 0) >= len(moved)  # subscribers of moved streams told stale
        assert client.checksum_failures == 0
        # every owned book equals the rebuild of the topic
        rebuilt: dict[str, OrderBook] = {}
        for rec in read_to_end(cfg.kafka, cfg.kafka.book_topic):
            u = codec.decode(rec.value)
            assert isinstance(u, BookUpdate)
            rebuilt.setdefault(u.stream, OrderBook(u.exchange, u.symbol)).apply(u)
        for rt in (first, second):
            for s in rt.market.streams():
                book = rt.market.book(s)
                assert book.sequence == rebuilt[s].sequence, s
                assert book.bids() == rebuilt[s].bids() and book.asks() == rebuilt[s].asks()
        await client.close()
    finally:
        sim.stop()
        await first.stop()
        if second is not None:
            await second.stop()
