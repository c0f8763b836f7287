"""A stall of the gateway's own loop is not a client's lag (docs/protocol.md §4.6).

While the loop is held (a long callback, a collection, no core), the answers to its
probes wait unread in its own sockets and nothing it wrote can be confirmed. The first
freshness check after the stall must not take that for clients behind: it asks again
and judges once the answers have been read. (The hub's side, with a fake clock, is in
test_freshness.py.)"""

from __future__ import annotations

import asyncio
import threading
import time

import orjson
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from mdgw import metrics
from schemas import codec
from tests.unit.gateway.memgw import KAFKA, STREAM, eventually, memory_gateway, url
from tests.unit.kafka.memkafka import book


class Reader:
    """A client on its own thread that reads everything at once (websockets answers
    the probes as it reads) and keeps what it was told."""

    def __init__(self, ws_url: str) -> None:
        self.url = ws_url + "?format=json"
        self.types: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        sub = {"op": "subscribe", "id": 1, "channel": "book", "symbols": [STREAM]}
        with connect(self.url) as ws:
            ws.send(orjson.dumps(sub).decode())
            while not self.stop.is_set():
                try:
                    raw = ws.recv(0.05)
                except TimeoutError:
                    continue
                except ConnectionClosed:
                    return
                msg = orjson.loads(raw)
                self.types.append(msg["type"] + ":" + msg.get("status", ""))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)


def behind_total() -> float:
    return sum(
        s.value for m in metrics.BEHIND.collect() for s in m.samples if s.name.endswith("_total")
    )


async def test_a_stall_of_the_loop_does_not_put_a_client_that_keeps_up_behind() -> None:
    async with memory_gateway() as (rt, broker, states, _clock):
        reader = Reader(url(rt))
        try:
            await eventually(lambda: len(rt.hub.sessions) == 1 and reader.types)
            session = next(iter(rt.hub.sessions))
            part = broker.records(KAFKA.book_topic)[0].partition
            seq = states[-1][1].sequence
            behind_before = behind_total()

            async def updates(seconds: float) -> None:
                nonlocal seq
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    seq += 1
                    broker.send(KAFKA.book_topic, STREAM, codec.encode(book(seq)), partition=part)
                    await asyncio.sleep(0.03)

            await updates(1.0)
            assert session.behind_since is None
            time.sleep(0.8)  # the loop held, longer than max_lag (500 ms), data unconfirmed
            await updates(1.0)
            n = seq
            await eventually(lambda: reader.types.count("order_book_update:") >= n - seq + 1)
            assert session.behind_since is None, session.behind_reason
            assert behind_total() == behind_before
            assert not [t for t in reader.types if t.startswith("status:")], reader.types
            # what it read was confirmed: the probes kept going and were answered
            assert session.probe_answers >= 5
        finally:
            await asyncio.to_thread(reader.close)
