"""The Kraken connector against a local fake Kraken WebSocket v2 through the runner."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from mdgw.config import Config, load_config
from mdgw.kafka.sink import MemorySink
from producers.connectors import ConnectorOptions, ConnectorStats, run_connector
from producers.publisher import Publisher
from tests.unit.connectors.fake_kraken import FakeKraken
from tests.unit.connectors.fakes import Published, book_matches, check_published, wait_until

FAST = ConnectorOptions(
    open_timeout=2.0,
    idle_timeout=5.0,
    tick=0.02,
    backoff_initial=0.01,
    backoff_max=0.05,
    snapshot_timeout=2.0,
    flush_timeout=1.0,
    kraken_depth=10,
)
PAIRS = {"BTC/USD": "BTC-USD", "ETH/USD": "ETH-USD"}


@pytest.fixture
def config() -> Config:
    return load_config(env={})


async def run_against(
    fake: FakeKraken, config: Config, symbols: list[str] | None = None
) -> tuple[ConnectorStats, Published]:
    """Run until the published books equal the fake's top-N view and all trades arrived."""
    sink = MemorySink()
    stop = asyncio.Event()
    options = dataclasses.replace(FAST, kraken_depth=fake.depth)
    task = asyncio.create_task(
        run_connector(
            config,
            "kraken",
            symbols or list(PAIRS.values()),
            ws_url=fake.url,
            stop=stop,
            publisher=Publisher(sink, config.kafka),
            options=options,
        )
    )

    def caught_up() -> bool:
        if task.done() or not fake.finished:
            return task.done()
        pub = check_published(sink)
        return all(
            book_matches(pub.books.get(f"KRAKEN:{can}"), fake.books[nat], fake.depth)
            and len(pub.trades.get(f"KRAKEN:{can}", [])) == fake.trades_sent[nat]
            for nat, can in PAIRS.items()
        )

    try:
        await wait_until(caught_up)
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 5)
    return stats, check_published(sink)


@pytest.mark.parametrize(
    "strip_zeros", [False, True], ids=["wire-precision", "instrument-precision"]
)
async def test_steady_stream_checksums_and_truncation(config: Config, strip_zeros: bool) -> None:
    plan = [("updates", 60), ("trades", 5), ("heartbeat",), ("updates", 30)]
    async with FakeKraken(list(PAIRS), [plan], seed=11, strip_zeros=strip_zeros) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.checksum_failures == 0 and stats.resyncs == 0
    assert stats.summary.total("checksums_ok") == stats.book_records - stats.snapshot_records
    assert all(pub.snapshots[f"KRAKEN:{c}"] == 1 for c in PAIRS.values())
    assert stats.trade_records == 5


async def test_bad_checksum_resubscribes_for_a_fresh_snapshot(config: Config) -> None:
    plan = [("updates", 20), ("bad_checksum",), ("updates", 30), ("trades", 2), ("updates", 10)]
    async with FakeKraken(list(PAIRS), [plan], seed=12) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.checksum_failures == 1 and stats.resyncs == 1
    assert sum(pub.snapshots.values()) == 3
    unsubscribes = [m for m in fake.received if m["method"] == "unsubscribe"]
    assert len(unsubscribes) == 1 and unsubscribes[0]["params"]["channel"] == "book"


async def test_faults_reconnect_and_refused_pair(config: Config) -> None:
    plans = [
        [("updates", 20), ("malformed",), ("unknown",), ("trades", 3), ("updates", 5), ("close",)],
        [("updates", 25), ("trades", 2), ("updates", 5)],
    ]
    symbols = [*PAIRS.values(), "ABC-USD"]
    async with FakeKraken(list(PAIRS), plans, seed=13, depth=25) as fake:
        stats, pub = await run_against(fake, config, symbols)
    assert stats.connects == 2 and stats.disconnects == 1 and stats.malformed == 1
    assert ("KRAKEN", "FOO/USD") in stats.summary.unknown_symbols
    assert ("KRAKEN", "ABC/USD") in stats.summary.unknown_symbols
    book_subs = [m for m in fake.received if m["params"].get("channel") == "book"]
    assert "ABC/USD" in book_subs[0]["params"]["symbol"]
    assert "ABC/USD" not in book_subs[-1]["params"]["symbol"]  # refused: not asked again
    assert stats.resyncs == len(PAIRS)
    assert "KRAKEN:ABC-USD" not in pub.books
