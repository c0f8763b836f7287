"""Time-travel replays on the in-memory broker: trades, cancellation, limits, refusals."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from mdgw_client import MarketDataClient
from websockets.asyncio.client import ClientConnection, connect

from mdgw.kafka.memory import MemoryBroker
from tests.unit.gateway.memgw import CONFIG, KAFKA, STREAM, events_until, memory_gateway, url
from tests.unit.kafka.memkafka import Clock, publisher, trade


@pytest.fixture
async def gw() -> AsyncIterator[Any]:
    async with memory_gateway(30) as g:
        yield g


def trades(broker: MemoryBroker, clock: Clock, first: int, n: int) -> list[int]:
    """Publish ``n`` trades 100 ms apart; returns their ingest times."""
    pub = publisher(broker, KAFKA, clock)
    out = []
    for seq in range(first, first + n):
        clock.advance(100)
        pub.publish(trade(seq, 100.0 + seq))
        out.append(clock.now_ns)
    return out


async def send(ws: ClientConnection, **msg: object) -> None:
    await ws.send(orjson.dumps(msg).decode())


async def reply(ws: ClientConnection, *types: str) -> dict[str, Any]:
    while True:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        if msg.get("type") in types:
            return msg


async def test_trades_of_a_window_are_replayed_in_order(gw) -> None:
    rt, broker, _states, clock = gw
    times = trades(broker, clock, 1, 10)
    async with MarketDataClient(url(rt), fmt="json") as c:
        await c.replay("trades", [STREAM], times[2], times[7], speed=0)
        seen = await events_until(c, "replay_complete")
    got = [ev.data for ev in seen if ev.kind == "trade"]
    assert [t["trade_id"] for t in got] == [f"t{s}" for s in range(4, 9)]
    assert all(t.get("replay") is True for t in got)


async def test_trades_to_live_join_the_live_stream(gw) -> None:
    rt, broker, _states, clock = gw
    times = trades(broker, clock, 1, 5)
    async with MarketDataClient(url(rt), fmt="json") as c:
        await c.replay("trades", [STREAM], times[0], "live", speed=0)
        seen = await events_until(c, "replay_complete")
        assert seen[-1].data["live"] is True
        trades(broker, clock, 6, 1)  # published after the hand-over: a live trade
        ev = (await events_until(c, "trade"))[-1]
        assert ev.data["trade_id"] == "t6" and not ev.data.get("replay")


async def test_cancel_and_the_limit_of_replays() -> None:
    one = dataclasses.replace(CONFIG, gateway=dataclasses.replace(CONFIG.gateway, max_replays=1))
    async with (
        memory_gateway(30, one) as (rt, _broker, states, _clock),
        connect(url(rt) + "?format=json") as ws,
    ):
        window = {"channel": "book", "symbols": [STREAM], "from": states[2][0], "to": "live"}
        await send(ws, op="replay", id="slow", speed=0.001, **window)
        assert (await reply(ws, "replay_started", "error"))["type"] == "replay_started"
        await send(ws, op="replay", id="two", **window)
        refused = await reply(ws, "replay_started", "error")
        assert refused["code"] == "rate_limited" and refused["id"] == "two"
        await send(ws, op="cancel_replay", id="slow")
        assert (await reply(ws, "replay_cancelled"))["id"] == "slow"
        await asyncio.sleep(0.05)
        assert rt.server.replays.active == 0


async def test_refused_replays(gw) -> None:
    rt, broker, states, _clock = gw
    async with connect(url(rt) + "?format=json") as ws:
        base = {"op": "replay", "channel": "book", "from": states[2][0], "to": states[5][0]}
        await send(ws, **base, id=1, symbols=["KRAKEN:ETH-USD"])
        assert (await reply(ws, "error"))["code"] == "unknown_symbol"
        await send(ws, **{**base, "from": 2**62, "to": 2**62 + 1}, id=2, symbols=[STREAM])
        assert (await reply(ws, "error"))["code"] == "bad_request"
        part = broker.records(KAFKA.book_topic)[0].partition
        broker.truncate(KAFKA.checkpoints_topic, part, 10**6)
        await send(ws, **base, id=3, symbols=[STREAM])
        err = await reply(ws, "error")
        assert err["code"] == "history_unavailable" and "checkpoint" in err["message"]
