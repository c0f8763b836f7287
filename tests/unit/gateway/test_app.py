"""Gateway wiring (gateway/app.py) on the memory broker: TLS on the WebSocket port, and
timers that survive a failing tick."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import gc
import logging
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage

from gateway.app import _every, tls_context
from gateway.connection import GatewayConnection
from gateway.server import CATCH_UP_WAIT_S
from gateway.session import Session
from mdgw.kafka.client import Record
from mdgw.kafka.memory import MemoryBroker, MemorySource
from tests.unit.gateway.memgw import (
    CONFIG,
    KAFKA,
    STREAM,
    eventually,
    memory_gateway,
    url,
)
from tests.unit.kafka.memkafka import book, publisher

SUBSCRIBE = f'{{"op":"subscribe","id":1,"channel":"book","symbols":["{STREAM}"],"depth":10}}'


@pytest.fixture
def idle_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway switches to the idle fetch as soon as it has no client (not after 5 s)."""
    from gateway import app as gateway_app

    monkeypatch.setattr(gateway_app, "IDLE_AFTER_S", 0.0)


def self_signed(tmp: Path) -> tuple[str, str]:
    """A certificate for localhost and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_no_certificate_means_no_tls() -> None:
    assert tls_context("", "") is None


async def test_wss_with_the_configured_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    gw = dataclasses.replace(CONFIG.gateway, tls_cert=cert, tls_key=key)
    async with memory_gateway(5, dataclasses.replace(CONFIG, gateway=gw)) as (rt, *_):
        trusted = ssl.create_default_context(cafile=cert)
        async with connect(f"wss://localhost:{rt.port}/ws", ssl=trusted) as ws:
            await ws.ping()
        with pytest.raises(ssl.SSLCertVerificationError):
            await connect(f"wss://localhost:{rt.port}/ws", ssl=ssl.create_default_context())
        with pytest.raises(InvalidMessage):  # plain HTTP to a TLS port: no handshake
            await asyncio.wait_for(connect(f"ws://localhost:{rt.port}/ws"), 10)


async def test_a_timer_logs_a_failing_tick_and_keeps_ticking(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ticks = 0
    third = asyncio.Event()

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        if ticks == 1:
            raise RuntimeError("boom")
        if ticks == 3:
            third.set()

    timer = asyncio.create_task(_every(0, tick))
    try:
        await asyncio.wait_for(third.wait(), 10)
    finally:
        timer.cancel()
    assert "timer tick failed" in caplog.text and "boom" in caplog.text


def test_every_collection_pause_is_a_metric() -> None:
    from prometheus_client import REGISTRY

    from gateway.app import watch_gc

    def count(gen: int) -> float:
        value = REGISTRY.get_sample_value(
            "gateway_gc_pause_seconds_count", {"generation": str(gen)}
        )
        return value or 0.0

    watch_gc()
    watch_gc()  # once per process, however many gateways start
    gc.disable()  # no automatic collection in between
    try:
        before = [count(g) for g in range(3)]
        gc.collect()
        gc.collect(0)
        assert [count(g) - b for g, b in enumerate(before)] == [1.0, 0.0, 1.0]
    finally:
        gc.enable()


def block_the_gateway_loop(seconds: float) -> None:
    time.sleep(seconds)  # a synchronous call on the loop: what a stall report names


async def test_a_held_loop_is_counted_and_logged_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from prometheus_client import REGISTRY

    def stalls() -> float:
        return REGISTRY.get_sample_value("gateway_loop_stalls_total") or 0.0

    gw = dataclasses.replace(CONFIG.gateway, stall_ms=150)
    async with memory_gateway(5, dataclasses.replace(CONFIG, gateway=gw)) as (rt, *_):
        caplog.set_level(logging.WARNING, logger="gateway.stalls")
        before = stalls()
        await asyncio.sleep(0.2)
        block_the_gateway_loop(0.5)
        await asyncio.sleep(0.2)
        assert stalls() - before == 1
        [record] = [r for r in caplog.records if r.name == "gateway.stalls"]
        assert "event loop held for" in record.getMessage()
        assert "block_the_gateway_loop" in record.getMessage()
    assert rt.stalls._thread is None  # stopped with the gateway


async def test_every_connection_counts_for_the_collector_policy() -> None:
    async with memory_gateway(5) as (rt, *_):
        open0, closed0 = GatewayConnection.counts()
        async with connect(url(rt)):
            await eventually(lambda: GatewayConnection.counts()[0] == open0 + 1)
        await eventually(lambda: GatewayConnection.counts()[1] == closed0 + 1)

        def health() -> None:
            with urllib.request.urlopen(f"http://127.0.0.1:{rt.port}/health", timeout=5) as r:
                r.read()

        await asyncio.to_thread(health)  # an HTTP request on the port is a connection too
        await eventually(lambda: GatewayConnection.counts()[1] == closed0 + 2)
        assert GatewayConnection.counts()[0] == open0


def _alive(cls: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is cls)  # (isinstance trips on weak proxies)


async def test_a_closed_connection_is_freed_without_a_full_collection() -> None:
    """No reference cycle keeps a closed connection (WebSocket or HTTP) or its session,
    however it ended: thousands of them would otherwise wait for a whole-heap walk
    (gateway/gcpolicy.py)."""
    async with memory_gateway(5) as (rt, *_):
        rt.gc_policy.uninstall()
        gc.collect()
        gc.disable()  # from here only reference counting frees anything
        try:
            before = _alive(GatewayConnection), _alive(Session)
            async with connect(url(rt)) as ws:  # the client closes
                await ws.send(SUBSCRIBE)
                await ws.recv()
                await ws.send('{"op":"ping","id":2}')  # answered in the read
                await ws.recv()
                await eventually(lambda: _alive(Session) == before[1] + 1)
            async with connect(url(rt)) as ws:  # the server closes (1007: invalid UTF-8)
                await ws.send(b"\xff", text=True)
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
            ws = await connect(url(rt))  # the client vanishes (no close frame)
            await ws.send(SUBSCRIBE)
            await ws.recv()
            ws.transport.abort()

            def health() -> None:
                with urllib.request.urlopen(f"http://127.0.0.1:{rt.port}/health", timeout=5) as r:
                    r.read()

            await asyncio.to_thread(health)
            await eventually(lambda: (_alive(GatewayConnection), _alive(Session)) == before)
        finally:
            gc.enable()


async def test_survivors_of_a_full_collection_are_frozen_once_ready() -> None:
    async with memory_gateway(5) as (rt, *_):
        assert rt.gc_policy.installed  # caught up: installed with the start-up freeze
        before = rt.gc_policy.freezes
        gc.collect()
        await eventually(lambda: rt.gc_policy.freezes == before + 1)  # the next loop beat
    assert not rt.gc_policy.installed


@pytest.mark.usefixtures("idle_at_once")
async def test_the_fetch_is_idle_without_clients_and_eager_from_the_first_one(
    monkeypatch,
) -> None:
    """The pacer (gateway/app.py): no client -> the bulk fetch; a client connecting
    switches back at once (not at the next housekeeping tick), and it goes idle again
    once the last one has left."""
    async with memory_gateway() as (rt, _broker, _history, _clock):
        await eventually(lambda: rt.consumer.idle)
        asked: list[bool] = []
        pace = rt.consumer.pace
        monkeypatch.setattr(rt.consumer, "pace", lambda idle: (asked.append(idle), pace(idle)))
        async with connect(url(rt)) as ws:
            await ws.send(SUBSCRIBE)
            await ws.recv()
            assert asked[:1] == [False]  # asked by the connection itself
            await eventually(lambda: not rt.consumer.idle)
            await asyncio.sleep(0.7)  # a housekeeping tick with a client: still eager
            assert not rt.consumer.idle
            assert asked.count(False) >= 2  # asked again each tick (a failed switch retries)
        await eventually(lambda: rt.consumer.idle)


async def test_timers_that_serve_clients_sleep_while_there_is_none() -> None:
    """Heartbeats (like the freshness check, statistics, candles) never fire with no
    client connected, the first one wakes them, and they sleep again once it has left;
    the conflation tick goes on while a view is kept for resumes, and forgets it."""
    gw = dataclasses.replace(CONFIG.gateway, heartbeat_interval=0.2, resume_ms=300)
    async with memory_gateway(config=dataclasses.replace(CONFIG, gateway=gw)) as (rt, *_):
        slices: list[int] = []
        beat = rt.hub.heartbeat_slice
        rt.hub.heartbeat_slice = lambda *a: (slices.append(1), beat(*a))[1]  # type: ignore[method-assign]
        await asyncio.sleep(0.3)  # 30 heartbeat periods
        assert slices == []
        async with connect(url(rt)) as ws:
            await ws.send(SUBSCRIBE)
            await ws.recv()
            await eventually(lambda: len(slices) >= 3)
        await eventually(lambda: not rt.hub.sessions)
        assert rt.hub.keeps_idle_views()  # the view stays for a resume...
        await eventually(lambda: not rt.hub.keeps_idle_views() and not rt.hub.views)  # ...then goes
        await asyncio.sleep(0.1)  # a tick under way when the client left may still fire
        after = len(slices)
        await asyncio.sleep(0.3)
        assert len(slices) == after


class HeldWhileIdle:
    """Reading clients over the in-memory broker; the idle fetch's hand out nothing, as a
    bulk fetch the broker has not answered yet (it would, after kafka.idle_fetch_wait_ms)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker

    def __call__(self, group_id: str, **asked: Any) -> MemorySource:
        source = self.broker(group_id, on_error=asked.get("on_error"))
        if asked.get("settings") is not None:  # only the idle fetch has its own settings

            def held(max_records: int, timeout: float) -> list[Record]:
                time.sleep(timeout)
                return []

            source.consume = held  # type: ignore[method-assign]
        return source


@pytest.mark.usefixtures("idle_at_once")
async def test_the_first_client_after_the_idle_fetch_gets_current_books() -> None:
    """Records an idle gateway's bulk fetch still holds are in the first client's
    snapshot: its subscribe waits until the eager fetch that replaces the idle one has
    brought them in (not a book that old, then the rest as a burst of deltas)."""
    async with memory_gateway(sources=HeldWhileIdle) as (rt, broker, states, clock):
        await eventually(lambda: rt.consumer.idle)
        last = len(states)  # the history's sequences are 1..last
        pub = publisher(broker, KAFKA, clock)
        for seq in range(last + 1, last + 6):
            clock.advance(100)
            pub.publish(book(seq))
        await asyncio.sleep(0.3)
        book_now = rt.market.book(STREAM)
        assert book_now is not None and book_now.sequence == last  # held by the idle fetch
        started = time.monotonic()
        async with connect(url(rt) + "?format=json") as ws:
            await ws.send(SUBSCRIBE)
            msgs: list[dict[str, Any]] = []
            while len(msgs) < 2:
                msg = orjson.loads(await ws.recv())
                if msg["type"] != "heartbeat":  # timers do not wait for the books
                    msgs.append(msg)
        waited = time.monotonic() - started
    assert msgs[0]["type"] == "subscribed"
    assert msgs[1]["type"] == "order_book_snapshot" and msgs[1]["sequence"] == last + 5
    assert waited < CATCH_UP_WAIT_S  # brought in by the eager fetch, not the bound


@pytest.mark.usefixtures("idle_at_once")
async def test_a_switch_back_that_never_comes_delays_one_answer_not_every_one(
    monkeypatch,
) -> None:
    """If the eager fetch never takes over (the switch keeps failing), the first request
    waits CATCH_UP_WAIT_S and then requests stop waiting for the books."""
    async with memory_gateway() as (rt, *_):
        await eventually(lambda: rt.consumer.idle)
        monkeypatch.setattr(rt.consumer, "_repace", lambda: None)  # stays idle
        async with connect(url(rt) + "?format=json") as ws:
            await ws.send(SUBSCRIBE)
            while orjson.loads(await ws.recv())["type"] != "subscribed":
                pass  # heartbeats do not wait for the books
            assert rt.server.books_current.is_set()
