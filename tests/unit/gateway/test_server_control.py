"""Control messages (gateway/server.py, docs/protocol.md §4.2) on a real server over the
memory broker: ping, subscribe and unsubscribe on every channel, resync, auth, replay
refused where replays are off; and what closes a connection: expired tokens, abuse.

Time that matters is the gateway's injected clock (``GatewayTime``), never a sleep.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import jwt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from core.market import Market
from gateway.app import Gateway, _serve
from gateway.auth import issue_token
from gateway.hub import Hub
from gateway.server import GatewayServer
from gateway.subscriptions import StreamKey, ViewKey
from mdgw.config import AuthConfig, Config
from mdgw.kafka.memory import MemoryBroker
from schemas import codec
from schemas import market_data_pb2 as pb
from tests.unit.gateway.memgw import (
    CONFIG,
    KAFKA,
    STREAM,
    GatewayTime,
    eventually,
    memory_gateway,
    url,
)
from tests.unit.kafka.memkafka import Clock, book, publisher, trade

SECRET = "control-secret-0123456789-0123456789-x"
AUTH = AuthConfig(jwt_enabled=True, jwt_secret=SECRET)
DELTAS = 5
NEXT_SEQ = DELTAS + 2
"""The sequence of the first delta after the fed history (a snapshot + DELTAS deltas)."""


def configured(auth: AuthConfig | None = None, **gateway: Any) -> Config:
    return dataclasses.replace(
        CONFIG,
        auth=auth or CONFIG.auth,
        gateway=dataclasses.replace(CONFIG.gateway, **gateway),
    )


@pytest.fixture
async def gw() -> AsyncIterator[tuple[Gateway, MemoryBroker, Clock, GatewayTime]]:
    t = GatewayTime()
    async with memory_gateway(DELTAS, clock=t.clock) as (rt, broker, _states, clock):
        yield rt, broker, clock, t


async def send(ws: ClientConnection, **msg: object) -> None:
    await ws.send(orjson.dumps(msg).decode())


async def reply(ws: ClientConnection, *types: str) -> dict[str, Any]:
    """The next message of one of ``types`` (heartbeats, statistics... are passed over)."""

    async def wait() -> dict[str, Any]:
        while True:
            msg: dict[str, Any] = orjson.loads(await ws.recv())
            if msg.get("type") in types:
                return msg

    return await asyncio.wait_for(wait(), 10)


async def until_pong(ws: ClientConnection) -> list[dict[str, Any]]:
    """Ping, and every message received up to its pong (the pong last)."""
    await send(ws, op="ping", id="sync")
    seen = []
    while True:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        seen.append(msg)
        if msg.get("type") == "pong" and msg.get("id") == "sync":
            return seen


async def error(ws: ClientConnection, **msg: object) -> tuple[str, str]:
    await send(ws, **msg)
    got = await reply(ws, "error")
    assert got.get("id") == msg.get("id")
    return got["code"], got["message"]


async def closed_with(ws: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    rcvd = info.value.rcvd
    assert rcvd is not None, "closed without a close frame"
    return rcvd.code, rcvd.reason


def publish_delta(broker: MemoryBroker, seq: int) -> None:
    part = broker.records(KAFKA.book_topic)[0].partition
    broker.send(KAFKA.book_topic, STREAM, codec.encode(book(seq)), partition=part)


def session_of(rt: Gateway) -> Any:
    (session,) = rt.hub.sessions
    return session


# ---- ping ------------------------------------------------------------------------------


async def test_ping_is_answered_with_the_gateway_time(gw) -> None:
    rt, _broker, _clock, t = gw
    async with connect(url(rt) + "?format=json") as ws:
        await send(ws, op="ping", id=7)
        pong = await reply(ws, "pong")
        assert pong == {"type": "pong", "id": 7, "timestamp": t.wall}


async def test_pings_are_answered_in_the_read_not_by_the_handler_task(gw, monkeypatch) -> None:
    """A read of nothing but pings is answered where it is read (gateway/connection.py):
    the handler's dispatch never sees them; a malformed one still goes the usual way."""
    rt, _broker, _clock, t = gw
    seen: list[str] = []
    dispatch = GatewayServer.dispatch

    def counted(self: GatewayServer, session: Any, message: str | bytes) -> None:
        seen.append(str(message))
        dispatch(self, session, message)

    monkeypatch.setattr(GatewayServer, "dispatch", counted)
    # uncompressed (a compressed frame goes through websockets, which inflates it)
    async with connect(url(rt) + "?format=json", compression=None) as ws:
        for i in range(3):
            await send(ws, op="ping", id=i)
            assert await reply(ws, "pong") == {"type": "pong", "id": i, "timestamp": t.wall}
        assert seen == []
        await send(ws, op="ping", id=[1])
        refused = await reply(ws, "error")
        assert (refused["code"], refused["message"]) == (
            "bad_request",
            "id must be an integer or a string",
        )
        assert len(seen) == 1


# ---- subscribe / unsubscribe -------------------------------------------------------------


async def test_book_subscribe_sends_a_snapshot_then_deltas_and_unsubscribe_stops_them(
    gw,
) -> None:
    rt, broker, _clock, _t = gw
    async with (
        connect(url(rt) + "?format=json") as stays,
        connect(url(rt) + "?format=json") as leaves,
    ):
        for ws in (stays, leaves):
            await send(ws, op="subscribe", id=1, channel="book", symbols=[STREAM], depth=10)
            assert (await reply(ws, "subscribed"))["symbols"] == [STREAM]
            snap = await reply(ws, "order_book_snapshot")
            assert snap["sequence"] == NEXT_SEQ - 1 and snap["depth"] == 10
        await send(leaves, op="unsubscribe", id=2, channel="book", symbols=[STREAM])
        done = await reply(leaves, "unsubscribed")
        assert (done["id"], done["channel"], done["symbols"]) == (2, "book", [STREAM])
        assert len(rt.hub.subscribers(ViewKey(False, STREAM, 10, False))) == 1
        publish_delta(broker, NEXT_SEQ)
        assert (await reply(stays, "order_book_update"))["sequence"] == NEXT_SEQ
        # the same flush would have written it to both: it is not before the pong
        assert "order_book_update" not in [m["type"] for m in await until_pong(leaves)]


async def test_aggregated_book_is_subscribed_by_symbol(gw) -> None:
    rt, _broker, _clock, _t = gw
    async with connect(url(rt) + "?format=json") as ws:
        await send(ws, op="subscribe", id=1, channel="aggregated_book", symbols=["BTC-USDT"])
        assert (await reply(ws, "subscribed"))["channel"] == "aggregated_book"
        snap = await reply(ws, "aggregated_book_snapshot", "order_book_snapshot")
        assert snap["type"] == "aggregated_book_snapshot" and snap["symbol"] == "BTC-USDT"
        assert rt.hub.views_of(session_of(rt)) == [ViewKey(True, "BTC-USDT", 20, False)]
        await send(ws, op="subscribe", id=2, channel="book", symbols=[STREAM], speed="100ms")
        await reply(ws, "order_book_snapshot")
        await send(ws, op="unsubscribe", id=3, channel="aggregated_book", symbols=["BTC-USDT"])
        await reply(ws, "unsubscribed")
        # only the aggregated view went: the book of the same symbol is another topic
        assert rt.hub.views_of(session_of(rt)) == [ViewKey(False, STREAM, 20, True)]
        assert len(rt.hub.subscribers(ViewKey(True, "BTC-USDT", 20, False))) == 0


async def test_trades_are_sent_while_subscribed(gw) -> None:
    rt, broker, clock, _t = gw
    pub = publisher(broker, KAFKA, clock)
    async with (
        connect(url(rt) + "?format=json") as stays,
        connect(url(rt) + "?format=json") as leaves,
    ):
        for ws in (stays, leaves):
            await send(ws, op="subscribe", id=1, channel="trades", symbols=[STREAM])
            await reply(ws, "subscribed")
        pub.publish(trade(1))
        for ws in (stays, leaves):
            assert (await reply(ws, "trade"))["trade_id"] == "t1"
        await send(leaves, op="unsubscribe", id=2, channel="trades", symbols=[STREAM])
        await reply(leaves, "unsubscribed")
        assert len(rt.hub.subscribers(StreamKey("trades", STREAM))) == 1
        pub.publish(trade(2))
        assert (await reply(stays, "trade"))["trade_id"] == "t2"
        assert "trade" not in [m["type"] for m in await until_pong(leaves)]


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_stats_subscribe_sends_the_current_statistics_at_once(gw, fmt: str) -> None:
    rt, _broker, _clock, _t = gw
    async with connect(f"{url(rt)}?format={fmt}") as ws:
        await send(ws, op="subscribe", id=1, channel="stats", symbols=[STREAM])
        await reply(ws, "subscribed")
        frame = await asyncio.wait_for(ws.recv(), 10)  # next: the statistics, not a timer's
        if fmt == "json":
            assert isinstance(frame, str)
            stats = orjson.loads(frame)
            assert stats["type"] == "statistics" and stats["symbol"] == "BTC-USDT"
        else:
            assert isinstance(frame, bytes)
            assert pb.MarketDataMessage.FromString(frame).statistics.symbol == "BTC-USDT"
        assert rt.hub.subs.has(session_of(rt), StreamKey("stats", STREAM))
        await send(ws, op="unsubscribe", id=2, channel="stats", symbols=[STREAM])
        await reply(ws, "unsubscribed")
        assert not rt.hub.subs.has(session_of(rt), StreamKey("stats", STREAM))


async def test_an_unknown_symbol_is_refused_and_nothing_is_subscribed(gw) -> None:
    rt, _broker, _clock, _t = gw
    async with connect(url(rt) + "?format=json") as ws:
        for channel, name in [
            ("book", "BINANCE:ETH-USDT"),
            ("trades", "KRAKEN:BTC-USDT"),
            ("aggregated_book", "ETH-USDT"),
        ]:
            code, message = await error(ws, op="subscribe", id=channel, channel=channel,
                                        symbols=[STREAM if channel != "aggregated_book"
                                                 else "BTC-USDT", name])  # fmt: skip
            assert (code, message) == ("unknown_symbol", f"unknown symbol {name}")
        assert rt.hub.subs.count(session_of(rt)) == 0  # all or nothing


async def test_subscriptions_per_connection_are_capped() -> None:
    async with memory_gateway(DELTAS, configured(max_subscriptions=2)) as (rt, *_):
        async with connect(url(rt) + "?format=json") as ws:
            await send(ws, op="subscribe", id=1, channel="book", symbols=[STREAM])
            await reply(ws, "subscribed")
            await send(ws, op="subscribe", id=2, channel="trades", symbols=[STREAM])
            await reply(ws, "subscribed")
            code, message = await error(ws, op="subscribe", id=3, channel="stats", symbols=[STREAM])
            assert (code, message) == ("too_many_subscriptions", "at most 2 per connection")
            assert rt.hub.subs.count(session_of(rt)) == 2


# ---- resync ------------------------------------------------------------------------------


async def test_resync_resends_snapshots_within_the_snapshot_budget() -> None:
    t = GatewayTime()
    cfg = configured(snapshot_rate=1.0, snapshot_burst=1)
    async with memory_gateway(DELTAS, cfg, clock=t.clock) as (rt, *_):
        async with connect(url(rt) + "?format=json") as ws:
            await send(ws, op="subscribe", id=1, channel="book", symbols=[STREAM])
            await reply(ws, "order_book_snapshot")  # the one token of the burst
            code, _ = await error(ws, op="resync", id=2, symbols=[STREAM])
            assert code == "rate_limited"
            t.advance(1.0)  # one token back
            await send(ws, op="resync", id=3, symbols=[STREAM])
            snap = await reply(ws, "order_book_snapshot", "error")
            assert snap["type"] == "order_book_snapshot" and snap["sequence"] == NEXT_SEQ - 1
            # a stream it does not hold: nothing to send, nothing charged
            await send(ws, op="resync", id=4, symbols=["KRAKEN:BTC-USD"])
            assert [m["type"] for m in await until_pong(ws)] == ["pong"]


# ---- auth --------------------------------------------------------------------------------


async def test_auth_without_auth_configured_is_acknowledged(gw) -> None:
    rt, _broker, _clock, _t = gw
    async with connect(url(rt) + "?format=json") as ws:
        await send(ws, op="auth", id=1, token="anything")
        assert await reply(ws, "authenticated", "error") == {"type": "authenticated", "id": 1}


def bearer(token: str) -> dict[str, Any]:
    return {"additional_headers": {"Authorization": f"Bearer {token}"}}


async def test_reauth_takes_a_token_of_the_same_subject_only() -> None:
    async with memory_gateway(DELTAS, configured(AUTH)) as (rt, *_):
        async with connect(
            url(rt) + "?format=json", **bearer(issue_token(AUTH, "alice", 60))
        ) as ws:
            first_exp = session_of(rt).token_exp
            renewed = issue_token(AUTH, "alice", 600, extra={"symbols": [STREAM]})
            renewed_exp = jwt.decode(renewed, options={"verify_signature": False})["exp"]
            await send(ws, op="auth", id=1, token=renewed)
            ok = await reply(ws, "authenticated", "error")
            assert ok["type"] == "authenticated" and ok["exp"] == renewed_exp > first_exp
            assert session_of(rt).claims["symbols"] == [STREAM]  # the new claims apply
            other = issue_token(AUTH, "bob", 600)
            assert await error(ws, op="auth", id=2, token=other) == (
                "unauthorized",
                "token subject differs",
            )
            assert await error(ws, op="auth", id=3, token="not.a.jwt") == (
                "unauthorized",
                "malformed token",
            )
            expired = issue_token(AUTH, "alice", -120)
            assert await error(ws, op="auth", id=4, token=expired) == (
                "unauthorized",
                "token expired",
            )
            assert session_of(rt).token_exp == ok["exp"]  # refusals change nothing


async def test_an_expired_token_closes_the_connection_1008_unless_renewed() -> None:
    t = GatewayTime()
    cfg = configured(dataclasses.replace(AUTH, jwt_leeway=0.0))
    async with memory_gateway(DELTAS, cfg, clock=t.clock) as (rt, *_):
        token = issue_token(AUTH, "alice", 60)
        exp = jwt.decode(token, options={"verify_signature": False})["exp"]
        async with (
            connect(url(rt) + "?format=json", **bearer(token)) as lapses,
            connect(url(rt) + "?format=json", **bearer(token)) as renews,
        ):
            await send(renews, op="auth", id=1, token=issue_token(AUTH, "alice", 600))
            await reply(renews, "authenticated")
            t.wall = exp * 1_000_000_000  # the last instant it is valid
            rt.server.expire_tokens()
            assert [m["type"] for m in await until_pong(lapses)] == ["pong"]
            t.advance(1)
            rt.server.expire_tokens()
            assert await closed_with(lapses) == (1008, "token expired")
            assert [m["type"] for m in await until_pong(renews)] == ["pong"]


# ---- refusals and abuse -------------------------------------------------------------------


async def test_a_binary_control_message_is_refused(gw) -> None:
    rt, _broker, _clock, _t = gw
    async with connect(url(rt) + "?format=json") as ws:
        await ws.send(orjson.dumps({"op": "ping", "id": 1}))  # bytes: a binary frame
        msg = await reply(ws, "error", "pong")
        assert (msg["type"], msg["code"]) == ("error", "bad_request")
        assert msg["message"] == "control messages are JSON text frames"


async def test_repeated_refusals_close_the_connection_1008() -> None:
    async with memory_gateway(DELTAS, configured(abuse_strikes=3)) as (rt, *_):
        async with connect(url(rt) + "?format=json") as ws:
            assert (await error(ws, op="dance", id=1))[0] == "unknown_op"
            assert (await error(ws, op="subscribe", id=2, channel="x", symbols=[STREAM]))[
                0
            ] == "unknown_channel"
            await send(ws, op="subscribe", id=3, channel="book", symbols=[STREAM])
            await reply(ws, "subscribed")  # a good message does not reset the count
            await ws.send(b"\x00")
            assert await closed_with(ws) == (1008, "repeated abuse")


async def test_control_messages_are_rate_limited_per_connection() -> None:
    t = GatewayTime()
    cfg = configured(control_rate=1.0, control_burst=3)
    async with memory_gateway(DELTAS, cfg, clock=t.clock) as (rt, *_):
        async with connect(url(rt) + "?format=json") as ws:
            for i in range(3):
                await send(ws, op="ping", id=i)
                await reply(ws, "pong")
            await send(ws, op="ping", id=3)
            refused = await reply(ws, "error", "pong")
            assert (refused["type"], refused["code"]) == ("error", "rate_limited")
            assert refused["id"] is None  # refused unread: its id is not known
            t.advance(1.0)
            await send(ws, op="ping", id=4)
            assert (await reply(ws, "pong", "error"))["type"] == "pong"


# ---- replay where it is off; replays end with their connection ---------------------------


async def test_replay_is_refused_where_replays_are_not_enabled() -> None:
    hub = Hub(Market(), high_water=CONFIG.gateway.high_water_bytes)
    server = GatewayServer(CONFIG.gateway, hub)  # no replay handler
    listeners = await _serve(CONFIG, server, False)
    try:
        port = listeners[0].sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/ws?format=json") as ws:
            for op in ("replay", "cancel_replay"):
                req = {"op": op, "id": op, "channel": "book", "symbols": [STREAM], "from": 1}
                assert await error(ws, **req) == ("bad_request", "replay is not enabled here")
    finally:
        for ws_server in listeners:
            ws_server.close()
            await ws_server.wait_closed()


async def test_closing_a_connection_cancels_its_replays() -> None:
    async with memory_gateway(DELTAS) as (rt, _broker, states, _clock):
        async with connect(url(rt) + "?format=json") as ws:
            window = {"channel": "book", "symbols": [STREAM], "from": states[1][0], "to": "live"}
            await send(ws, op="replay", id="r", speed=0.001, **window)
            await reply(ws, "replay_started")
            (task,) = session_of(rt).replays.values()
        # at speed 0.001 it would run for hours: done now means it was cancelled
        await eventually(lambda: task.done() and rt.replays.active == 0)


async def test_shutdown_aborts_a_peer_that_never_answers_the_close() -> None:
    async with memory_gateway(DELTAS) as (rt, *_):
        async with connect(url(rt)) as polite:
            # a client that completed the handshake and then stopped reading for good
            mute = await connect(url(rt))
            mute.transport.pause_reading()
            await eventually(lambda: len(rt.hub.sessions) == 2)
            server_side = [s.conn.transport for s in rt.hub.sessions]
            try:
                await rt.stop(timeout=0.4)  # grace for the close handshake: 0.1 s
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(polite.recv(), 10)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1001
                assert all(t is None or t.is_closing() for t in server_side)
            finally:
                mute.transport.abort()


async def test_a_read_of_pings_over_the_limit_stops_at_the_abuse_close() -> None:
    """Pings answered in the read keep the connection's rate limit and abuse count: a
    read of 100 pings gets its burst of pongs, refusals up to the strike limit, the
    1008 close, and nothing after."""
    from gateway.ratelimit import TokenBucket
    from gateway.session import Session
    from tests.unit.gateway.fakes import FakeConn, messages_of

    class Closable(FakeConn):
        async def close(self, code: int = 1000, reason: str = "") -> None:
            self.closed = (code, reason)

    cfg = configured(control_rate=1.0, control_burst=3, abuse_strikes=5).gateway
    server = GatewayServer(cfg, Hub(Market(), high_water=cfg.high_water_bytes))
    session = Session(Closable(), binary=False, batch=False)
    bucket = TokenBucket(cfg.control_rate, cfg.control_burst)
    assert server.answer_pings(session, bucket, [b'{"op":"ping","id":1}'] * 100)
    got = [(m["type"], m.get("code")) for m in messages_of(session.conn)]
    assert got == [("pong", None)] * 3 + [("error", "rate_limited")] * 5
    await eventually(lambda: getattr(session.conn, "closed", None) == (1008, "repeated abuse"))
