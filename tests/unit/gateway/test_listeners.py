"""``gateway.listen_sockets``: several listening sockets on one port (SO_REUSEPORT),
because libuv accepts one connection per listening socket per loop turn."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys

import pytest
from websockets.asyncio.client import connect

from core.market import Market
from gateway.app import _serve
from gateway.hub import Hub
from gateway.server import GatewayServer
from mdgw.config import Config, ConfigError, validate
from tests.unit.gateway.memgw import CONFIG, memory_gateway

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreading")


def with_gateway(**fields: object) -> Config:
    return dataclasses.replace(CONFIG, gateway=dataclasses.replace(CONFIG.gateway, **fields))


@linux
async def test_every_listener_shares_one_port_and_all_are_closed_on_stop() -> None:
    async with memory_gateway(config=with_gateway(listen_sockets=4)) as (rt, *_):
        assert len(rt.listeners) == 4
        ports = {ws.sockets[0].getsockname()[1] for ws in rt.listeners}
        assert ports == {rt.port}
        # many connections land on several sockets (the kernel hashes each 4-tuple)
        conns = [await connect(f"ws://127.0.0.1:{rt.port}/ws?format=json") for _ in range(24)]
        try:
            served = [len(ws.connections) for ws in rt.listeners]
            assert sum(served) == 24 and sum(1 for n in served if n) >= 2
        finally:
            for c in conns:
                await c.close()
        listeners = rt.listeners
        await rt.stop(timeout=2)
        assert all(not ws.is_serving() for ws in listeners)
    with pytest.raises(OSError):  # nothing is left listening
        socket.create_connection(("127.0.0.1", rt.port), timeout=1).close()


async def test_one_listener_when_asked() -> None:
    async with memory_gateway(config=with_gateway(listen_sockets=1)) as (rt, *_):
        assert len(rt.listeners) == 1


@linux
async def test_a_second_gateway_on_a_taken_port_fails_instead_of_joining_it() -> None:
    """SO_REUSEPORT would let a second process join the port and take half the clients;
    a fixed port already listened on is refused as before."""
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        server = GatewayServer(CONFIG.gateway, Hub(Market()))
        with pytest.raises(OSError):
            await _serve(with_gateway(port=port, listen_sockets=4), server, False)
    finally:
        taken.close()
    await asyncio.sleep(0)


@pytest.mark.parametrize("n", [0, 65])
def test_listen_sockets_bounds(n: int) -> None:
    with pytest.raises(ConfigError, match="listen_sockets"):
        validate(with_gateway(listen_sockets=n))
