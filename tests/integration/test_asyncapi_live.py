"""Real messages of a running gateway validate against schemas/asyncapi.json.

A gateway (in-process) streams the simulator's feed from real Kafka; JSON clients
send every op, including refused ones, and capture every frame the gateway writes:
control replies, book snapshots and updates (venue and aggregated), trades,
statistics, heartbeats, bbo, candles, a resumed subscription, time-travel messages,
batched frames, error codes. Each captured message, and each request sent, must match
the document's schemas (``jsonschema``), so the document cannot drift from what the
code sends. Protobuf connections: binary data frames, JSON control replies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from schemas import market_data_pb2 as pb
from tests.integration.helpers import gateway_with_feed
from tests.unit.schemas.asyncapi_validator import errors

pytestmark = [pytest.mark.kafka]

BOOK = "BINANCE:BTC-USDT"
TAPE = "KRAKEN:BTC-USD"
STATS = "COINBASE:ETH-USD"
AGG = "BTC-USD"

LIVE_TYPES = {
    "subscribed",
    "unsubscribed",
    "pong",
    "authenticated",
    "error",
    "order_book_snapshot",
    "order_book_update",
    "aggregated_book_snapshot",
    "aggregated_book_update",
    "trade",
    "statistics",
    "heartbeat",
    "replay_started",
    "replay_complete",
    "replay_cancelled",
    "bbo",
    "candle",
}
"""What this test must capture from today's gateway."""

NAMES_13 = [f"KRAKEN:X{i}-USD" for i in range(13)]

ERROR_CODES = {
    "bad_request",
    "unknown_op",
    "unknown_channel",
    "unknown_symbol",
    "too_many_subscriptions",
    "rate_limited",
    "history_unavailable",
}


class Capture:
    """One JSON connection: every frame it receives, every request it sends."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[Any] = []
        self.sent: list[dict[str, Any]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            assert isinstance(frame, str), "JSON mode sends text frames only"
            self.frames.append(orjson.loads(frame))

    def messages(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in self.frames:
            out.extend(f if isinstance(f, list) else [f])
        return out

    async def send(self, msg: dict[str, Any] | str) -> None:
        if isinstance(msg, dict):
            self.sent.append(msg)
        await self.ws.send(msg if isinstance(msg, str) else orjson.dumps(msg).decode())

    async def reply(self, msg: dict[str, Any], *types: str, timeout: float = 10.0) -> dict:
        """Send a request and wait for the reply with its id (of one of ``types``)."""
        await self.send(msg)
        return await self.wait(lambda m: m.get("id") == msg["id"] and m["type"] in types, timeout)

    async def wait(self, pred: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages():
                if pred(m):
                    return m
            assert time.monotonic() < deadline, (
                f"not received; got {self.kinds()}; errors "
                f"{[m for m in self.messages() if m.get('type') == 'error']}"
            )
            await asyncio.sleep(0.05)

    def kinds(self) -> Counter[str]:
        return Counter(m.get("type", "?") for m in self.messages())


def live_config(config: Any) -> Any:
    gw = dataclasses.replace(
        config.gateway,
        heartbeat_interval=0.5,
        checkpoint_every_ms=1000,
        snapshot_every_ms=1000,
        max_subscriptions=12,
    )
    return dataclasses.replace(config, gateway=gw)


async def test_live_messages_match_the_asyncapi_document(config) -> None:
    async with gateway_with_feed(live_config(config), rate=400) as (_rt, url, _sim):
        async with (
            connect(url + "?format=json") as ws1,
            connect(url + "?format=json&batch=true") as ws2,
            connect(url + "?format=json") as ws3,
        ):
            main, batched, flood = Capture(ws1), Capture(ws2), Capture(ws3)
            await exercise(main, batched, flood)
            captures = (main, batched, flood)
            seen: Counter[str] = sum((c.kinds() for c in captures), Counter())
            codes = {m["code"] for c in captures for m in c.messages() if m["type"] == "error"}
            bad = [(m, e) for c in captures for m in c.frames if (e := errors(m))]
            bad_requests = [
                (r, e) for c in captures for r in c.sent if (e := errors(r, from_server=False))
            ]
            for c in captures:
                c.task.cancel()
    assert not bad, bad[:5]
    assert not bad_requests, bad_requests[:5]
    assert set(seen) >= LIVE_TYPES, LIVE_TYPES - set(seen)
    assert codes >= ERROR_CODES, ERROR_CODES - codes
    assert any(isinstance(f, list) and len(f) > 1 for f in batched.frames), "no batched frame"
    assert sum(seen.values()) > 200, seen


async def exercise(main: Capture, batched: Capture, flood: Capture) -> None:
    book = {"channel": "book", "symbols": [BOOK], "depth": 10, "speed": "raw"}
    await main.reply({"op": "subscribe", "id": 1, **book}, "subscribed")
    await main.reply(
        {"op": "subscribe", "id": 2, "channel": "aggregated_book", "symbols": [AGG], "depth": 20},
        "subscribed",
    )
    await main.reply(
        {"op": "subscribe", "id": 3, "channel": "trades", "symbols": [TAPE]}, "subscribed"
    )
    await main.reply(
        {"op": "subscribe", "id": 4, "channel": "stats", "symbols": [STATS]}, "subscribed"
    )
    # second-round channels: served or refused as unknown, either way as documented
    bbo = await main.reply(
        {"op": "subscribe", "id": 5, "channel": "bbo", "symbols": [BOOK, AGG]},
        "subscribed",
        "error",
    )
    candles = await main.reply(
        {"op": "subscribe", "id": 6, "channel": "candles", "symbols": [TAPE], "interval": "1s"},
        "subscribed",
        "error",
    )
    await main.reply({"op": "ping", "id": 7}, "pong")
    await main.reply({"op": "auth", "id": 8, "token": "no auth on this gateway"}, "authenticated")
    await main.send({"op": "resync", "id": 9, "symbols": [BOOK]})
    await batched.reply({"op": "subscribe", "id": 1, **book}, "subscribed")
    await batched.reply(
        {"op": "subscribe", "id": 2, "channel": "trades", "symbols": [TAPE, "BINANCE:BTC-USDT"]},
        "subscribed",
    )
    # resume after reconnect: a subscribe with since gets resumed in subscribed
    snap = await main.wait(lambda x: x["type"] == "order_book_snapshot")
    since = {"channel": "book", "symbols": [BOOK], "depth": 10, "since": snap["sequence"]}
    resumed = await batched.reply({"op": "subscribe", "id": 3, **since}, "subscribed")
    assert isinstance(resumed["resumed"], bool), resumed
    for m in ("statistics", "trade", "order_book_update", "aggregated_book_update", "heartbeat"):
        await main.wait(lambda x, m=m: x["type"] == m)
    if bbo["type"] == "subscribed":
        await main.wait(lambda x: x["type"] == "bbo")
    if candles["type"] == "subscribed":
        await main.wait(lambda x: x["type"] == "candle")

    # refusals: each an error with its code; the connection stays open
    refusals = [
        ("{not json", "bad_request"),
        ({"op": "dance", "id": 20}, "unknown_op"),
        ({"op": "subscribe", "id": 21, "channel": "nope", "symbols": [BOOK]}, "unknown_channel"),
        (
            {"op": "subscribe", "id": 22, "channel": "book", "symbols": ["NYSE:IBM"]},
            "unknown_symbol",
        ),
        (
            {"op": "subscribe", "id": 23, "channel": "book", "symbols": [BOOK], "depth": 7},
            "bad_request",
        ),
        (
            # capacity is checked before the names: 13 new ones are past max_subscriptions 12
            {"op": "subscribe", "id": 24, "channel": "trades", "symbols": NAMES_13},
            "too_many_subscriptions",
        ),
    ]
    for msg, code in refusals:
        if isinstance(msg, str):
            await main.ws.send(msg)
            await main.wait(lambda x: x["type"] == "error" and x["id"] is None)
        else:
            await main.ws.send(orjson.dumps(msg).decode())  # refused requests are not validated
            reply = await main.wait(lambda x, i=msg["id"]: x.get("id") == i)
            assert reply["type"] == "error" and reply["code"] == code, reply

    # time travel: a cancelled replay, a complete one, and one before the retained history;
    # the window starts after the first record of this test's fresh topics
    first = await main.wait(lambda x: x["type"] == "order_book_update")
    start = first["ingest_ts"] + 500_000_000
    while time.time_ns() < start + 2_500_000_000:
        await asyncio.sleep(0.1)
    window = {"channel": "book", "symbols": [BOOK], "depth": 10, "from": start}
    end = start + 1_500_000_000
    await main.reply({"op": "replay", "id": 30, **window, "to": end, "speed": 1}, "replay_started")
    await main.reply({"op": "cancel_replay", "id": 30}, "replay_cancelled")
    await asyncio.sleep(1.1)  # the replay-start budget
    await main.reply({"op": "replay", "id": 31, **window, "to": end, "speed": 0}, "replay_started")
    await main.wait(lambda x: x.get("id") == 31 and x["type"] in ("replay_complete", "error"))
    await asyncio.sleep(1.1)
    past = {"from": "2000-01-01T00:00:00Z", "to": "2000-01-01T00:01:00Z", "speed": 0}
    await main.send({"op": "replay", "id": 33, **window, **past})
    await main.wait(lambda x: x.get("id") == 33 and x["type"] == "error")
    await main.reply(
        {"op": "unsubscribe", "id": 32, **{k: book[k] for k in ("channel", "symbols")}},
        "unsubscribed",
    )

    # a control-message flood: rate_limited, the connection stays open
    for i in range(30):
        await flood.send({"op": "ping", "id": 100 + i})
    await flood.wait(lambda x: x["type"] == "error" and x["code"] == "rate_limited")


async def test_protobuf_connections_get_json_control_and_protobuf_data(config) -> None:
    """The document's protobufData: binary MarketDataMessage (MarketDataBatch with
    ?batch=true) frames; control replies stay JSON text and match their schemas."""
    frames: dict[bool, list[str | bytes]] = {False: [], True: []}
    async with gateway_with_feed(config, rate=400) as (_rt, url, _sim):
        for batch in (False, True):
            query = "?format=protobuf" + ("&batch=true" if batch else "")
            async with connect(url + query) as ws:
                for msg in (
                    {"op": "subscribe", "id": 1, "channel": "book", "symbols": [BOOK]},
                    {"op": "subscribe", "id": 2, "channel": "trades", "symbols": [TAPE]},
                    {"op": "ping", "id": 3},
                ):
                    await ws.send(orjson.dumps(msg).decode())
                deadline = time.monotonic() + 3.0
                while time.monotonic() < deadline:
                    try:
                        frames[batch].append(await asyncio.wait_for(ws.recv(), 0.5))
                    except TimeoutError:
                        continue
    for batch, got in frames.items():
        text = [orjson.loads(f) for f in got if isinstance(f, str)]
        assert {m["type"] for m in text} >= {"subscribed", "pong"}
        assert [e for m in text if (e := errors(m))] == []
        kinds: set[str] = set()
        for f in got:
            if isinstance(f, bytes):
                msgs = (
                    pb.MarketDataBatch.FromString(f).messages
                    if batch
                    else [pb.MarketDataMessage.FromString(f)]
                )
                kinds |= {m.WhichOneof("message") for m in msgs}
        # the control replies say why if a kind is missing (a stale book sends a status)
        assert kinds >= {"order_book_update", "trade"}, (batch, kinds, text)
