"""The shared runner: giving up, idleness, stopping, REST errors, configuration errors."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket

import pytest
from websockets.asyncio.server import ServerConnection, serve

from mdgw.config import Config, load_config
from mdgw.kafka.sink import MemorySink
from producers.connectors import (
    ConnectorConfigError,
    ConnectorGaveUpError,
    ConnectorOptions,
    SnapshotFetchError,
    run_connector,
)
from producers.connectors.runner import fetch_json
from producers.publisher import Publisher
from tests.unit.connectors.fake_binance import FakeBinance

FAST = ConnectorOptions(
    open_timeout=1.0, idle_timeout=0.2, tick=0.02, backoff_initial=0.01, backoff_max=0.02,
    flush_timeout=0.5, rest_timeout=1.0,
)  # fmt: skip


@pytest.fixture
def config() -> Config:
    return load_config(env={})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def publisher(config: Config) -> Publisher:
    return Publisher(MemorySink(), config.kafka)


async def test_unreachable_venue_gives_up_after_max_attempts(config: Config) -> None:
    options = dataclasses.replace(FAST, max_attempts=3)
    with pytest.raises(ConnectorGaveUpError) as info:
        await run_connector(
            config, "coinbase", ["BTC-USD"], ws_url=f"ws://127.0.0.1:{free_port()}",
            publisher=publisher(config), options=options,
        )  # fmt: skip
    stats = info.value.stats
    assert stats.gave_up and stats.connect_failures == 3 and stats.connects == 0
    assert "cannot connect" in stats.last_error


async def test_silent_venue_is_dropped_after_idle_timeout(config: Config) -> None:
    sessions = 0

    async def silent(ws: ServerConnection) -> None:
        nonlocal sessions
        sessions += 1
        await ws.wait_closed()

    options = dataclasses.replace(FAST, max_attempts=2)
    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ConnectorGaveUpError) as info:
            await asyncio.wait_for(
                run_connector(
                    config, "kraken", ["BTC-USD"], ws_url=f"ws://127.0.0.1:{port}",
                    publisher=publisher(config), options=options,
                ),
                5,
            )  # fmt: skip
    assert sessions == 2 and info.value.stats.disconnects == 2
    assert "no frame" in info.value.stats.last_error


async def test_stop_ends_a_live_session_promptly(config: Config) -> None:
    received: list[dict] = []

    async def venue(ws: ServerConnection) -> None:
        async for raw in ws:
            received.append(json.loads(raw))

    stop = asyncio.Event()
    async with serve(venue, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        options = dataclasses.replace(FAST, idle_timeout=30.0)
        task = asyncio.create_task(
            run_connector(
                config, "coinbase", ["BTC-USD"], ws_url=f"ws://127.0.0.1:{port}",
                publisher=publisher(config), options=options, stop=stop,
            )
        )  # fmt: skip
        while len(received) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        stats = await asyncio.wait_for(task, 2)
    assert stats.connects == 1 and stats.disconnects == 0 and not stats.gave_up
    assert "COINBASE: 1 connections" in stats.format()
    json.dumps(stats.to_dict())


async def test_stop_while_the_handshake_hangs(config: Config) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)  # accepts TCP, never answers the upgrade

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stop = asyncio.Event()
    options = dataclasses.replace(FAST, open_timeout=10.0)
    task = asyncio.create_task(
        run_connector(
            config, "kraken", ["BTC-USD"], ws_url=f"ws://127.0.0.1:{port}",
            publisher=publisher(config), options=options, stop=stop,
        )
    )  # fmt: skip
    await asyncio.sleep(0.1)
    stop.set()
    stats = await asyncio.wait_for(task, 1)
    server.close()
    assert stats.connects == 0 and stats.connect_failures == 0


async def test_fetch_json_errors() -> None:
    async with FakeBinance(["BTCUSDT"], []) as fake:
        ok = await fetch_json(f"{fake.http_url}/api/v3/depth?symbol=BTCUSDT&limit=1000", 1, 10**6)
        assert ok["lastUpdateId"] == 1000
        with pytest.raises(SnapshotFetchError) as info:
            await fetch_json(f"{fake.http_url}/api/v3/depth?symbol=NOPE", 1, 10**6)
        assert info.value.unknown_symbol and info.value.status == 400 and not info.value.retriable
        with pytest.raises(SnapshotFetchError, match="larger than"):
            await fetch_json(f"{fake.http_url}/api/v3/depth?symbol=BTCUSDT", 1, 100)
    with pytest.raises(SnapshotFetchError) as refused:
        await fetch_json(f"http://127.0.0.1:{free_port()}/x", 1, 10**6)
    assert refused.value.retriable


@pytest.mark.parametrize(
    ("venue", "symbols", "url"),
    [("bitstamp", ["BTC-USD"], None), ("kraken", ["BTCUSD"], None), ("kraken", [], None),
     ("coinbase", ["BTC-USD"], "http://not-a-websocket")],
)  # fmt: skip
async def test_configuration_errors_come_before_any_io(
    config: Config, venue: str, symbols: list[str], url: str | None
) -> None:
    with pytest.raises(ConnectorConfigError):
        await run_connector(config, venue, symbols, ws_url=url, publisher=publisher(config))
