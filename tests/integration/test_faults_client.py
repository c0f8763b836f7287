"""Fault: the reconnecting client meets a gateway that is restarting: a fake gateway.

In-process, no Kafka: a small websockets server plays a gateway that closes with
1012 and then refuses handshakes, so the client side is tested on its own.

A restarting gateway refuses handshakes with HTTP 503 ("starting: catching up with
Kafka") until it has caught up; a client with ``reconnect=True`` must treat that
like a refused connection and keep trying, not die.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import orjson
import pytest
from mdgw_client import MarketDataClient
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from core.checksum import book_checksum

pytestmark = [pytest.mark.slow]

STREAM = "KRAKEN:BTC-USD"
BIDS = [[100.0, 1.0]]
ASKS = [[101.0, 2.0]]


class RestartingGateway:
    """Accepts one connection, closes it 1012, refuses the next ``refusals`` with 503."""

    def __init__(self, refusals: int) -> None:
        self.refusals = refusals
        self.handshakes = 0
        self.served = 0

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        self.handshakes += 1
        if 1 < self.handshakes <= 1 + self.refusals:
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "starting\n")
        return None

    async def handler(self, conn: ServerConnection) -> None:
        self.served += 1
        await conn.recv()  # the subscribe
        snap = {
            "type": "order_book_snapshot",
            "exchange": "KRAKEN",
            "symbol": "BTC-USD",
            "timestamp": 1,
            "sequence": 10 * self.served,
            "depth": 20,
            "bids": BIDS,
            "asks": ASKS,
            "checksum": book_checksum([tuple(a) for a in ASKS], [tuple(b) for b in BIDS]),
        }
        await conn.send(orjson.dumps(snap).decode())
        if self.served == 1:
            await conn.close(1012, "restarting")
        else:
            await conn.wait_closed()


@pytest.mark.parametrize("refusals", [1, 3])
async def test_client_keeps_reconnecting_through_503_of_a_fake_gateway(refusals: int) -> None:
    fake = RestartingGateway(refusals)
    async with serve(fake.handler, "127.0.0.1", 0, process_request=fake.process_request) as srv:
        port = srv.sockets[0].getsockname()[1]
        client = MarketDataClient(f"ws://127.0.0.1:{port}/ws", reconnect=True, max_backoff=0.2)
        await client.connect()
        await client.subscribe("book", [STREAM])
        snapshots: list[int] = []

        async def run() -> None:
            async for ev in client.events():
                if ev.kind == "book":
                    snapshots.append(ev.data["sequence"])
                    if len(snapshots) == 2:
                        return

        try:
            await asyncio.wait_for(run(), 15)
        finally:
            await client.close()
        print(
            f"\n[client vs 503] handshakes {fake.handshakes} (503 x{refusals}), "
            f"reconnects {client.reconnects}, snapshots {snapshots}"
        )
        assert snapshots == [10, 20]
        assert fake.handshakes == 2 + refusals
        book = client.book(STREAM)
        assert book is not None and book.valid and book.sequence == 20
