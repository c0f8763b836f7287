"""The WebSocket handshake policy (gateway/server.py) on a real server over the memory broker.

Each refusal is an HTTP status before any upgrade: 404 for another path, 503 while
catching up or shutting down, 429 past the attempts per IP or the connections per
token subject, 403 for a foreign Origin, 401 for a missing or bad token. Then the
format a client gets: subprotocol first, then ``?format=``, then the configured
default; ``?batch=`` wraps protobuf messages in a ``MarketDataBatch``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from gateway.app import Gateway
from gateway.auth import issue_token
from gateway.server import JSON_PROTOCOL, PB_PROTOCOL
from mdgw.config import AuthConfig, Config
from schemas import market_data_pb2 as pb
from tests.unit.gateway.memgw import CONFIG, STREAM, GatewayTime, eventually, memory_gateway, url

SECRET = "handshake-secret-0123456789-0123456789"
AUTH = AuthConfig(jwt_enabled=True, jwt_secret=SECRET, max_connections_per_subject=1)


def configured(auth: AuthConfig | None = None, **gateway: Any) -> Config:
    return dataclasses.replace(
        CONFIG,
        auth=auth or CONFIG.auth,
        gateway=dataclasses.replace(CONFIG.gateway, **gateway),
    )


async def refusal(address: str, **kwargs: Any) -> tuple[int, str]:
    """The status and error message of a refused handshake."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(address, **kwargs):
            pass
    response = info.value.response
    return response.status_code, orjson.loads(response.body)["error"]


async def accepted(address: str, **kwargs: Any) -> None:
    async with connect(address, **kwargs) as ws:
        await ws.ping()


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def test_only_the_ws_path_upgrades() -> None:
    async with memory_gateway(5) as (rt, *_):
        base = f"ws://127.0.0.1:{rt.port}"
        assert (await refusal(f"{base}/"))[0] == 404
        status, message = await refusal(f"{base}/stream")
        assert status == 404 and "/ws" in message
        await accepted(f"{base}/ws")


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """A plain HTTP/1.1 GET (no upgrade), as a probe or Prometheus sends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gw\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    body = await asyncio.wait_for(reader.readexactly(length), 10)
    writer.close()
    return int(head.split()[1]), body


async def test_health_and_metrics_answer_plain_http_on_the_same_port() -> None:
    async with memory_gateway(5) as (rt, *_):
        status, body = await http_get(rt.port, "/health")
        health = orjson.loads(body)
        assert status == 200 and health["ready"] is True and health["streams"] == 1
        status, body = await http_get(rt.port, "/metrics?x=1")
        assert status == 200 and b"# TYPE " in body
        rt.ready = False  # probes are answered while starting, that is what they are for
        status, body = await http_get(rt.port, "/health")
        assert status == 200 and orjson.loads(body)["ready"] is False


async def test_not_ready_and_shutting_down_are_503() -> None:
    async with memory_gateway(5) as (rt, *_):
        rt.ready = False
        assert await refusal(url(rt)) == (503, "starting: catching up with Kafka")
        rt.ready = True
        await accepted(url(rt))
        rt.server.shutting_down = True
        try:
            assert await refusal(url(rt)) == (503, "server shutting down")
        finally:
            rt.server.shutting_down = False


async def test_connection_attempts_per_ip_are_limited_per_minute() -> None:
    t = GatewayTime()
    async with memory_gateway(5, configured(connects_per_minute_per_ip=2), clock=t.clock) as (
        rt,
        *_,
    ):
        await accepted(url(rt))
        await accepted(url(rt))
        assert await refusal(url(rt)) == (429, "too many connection attempts")
        t.advance(59)
        assert (await refusal(url(rt)))[0] == 429  # the same minute
        t.advance(1)
        await accepted(url(rt))  # a new window


async def test_a_foreign_origin_is_refused_when_origins_are_listed() -> None:
    desk = "https://desk.example"
    async with memory_gateway(5, configured(allowed_origins=(desk,))) as (rt, *_):
        status, message = await refusal(url(rt), origin="https://evil.example")
        assert (status, message) == (403, "origin not allowed")
        await accepted(url(rt), origin=desk)
        await accepted(url(rt))  # no Origin: not a browser, nothing to check


async def test_any_origin_is_accepted_when_none_are_listed() -> None:
    async with memory_gateway(5) as (rt, *_):
        await accepted(url(rt), origin="https://anywhere.example")


async def test_a_missing_or_bad_token_is_401_when_auth_is_on() -> None:
    cfg = configured(AUTH)
    async with memory_gateway(5, cfg) as (rt, *_):
        assert await refusal(url(rt)) == (401, "missing token")
        assert await refusal(url(rt), **bearer("not.a.jwt")) == (401, "malformed token")
        forged = issue_token(dataclasses.replace(AUTH, jwt_secret="f" * 40), "alice", 60)
        assert await refusal(url(rt), **bearer(forged)) == (401, "bad signature")
        expired = issue_token(AUTH, "alice", -120)
        assert await refusal(url(rt), **bearer(expired)) == (401, "token expired")
        assert (await refusal(f"{url(rt)}?token={forged}"))[0] == 401
        good = issue_token(AUTH, "alice", 60)
        await accepted(url(rt), **bearer(good))
        await accepted(f"{url(rt)}?token={good}")  # browsers cannot set headers
        await eventually(lambda: rt.server.per_subject == {})  # both closed: none counted


async def test_connections_per_token_subject_are_capped() -> None:
    async with memory_gateway(5, configured(AUTH)) as (rt, *_):
        alice = bearer(issue_token(AUTH, "alice", 60))
        async with connect(url(rt), **alice):
            await eventually(lambda: rt.server.per_subject.get("alice") == 1)
            status, message = await refusal(url(rt), **alice)
            assert (status, message) == (429, "too many connections for this subject")
            await accepted(url(rt), **bearer(issue_token(AUTH, "bob", 60)))
        await eventually(lambda: "alice" not in rt.server.per_subject)
        await accepted(url(rt), **alice)


# ---- formats ---------------------------------------------------------------------------


async def first_book(ws: ClientConnection) -> str | bytes:
    """Subscribe to the stream's book and return its snapshot frame as received."""
    req = {"op": "subscribe", "id": 1, "channel": "book", "symbols": [STREAM], "depth": 10}
    await ws.send(orjson.dumps(req).decode())
    while True:
        frame = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(frame, bytes) or orjson.loads(frame).get("type") != "subscribed":
            return frame


def json_snapshot(frame: str | bytes) -> dict[str, Any]:
    assert isinstance(frame, str), "expected a JSON text frame"
    msg: dict[str, Any] = orjson.loads(frame)
    assert msg["type"] == "order_book_snapshot" and msg["symbol"] == "BTC-USDT"
    return msg


def pb_snapshot(frame: str | bytes) -> pb.OrderBookUpdate:
    assert isinstance(frame, bytes), "expected a protobuf binary frame"
    update = pb.MarketDataMessage.FromString(frame).order_book_update
    assert update.is_snapshot and update.symbol == "BTC-USDT"
    return update


async def book_frame(rt: Gateway, query: str = "", **kwargs: Any) -> str | bytes:
    async with connect(url(rt) + query, **kwargs) as ws:
        return await first_book(ws)


async def test_the_subprotocol_chooses_the_format_before_the_query() -> None:
    async with memory_gateway(5) as (rt, *_):
        async with connect(url(rt), subprotocols=[Subprotocol(JSON_PROTOCOL)]) as ws:
            assert ws.subprotocol == JSON_PROTOCOL
            json_snapshot(await first_book(ws))
        protobuf = [Subprotocol(PB_PROTOCOL)]
        async with connect(url(rt) + "?format=json", subprotocols=protobuf) as ws:
            assert ws.subprotocol == PB_PROTOCOL
            pb_snapshot(await first_book(ws))
        other = [Subprotocol("marketdata.v0.xml"), Subprotocol(JSON_PROTOCOL)]
        async with connect(url(rt), subprotocols=other) as ws:
            assert ws.subprotocol == JSON_PROTOCOL  # the first one the server speaks


async def test_the_query_chooses_the_format_else_the_configured_default() -> None:
    async with memory_gateway(5) as (rt, *_):
        json_snapshot(await book_frame(rt, "?format=json"))
        pb_snapshot(await book_frame(rt, "?format=protobuf"))
        pb_snapshot(await book_frame(rt))  # default: use_binary_protocol
        pb_snapshot(await book_frame(rt, "?format=yaml"))
    async with memory_gateway(5, configured(use_binary_protocol=False)) as (rt, *_):
        json_snapshot(await book_frame(rt))
        pb_snapshot(await book_frame(rt, "?format=protobuf"))


async def test_batch_wraps_protobuf_messages_in_a_batch() -> None:
    async with memory_gateway(5) as (rt, *_):
        bare = pb_snapshot(await book_frame(rt, "?format=protobuf&batch=false"))
        for flag in ("1", "true", "YES"):
            frame = await book_frame(rt, f"?format=protobuf&batch={flag}")
            assert isinstance(frame, bytes)
            batch = pb.MarketDataBatch.FromString(frame)
            assert len(batch.messages) == 1
            inner = batch.messages[0].order_book_update
            assert inner.is_snapshot and inner.sequence_number == bare.sequence_number
            assert list(inner.bids) == list(bare.bids) and list(inner.asks) == list(bare.asks)
