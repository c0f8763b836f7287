"""The candles channel on a whole gateway over the in-memory broker, JSON and protobuf."""

from __future__ import annotations

import asyncio
import random
import time

import orjson
import pytest
from mdgw_client import MarketDataClient
from websockets.asyncio.client import connect

from core.candles import CLOSE_GRACE_NS, INTERVALS, base_ns, candles_of_parts, fold_parts
from core.stats import SECOND_NS
from core.types import Exchange, Trade
from gateway.candles import CandleKey
from tests.unit.gateway.memgw import KAFKA, STREAM, GatewayTime, eventually, memory_gateway, url
from tests.unit.kafka.memkafka import publisher


def reference(trades: list[Trade], interval: str) -> list[tuple[int, float, float, float, float]]:
    width = INTERVALS[interval]
    part = base_ns(width)
    out = candles_of_parts(fold_parts(trades, part).items(), part, width)
    return [(i * width, b.open, b.close, b.volume, b.quote_volume) for i, b in out]


def key(c: dict) -> tuple[int, float, float, float, float]:
    return (c["open_time"], c["open"], c["close"], c["volume"], c["quote_volume"])


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
@pytest.mark.parametrize("interval", ["1s", "1m"])
async def test_candles_follow_the_trades(fmt: str, interval: str) -> None:
    async with memory_gateway() as (rt, broker, _states, clock):
        pub = publisher(broker, KAFKA, clock)
        rnd = random.Random(5)
        trades: list[Trade] = []
        base = clock.ns() // (60 * SECOND_NS) * 60 * SECOND_NS + 50 * SECOND_NS

        def trade(i: int) -> Trade:
            ts = base + i * 700_000_000  # 0.7 s apart: crosses seconds and a minute
            price, qty = round(100 + rnd.uniform(-1, 1), 2), round(rnd.uniform(0.01, 1), 4)
            t = Trade(Exchange.BINANCE, "BTC-USDT", ts, f"t{i}", price, qty, "buy", i + 1)
            trades.append(t)
            pub.publish(t)
            return t

        for i in range(5):  # before the subscription: the open candle must hold them
            trade(i)
        await eventually(lambda: rt.market.counters(STREAM).trades == 5)  # type: ignore[union-attr]
        async with MarketDataClient(url(rt), fmt=fmt, reconnect=False) as client:
            await client.subscribe("candles", [STREAM], interval=interval)
            series = client.candles[(STREAM, interval)]
            seen: list[dict] = []

            async def read() -> None:
                async for ev in client.events():
                    if ev.kind == "candle":
                        seen.append(ev.data)

            reader = asyncio.create_task(read())
            await eventually(lambda: seen)
            width = INTERVALS[interval]
            first = seen[0]
            assert not first["closed"]
            assert key(first) == reference(trades, interval)[-1]  # on subscribe: the open one
            for i in range(5, 40):
                trade(i)
            await eventually(
                lambda: seen[-1]["trades"] and key(seen[-1]) == reference(trades, interval)[-1]
            )
            # one message per trade after subscribing, plus one closed per interval it ended
            closed = [c for c in seen if c["closed"]]
            want = [c for c in reference(trades, interval) if c[0] >= first["open_time"]]
            assert [key(c) for c in closed] == want[: len(closed)]
            assert len(closed) >= len(want) - 1
            assert len(seen) == 1 + 35 + len(closed)
            assert all(c["close_time"] == c["open_time"] + width - 1 for c in seen)
            assert series.open == seen[-1] or series.closed[-1] == seen[-1]
            reader.cancel()


async def test_a_quiet_interval_is_closed_by_the_timer() -> None:
    t = GatewayTime()
    async with memory_gateway(clock=t.clock) as (rt, broker, _states, clock):
        pub = publisher(broker, KAFKA, clock)
        ts = clock.ns()
        pub.publish(Trade(Exchange.BINANCE, "BTC-USDT", ts, "q1", 100.0, 1.0, "sell", 1))
        await eventually(lambda: rt.market.counters(STREAM).trades == 1)  # type: ignore[union-attr]
        # the market noted the trade's arrival on the system clock: the gateway's clock
        # starts from there, then moves only when the test moves it
        t.wall = time.time_ns()
        async with connect(url(rt) + "?format=json") as ws:
            sub = {"op": "subscribe", "id": 1, "channel": "candles", "symbols": [STREAM]}
            await ws.send(orjson.dumps({**sub, "interval": "1s"}).decode())
            reply = orjson.loads(await ws.recv())
            assert reply == {
                "type": "subscribed",
                "id": 1,
                "channel": "candles",
                "symbols": [STREAM],
                "interval": "1s",
            }
            msgs: list[dict] = []

            async def two_candles() -> None:
                while len(msgs) < 2:
                    m = orjson.loads(await ws.recv())
                    if m["type"] == "candle":
                        msgs.append(m)
                        # the interval (1 s) and the close grace (2 s) pass on the gateway's clock
                        t.advance((SECOND_NS + CLOSE_GRACE_NS) / 1e9)

            await asyncio.wait_for(two_candles(), 10)
            assert [m["closed"] for m in msgs] == [False, True]  # no trade after: the timer
            assert msgs[1]["trades"] == 1 and msgs[1]["open_time"] == ts // SECOND_NS * SECOND_NS


@pytest.mark.parametrize(
    "extra",
    [{}, {"interval": "2m"}, {"interval": 60}],
)
async def test_a_bad_interval_is_a_bad_request(extra: dict) -> None:
    async with memory_gateway() as (rt, _broker, _states, _clock):
        async with connect(url(rt) + "?format=json") as ws:
            sub = {"op": "subscribe", "id": 3, "channel": "candles", "symbols": [STREAM]}
            await ws.send(orjson.dumps({**sub, **extra}).decode())
            reply = orjson.loads(await ws.recv())
            assert reply["type"] == "error" and reply["code"] == "bad_request" and reply["id"] == 3
            assert "1s 1m 5m 15m 1h 4h 1d" in reply["message"]


async def test_unsubscribe_drops_the_builder() -> None:
    async with memory_gateway() as (rt, _broker, _states, _clock):
        async with connect(url(rt) + "?format=json") as ws:
            for interval in ("1m", "5m"):
                sub = {"op": "subscribe", "channel": "candles", "symbols": [STREAM]}
                await ws.send(orjson.dumps({**sub, "interval": interval}).decode())
                await ws.recv()
            assert len(rt.hub.candles.builders) == 2
            unsub = {"op": "unsubscribe", "channel": "candles", "symbols": [STREAM]}
            await ws.send(orjson.dumps(unsub).decode())
            assert orjson.loads(await ws.recv())["type"] == "unsubscribed"
            assert rt.hub.candles.builders == {} and rt.hub.subs.channel("candles") == {}


async def test_a_client_leaving_drops_its_builders() -> None:
    async with memory_gateway() as (rt, _broker, _states, _clock):
        async with connect(url(rt) + "?format=protobuf") as ws:
            sub = {"op": "subscribe", "channel": "candles", "symbols": [STREAM], "interval": "1h"}
            await ws.send(orjson.dumps(sub).decode())
            await ws.recv()
            assert list(rt.hub.candles.builders) == [CandleKey(STREAM, "1h")]
        await eventually(lambda: not rt.hub.candles.builders)
