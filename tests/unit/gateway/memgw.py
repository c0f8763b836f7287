"""A gateway on the in-memory broker for unit tests, and ways to wait for what it sends."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from mdgw_client import Event, MarketDataClient

from core.types import BookUpdate
from gateway.app import Gateway, start_gateway
from gateway.clock import Clock as GatewayClock
from mdgw.config import Config, GatewayConfig, KafkaConfig
from mdgw.kafka.memory import MemoryBroker
from tests.unit.kafka.memkafka import Clock, broker_for, feed

STREAM = "BINANCE:BTC-USDT"
KAFKA = KafkaConfig(partitions=3)
CONFIG = Config(
    kafka=KAFKA,
    gateway=dataclasses.replace(
        GatewayConfig(), host="127.0.0.1", port=0, checkpoint_every_ms=1000, ping_interval=0
    ),
)

History = list[tuple[int, BookUpdate]]


async def eventually(pred: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def memory_gateway(
    deltas: int = 40, config: Config = CONFIG, sources: Any = None, **parts: Any
) -> AsyncIterator[tuple[Gateway, MemoryBroker, History, Clock]]:
    """A ready gateway over a broker holding one stream's history (see ``feed``);
    ``sources``: a factory of reading clients over that broker (``sources(broker)``;
    default the broker itself); ``parts`` go to the :class:`Gateway` (e.g. ``clock``)."""
    clock = Clock()
    broker = broker_for(KAFKA, clock)
    states = feed(broker, KAFKA, clock, deltas)
    reading = broker if sources is None else sources(broker)
    rt = await start_gateway(config, sources=reading, sink=broker, **parts)
    await eventually(lambda: rt.server.is_ready() and rt.market.book(STREAM) is not None)
    try:
        yield rt, broker, states, clock
    finally:
        if not rt.server.shutting_down:
            await rt.stop(timeout=2)


class GatewayTime:
    """A gateway clock the test moves: wall and monotonic ns start now and stand still."""

    def __init__(self) -> None:
        self.wall = time.time_ns()
        self.mono = time.monotonic_ns()
        self.clock = GatewayClock(wall_ns=lambda: self.wall, mono_ns=lambda: self.mono)

    def advance(self, seconds: float) -> None:
        self.wall += int(seconds * 1e9)
        self.mono += int(seconds * 1e9)


def url(rt: Gateway) -> str:
    return f"ws://127.0.0.1:{rt.port}/ws"


async def events_until(client: MarketDataClient, kind: str, timeout: float = 10.0) -> list[Event]:
    seen: list[Event] = []

    async def run() -> None:
        async for ev in client.events():
            seen.append(ev)
            if ev.kind == kind:
                return

    await asyncio.wait_for(run(), timeout)
    return seen
