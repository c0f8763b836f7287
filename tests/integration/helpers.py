"""Helpers for integration tests: run the simulator and a gateway in-process."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mdgw_client import MarketDataClient
from prometheus_client import REGISTRY

from core.types import BookUpdate
from gateway.app import Gateway, start_gateway
from mdgw.config import Config
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import read_to_end
from producers.publisher import Publisher
from producers.simulate_run import run_simulator
from schemas import codec


class SimThread:
    """The simulator publishing into the test's topics on a background thread."""

    def __init__(self, config: Config, rate: float = 400.0, seed: int = 7) -> None:
        sim = dataclasses.replace(config.simulator, rate=rate, duration=0, seed=seed)
        self.sink = KafkaSink(config.kafka)
        self.publisher = Publisher(self.sink, config.kafka)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(
            target=run_simulator,
            args=(sim, self.publisher),
            kwargs={"stop": self.stop_event},
            daemon=True,
        )

    def start(self) -> SimThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stop_event.set()
        self.thread.join(timeout=30)
        self.sink.flush(30)


async def wait_for(pred: Any, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


async def started_gateway(config: Config, streams: int = 9) -> Gateway:
    rt = await start_gateway(config)
    await wait_for(lambda: rt.server.is_ready() and len(rt.market.streams()) >= streams)
    return rt


@asynccontextmanager
async def gateway_with_feed(
    config: Config, rate: float = 400.0
) -> AsyncIterator[tuple[Gateway, str, SimThread]]:
    sim = SimThread(config, rate).start()
    await asyncio.sleep(0.5)
    rt = await started_gateway(config)
    try:
        yield rt, f"ws://127.0.0.1:{rt.port}/ws", sim
    finally:
        sim.stop()
        await rt.stop()


async def collect(
    client: MarketDataClient, seconds: float, counts: dict[str, int] | None = None
) -> dict[str, int]:
    """Consume a client's events for a while; returns counts per event kind."""
    counts = {} if counts is None else counts

    async def run() -> None:
        async for ev in client.events():
            counts[ev.kind] = counts.get(ev.kind, 0) + 1

    try:
        await asyncio.wait_for(run(), seconds)
    except TimeoutError:
        pass
    return counts


def stream_report(rt: Gateway, config: Config, stream: str) -> dict[str, Any]:
    """Why a gateway's book of ``stream`` is what it is, for an assertion message: what
    the gateway applied, ignored and skipped, how its consumer fared, and the stream's
    records in the book topic (so "never written" and "not consumed" tell apart)."""
    state = rt.market.state(stream)
    mat, consumer = rt.materializer, rt.consumer
    pos = mat.positions.get(stream)
    in_topic: list[tuple[int, int, int, bool]] = []
    for rec in read_to_end(config.kafka, config.kafka.book_topic, timeout=20):
        if rec.key == stream.encode():
            update = codec.decode(rec.value or b"")
            if isinstance(update, BookUpdate):  # anything else is the DLQ's business
                in_topic.append((rec.partition, rec.offset, update.sequence, update.is_snapshot))
    switches = {
        to: REGISTRY.get_sample_value("kafka_fetch_switches_total", {"to": to})
        for to in ("idle", "eager")
    }
    return {
        "book": repr(state.book) if state else None,
        "counters": dataclasses.asdict(state.counters) if state else None,
        "position": (pos.partition, pos.offset) if pos else None,
        "materializer": dataclasses.asdict(mat.counters),
        "consumer": {
            "idle": consumer.idle,
            "errors": consumer.errors,
            "last_error": consumer.last_error,
            "switches (process total)": switches,
        },
        "topic records": len(in_topic),
        "first in topic (partition, offset, sequence, snapshot)": in_topic[:3],
        "snapshots in topic": [r[:3] for r in in_topic if r[3]][:5],
    }
