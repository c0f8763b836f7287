"""Connection limits: address groups, counting inside the handshake, the open-file limit."""

from __future__ import annotations

import asyncio
import dataclasses
import resource

import pytest
from websockets.datastructures import Headers
from websockets.http11 import Request

from core.market import Market
from gateway.hub import Hub
from gateway.limits import ConnectionCounter, address_group, raise_open_file_limit
from gateway.server import GatewayServer
from mdgw.config import GatewayConfig


def test_ipv6_is_grouped_by_64_and_ipv4_mapped_is_ipv4() -> None:
    assert address_group("203.0.113.7") == "203.0.113.7"
    a = address_group("2001:db8:1:2:aaaa::1")
    assert a == address_group("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    assert address_group("2001:db8:1:3::1") != a
    assert address_group("::ffff:203.0.113.7") == "203.0.113.7"
    assert address_group("fe80::1%eth0") == "fe80::/64"
    assert address_group("") == ""


def test_counter_caps_per_group_and_in_total() -> None:
    c = ConnectionCounter(total_cap=3, per_group=2)
    assert c.acquire("a") is None and c.acquire("a") is None
    assert c.acquire("a") == "address"
    assert c.acquire("b") is None
    assert c.acquire("c") == "full"
    c.release("a")
    c.release("zz")  # unknown: ignored, never negative
    assert c.total == 2 and c.acquire("c") is None
    assert ConnectionCounter(10, 0).acquire("x") is None  # 0: no per-group cap


class FakeConn:
    def __init__(self, ip: str) -> None:
        self.remote_address = (ip, 40000)
        self.connection_lost_waiter = asyncio.get_running_loop().create_future()


def _server(**gw: object) -> GatewayServer:
    cfg = dataclasses.replace(GatewayConfig(), connects_per_minute_per_ip=0, **gw)
    return GatewayServer(cfg, Hub(Market(), high_water=1000))


def _handshake(server: GatewayServer, conn: FakeConn) -> int | None:
    response = server.process_request(conn, Request("/ws", Headers()))  # type: ignore[arg-type]
    return None if response is None else response.status_code


async def test_simultaneous_handshakes_cannot_overshoot_the_per_ip_cap() -> None:
    server = _server(max_connections_per_ip=3)
    conns = [FakeConn(f"2001:db8::{i:x}") for i in range(1, 6)]  # one /64
    # five handshakes in flight, none has reached the connection handler yet
    assert [_handshake(server, c) for c in conns] == [None, None, None, 429, 429]
    assert _handshake(server, FakeConn("2001:db8:0:1::1")) is None  # another /64
    conns[0].connection_lost_waiter.set_result(None)  # one closes (or its handshake failed)
    await asyncio.sleep(0)
    assert _handshake(server, FakeConn("2001:db8::99")) is None
    assert _handshake(server, FakeConn("2001:db8::9a")) == 429


async def test_max_connections_counts_handshakes_in_flight() -> None:
    server = _server(max_connections=2, max_connections_per_ip=0)
    assert [_handshake(server, FakeConn(f"10.0.0.{i}")) for i in range(3)] == [None, None, 503]


def test_open_file_limit_is_raised_to_the_hard_limit(caplog: pytest.LogCaptureFixture) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY and hard > 64:
            resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
            with caplog.at_level("INFO", logger="gateway.limits"):
                assert raise_open_file_limit() == (hard, hard)
            assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == hard
            assert "raised from 64" in caplog.text
        else:
            assert raise_open_file_limit()[0] >= soft
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_open_file_limit_stays_when_raising_it_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(_which: int, _limits: tuple[int, int]) -> None:
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (256, 4096))
    monkeypatch.setattr(resource, "setrlimit", refuse)
    with caplog.at_level("WARNING", logger="gateway.limits"):
        assert raise_open_file_limit() == (256, 4096)
    assert "stays 256 (raising to 4096 failed: not allowed)" in caplog.text


def test_an_unlimited_hard_limit_raises_to_a_million(monkeypatch: pytest.MonkeyPatch) -> None:
    set_to: list[tuple[int, int]] = []
    monkeypatch.setattr(resource, "getrlimit", lambda _which: (1024, resource.RLIM_INFINITY))
    monkeypatch.setattr(resource, "setrlimit", lambda _which, limits: set_to.append(limits))
    assert raise_open_file_limit() == (1_048_576, resource.RLIM_INFINITY)
    assert set_to == [(1_048_576, resource.RLIM_INFINITY)]


def test_an_open_file_limit_already_at_the_hard_limit_is_left(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never(_which: int, _limits: tuple[int, int]) -> None:
        raise AssertionError("setrlimit called")

    monkeypatch.setattr(resource, "getrlimit", lambda _which: (4096, 4096))
    monkeypatch.setattr(resource, "setrlimit", never)
    assert raise_open_file_limit() == (4096, 4096)
