"""/health and /metrics on the gateway port: per-address budget, /metrics rendered once a second."""

from __future__ import annotations

import orjson

from gateway.ops import OpsEndpoints


def make() -> tuple[OpsEndpoints, list[int]]:
    renders: list[int] = []

    def render() -> tuple[bytes, str]:
        renders.append(1)
        return b"metric 1\n", "text/plain"

    return OpsEndpoints(3, lambda: {"status": "healthy"}, render), renders


def test_each_address_gets_its_budget_then_429_with_retry_after() -> None:
    ops, _ = make()
    codes = [ops.respond("/health", "198.51.100.1", 10.0).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    refused = ops.respond("/metrics", "198.51.100.1", 10.5)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert ops.respond("/health", "198.51.100.2", 10.5).status_code == 200  # another address
    assert ops.respond("/health", "198.51.100.1", 11.0).status_code == 200  # next second
    ok = ops.respond("/health", "198.51.100.3", 11.0)
    assert orjson.loads(ok.body) == {"status": "healthy"}


def test_ipv6_addresses_of_one_64_share_a_budget() -> None:
    ops, _ = make()
    codes = [ops.respond("/health", f"2001:db8::{i}", 1.0).status_code for i in range(1, 5)]
    assert codes == [200, 200, 200, 429]


def test_metrics_render_at_most_once_per_second_whoever_asks() -> None:
    ops, renders = make()
    for i in range(50):
        r = ops.respond("/metrics", f"10.0.{i // 250}.{i % 250}", 100.0 + i * 0.01)
        assert r.status_code == 200 and r.body == b"metric 1\n"
    assert len(renders) == 1
    ops.respond("/metrics", "10.1.0.1", 101.0)
    assert len(renders) == 2
