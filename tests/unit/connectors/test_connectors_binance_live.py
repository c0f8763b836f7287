"""The Binance connector against a local fake Binance (WebSocket + REST) through the runner."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from mdgw.config import Config, load_config
from mdgw.kafka.sink import MemorySink
from producers.connectors import ConnectorOptions, ConnectorStats, run_connector
from producers.connectors.errors import ConnectorConfigError, SnapshotFetchError
from producers.publisher import Publisher
from tests.unit.connectors.fake_binance import FakeBinance
from tests.unit.connectors.fakes import Published, book_matches, check_published, wait_until

FAST = ConnectorOptions(
    open_timeout=2.0,
    idle_timeout=5.0,
    tick=0.02,
    backoff_initial=0.01,
    backoff_max=0.05,
    snapshot_retry=0.02,
    snapshot_timeout=2.0,
    initial_snapshot_delay=0.05,
    rest_timeout=2.0,
    flush_timeout=1.0,
)
SYMBOLS = {"BTCUSDT": "BTC-USDT", "ETHUSDT": "ETH-USDT"}


@pytest.fixture
def config() -> Config:
    return load_config(env={})


async def run_against(
    fake: FakeBinance, config: Config, symbols: list[str] | None = None, **kwargs: Any
) -> tuple[ConnectorStats, Published]:
    """Run the connector until its books equal the fake's and every trade arrived."""
    sink = MemorySink()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_connector(
            config,
            "binance",
            symbols or list(SYMBOLS.values()),
            ws_url=fake.url,
            rest_url=fake.http_url,
            stop=stop,
            publisher=Publisher(sink, config.kafka),
            options=FAST,
            **kwargs,
        )
    )

    def caught_up() -> bool:
        if task.done() or not fake.finished:
            return task.done()
        pub = check_published(sink)
        return all(
            book_matches(pub.books.get(f"BINANCE:{can}"), fake.books[nat])
            and len(pub.trades.get(f"BINANCE:{can}", [])) == fake.trades_sent[nat]
            for nat, can in SYMBOLS.items()
        )

    try:
        await wait_until(caught_up)
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 5)
    return stats, check_published(sink)


async def test_steady_stream_rebuilds_the_book(config: Config) -> None:
    async with FakeBinance(list(SYMBOLS), [[("diffs", 60), ("trades", 10), ("diffs", 20)]]) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.connects == 1 and stats.malformed == 0 and stats.handler_errors == 0
    assert all(pub.snapshots[f"BINANCE:{c}"] == 1 for c in SYMBOLS.values())
    assert sum(len(t) for t in pub.trades.values()) == 10 == stats.trade_records
    assert "/stream?streams=btcusdt@depth@100ms/btcusdt@trade" in fake.stream_paths[0]
    assert all(p.startswith("/api/v3/depth?symbol=") for p in fake.http_paths)


async def test_faults_gap_malformed_unknown_and_reconnect(config: Config) -> None:
    plans = [
        [
            ("diffs", 30),
            ("lose", 2),
            ("diffs", 10),
            ("malformed",),
            ("bad_shape",),
            ("diffs", 10),
            ("unknown",),
            ("trades", 5),
            ("diffs", 5),
            ("close",),
        ],
        [("lose", 3), ("diffs", 25), ("trades", 4), ("diffs", 10)],
    ]
    async with FakeBinance(list(SYMBOLS), plans, seed=3) as fake:
        stats, pub = await run_against(fake, config)
    assert stats.connects == 2 and stats.disconnects == 1
    assert stats.malformed == 1 and stats.handler_errors >= 1
    assert stats.unknown_symbols == 1  # the DOGEBTC diff, reported once, counted
    assert ("BINANCE", "DOGEBTC") in stats.summary.unknown_symbols
    assert stats.gaps >= 2 and stats.resyncs >= 2
    assert sum(pub.snapshots.values()) == stats.snapshot_records == 2 + stats.resyncs
    assert sum(len(t) for t in pub.trades.values()) == 9


async def test_stale_rest_snapshot_is_fetched_again(config: Config) -> None:
    async with FakeBinance(
        list(SYMBOLS), [[("lose", 6), ("diffs", 40)]], seed=5, stale_snapshots=2
    ) as fake:
        stats, _ = await run_against(fake, config)
    assert stats.summary.skipped["binance:stale_snapshot"] >= 1
    assert len(fake.http_paths) >= 4
    assert stats.resyncs == 0  # a discarded snapshot is never published


async def test_symbol_binance_refuses_is_reported_not_retried(config: Config) -> None:
    symbols = [*SYMBOLS.values(), "XRP-USDT"]
    async with FakeBinance(list(SYMBOLS), [[("diffs", 40), ("sleep", 0.2)]], seed=7) as fake:
        stats, pub = await run_against(fake, config, symbols)
    assert ("BINANCE", "XRPUSDT") in stats.summary.unknown_symbols
    assert sum("XRPUSDT" in p for p in fake.http_paths) == 1
    assert "BINANCE:XRP-USDT" not in pub.books
    assert stats.snapshot_failures == 1


async def test_exchange_info_fetched_at_start_checks_the_symbols(config: Config) -> None:
    async with FakeBinance(list(SYMBOLS), [[("diffs", 20), ("trades", 3)]]) as fake:
        fake.listing = {"BTCUSDT": ("BTC", "USDT"), "ETHUSDT": ("ETH", "USDT")}
        _stats, pub = await run_against(fake, config, fetch_exchange_info=True)
    assert fake.http_paths[0].startswith("/api/v3/exchangeInfo?symbols=")
    assert sum(len(t) for t in pub.trades.values()) == 3


@pytest.mark.parametrize(
    ("listing", "message"),
    [
        ({"BTCUSDT": ("BTC", "USDT")}, "ETH-USDT: Binance lists no ETHUSDT"),
        (
            {"BTCUSDT": ("BTCU", "SDT"), "ETHUSDT": ("ETH", "USDT")},
            "BTC-USDT: Binance lists BTCUSDT as BTCU-SDT",
        ),
    ],
)
async def test_exchange_info_refuses_symbols_the_venue_names_otherwise(
    config: Config, listing: dict[str, tuple[str, str]], message: str
) -> None:
    info = {
        "symbols": [{"symbol": n, "baseAsset": b, "quoteAsset": q} for n, (b, q) in listing.items()]
    }
    with pytest.raises(ConnectorConfigError, match=message):
        await run_connector(
            config, "binance", list(SYMBOLS.values()), exchange_info=info, options=FAST,
            publisher=Publisher(MemorySink(), config.kafka),
        )  # fmt: skip


async def test_a_failed_exchange_info_fetch_stops_the_start(config: Config) -> None:
    async with FakeBinance(list(SYMBOLS), [[("diffs", 1)]]) as fake:  # lists nothing
        with pytest.raises(SnapshotFetchError, match="exchangeInfo"):
            await run_connector(
                config, "binance", list(SYMBOLS.values()), ws_url=fake.url,
                rest_url=fake.http_url, fetch_exchange_info=True, options=FAST,
                publisher=Publisher(MemorySink(), config.kafka),
            )  # fmt: skip
