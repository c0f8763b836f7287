"""The Coinbase connector against a local fake Advanced Trade WebSocket through the runner."""

from __future__ import annotations

import asyncio

import pytest

from mdgw.config import Config, load_config
from mdgw.kafka.sink import MemorySink
from producers.connectors import ConnectorOptions, ConnectorStats, run_connector
from producers.publisher import Publisher
from tests.unit.connectors.fake_coinbase import FakeCoinbase
from tests.unit.connectors.fakes import Published, book_matches, check_published, wait_until

FAST = ConnectorOptions(
    open_timeout=2.0,
    idle_timeout=5.0,
    tick=0.02,
    backoff_initial=0.01,
    backoff_max=0.05,
    snapshot_timeout=2.0,
    flush_timeout=1.0,
)
PRODUCTS = ["BTC-USD", "ETH-USD"]


@pytest.fixture
def config() -> Config:
    return load_config(env={})


async def run_against(fake: FakeCoinbase, config: Config) -> tuple[ConnectorStats, Published]:
    """Run until the published books equal the fake's and every delivered trade arrived."""
    sink = MemorySink()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_connector(
            config,
            "coinbase",
            PRODUCTS,
            ws_url=fake.url,
            stop=stop,
            publisher=Publisher(sink, config.kafka),
            options=FAST,
        )
    )

    def caught_up() -> bool:
        if task.done() or not fake.finished:
            return task.done()
        pub = check_published(sink)
        return all(
            book_matches(pub.books.get(f"COINBASE:{p}"), fake.books[p])
            and {t.trade_id for t in pub.trades.get(f"COINBASE:{p}", [])} == fake.delivered[p]
            for p in PRODUCTS
        )

    try:
        await wait_until(caught_up)
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 5)
    return stats, check_published(sink)


async def test_steady_stream(config: Config) -> None:
    plan = [("updates", 40), ("trades", 6), ("heartbeat",), ("updates", 20)]
    async with FakeCoinbase(PRODUCTS, [plan]) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.connects == 1 and stats.gaps == 0 and stats.resyncs == 0
    assert all(pub.snapshots[f"COINBASE:{p}"] == 1 for p in PRODUCTS)
    assert stats.trade_records == 6
    channels = [m["channel"] for m in fake.received if m["type"] == "subscribe"]
    assert channels == ["level2", "market_trades", "heartbeats"]


async def test_sequence_gap_resubscribes_for_a_fresh_snapshot(config: Config) -> None:
    plan = [("updates", 20), ("lose", 1), ("updates", 30), ("trades", 3), ("updates", 10)]
    async with FakeCoinbase(PRODUCTS, [plan], seed=2) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.gaps == len(PRODUCTS)  # sequence_num is connection-wide: every book resyncs
    assert stats.resyncs == len(PRODUCTS)
    assert all(pub.snapshots[f"COINBASE:{p}"] == 2 for p in PRODUCTS)
    kinds = [(m["type"], m["channel"]) for m in fake.received]
    assert kinds.count(("unsubscribe", "level2")) == 1
    assert kinds.count(("subscribe", "level2")) == 2


async def test_faults_and_reconnect_fill_trades_from_the_snapshot(config: Config) -> None:
    plans = [
        [
            ("updates", 20),
            ("trades", 4),
            ("malformed",),
            ("unknown",),
            ("updates", 10),
            ("offline_trades", 3),
            ("close",),
        ],
        [("updates", 20), ("trades", 2), ("updates", 5)],
    ]
    async with FakeCoinbase(PRODUCTS, plans, seed=4) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.connects == 2 and stats.disconnects == 1
    assert stats.malformed == 1
    assert ("COINBASE", "FOO-USD") in stats.summary.unknown_symbols
    assert stats.resyncs == len(PRODUCTS)
    assert sum(len(t) for t in pub.trades.values()) == 9  # 4 live + 3 offline + 2 live
    assert stats.summary.skipped["coinbase:trade_snapshot"] == 1  # first connection's
