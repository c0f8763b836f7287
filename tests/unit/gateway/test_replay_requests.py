"""Refusals of ``replay`` requests before any history is read (gateway/replay.py):
symbols per replay, replay starts per connection (a token bucket on the gateway's
injected clock), a request id already running, a window ending in the future."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from tests.unit.gateway.memgw import CONFIG, STREAM, GatewayTime, memory_gateway, url


async def ask(ws: ClientConnection, **req: Any) -> dict[str, Any]:
    """Send a replay request; its answer (replay_started or error)."""
    await ws.send(orjson.dumps({"op": "replay", "channel": "book", **req}).decode())

    async def answer() -> dict[str, Any]:
        while True:
            msg: dict[str, Any] = orjson.loads(await ws.recv())
            if msg.get("type") in ("replay_started", "error") and msg.get("id") == req["id"]:
                return msg

    return await asyncio.wait_for(answer(), 10)


def refusal(msg: dict[str, Any]) -> tuple[str, str]:
    assert msg["type"] == "error", msg
    return msg["code"], msg["message"]


async def test_symbols_per_replay_are_capped() -> None:
    gw = dataclasses.replace(CONFIG.gateway, max_replay_symbols=1)
    async with memory_gateway(5, dataclasses.replace(CONFIG, gateway=gw)) as (rt, _b, states, _c):
        async with connect(url(rt) + "?format=json") as ws:
            two = [STREAM, "KRAKEN:BTC-USD"]
            msg = await ask(ws, id=1, symbols=two, **{"from": states[1][0], "to": states[3][0]})
            assert refusal(msg) == ("bad_request", "at most 1 symbols per replay")


async def test_replay_starts_are_rate_limited_per_connection() -> None:
    t = GatewayTime()
    async with memory_gateway(5, clock=t.clock) as (rt, _b, states, _c):
        async with connect(url(rt) + "?format=json") as ws:
            window = {"from": states[1][0], "to": states[3][0]}
            for i in range(3):  # the burst: each request takes a token, refused or not
                msg = await ask(ws, id=i, symbols=["KRAKEN:ETH-USD"], **window)
                assert refusal(msg)[0] == "unknown_symbol"
            msg = await ask(ws, id=3, symbols=[STREAM], **window)
            assert refusal(msg) == ("rate_limited", "too many replay requests")
            t.advance(1.0)  # one token back
            assert (await ask(ws, id=4, symbols=[STREAM], **window))["type"] == "replay_started"


async def test_a_running_id_is_not_reused_and_the_window_must_be_past() -> None:
    t = GatewayTime()
    async with memory_gateway(5, clock=t.clock) as (rt, _b, states, _c):
        async with connect(url(rt) + "?format=json") as ws:
            slow = {"from": states[1][0], "to": "live", "speed": 0.001}
            assert (await ask(ws, id="r", symbols=[STREAM], **slow))["type"] == "replay_started"
            msg = await ask(ws, id="r", symbols=[STREAM], **slow)
            assert refusal(msg) == ("bad_request", "a replay with id 'r' is running")
            future = {"from": states[1][0], "to": t.wall + 2_000_000_000}
            msg = await ask(ws, id="f", symbols=[STREAM], **future)
            assert refusal(msg) == ("bad_request", 'to must be in the past, or "live"')
            t.advance(1.0)  # a replay-start token back (three were taken)
            soon = {"from": states[1][0], "to": t.wall + 500_000_000}  # within a second: ok
            assert (await ask(ws, id="s", symbols=[STREAM], **soon))["type"] == "replay_started"
