"""Metrics end to end: a real Prometheus scrapes a running gateway (and the API).

Prometheus comes from ``scripts/prometheus-local`` (Debian's package) on a free
port with its own data dir; skipped with the reason when the binary is absent
(a failure under ``--strict-skips``, as on CI). The gateway and API run in-process.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from mdgw_client import MarketDataClient

from mdgw.config import Config
from tests.integration.helpers import gateway_with_feed
from tests.integration.observability import free_port, run_script, stop_script
from tests.unit.test_compose import exprs, load_dashboard

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

HAS_API = importlib.util.find_spec("api.main") is not None


@pytest.fixture
def prometheus(tmp_path: Any) -> Iterator[tuple[str, Callable[..., None]]]:
    """(query URL, start(*targets)): a Prometheus on a free port, scraping every second."""
    env = {
        "MDGW_PROMETHEUS_PORT": str(free_port()),
        "MDGW_PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "MDGW_PROMETHEUS_SCRAPE_INTERVAL": "1s",
    }

    def start(*targets: str) -> None:
        run_script("prometheus-local", ["start", *targets], env, timeout=120)

    try:
        yield f"http://127.0.0.1:{env['MDGW_PROMETHEUS_PORT']}", start
    finally:
        stop_script("prometheus-local", env)


async def query(
    url: str, promql: str, ok: Callable[[list[dict[str, Any]]], bool], timeout: float = 45.0
) -> list[dict[str, Any]]:
    """Poll the instant-query API until ``ok(result)``; targets appear after ~5 s."""
    deadline = time.monotonic() + timeout
    result: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while time.monotonic() < deadline:
            resp = await http.get("/api/v1/query", params={"query": promql})
            resp.raise_for_status()
            result = resp.json()["data"]["result"]
            if ok(result):
                return result
            await asyncio.sleep(0.5)
    raise AssertionError(f"{promql}: no acceptable answer in {timeout}s; last {result}")


def by_job(result: list[dict[str, Any]]) -> dict[str, float]:
    return {r["metric"].get("job", ""): float(r["value"][1]) for r in result}


async def test_prometheus_scrapes_gateway_and_api(config: Config, prometheus: Any) -> None:
    url, start = prometheus
    async with gateway_with_feed(config, rate=200) as (rt, ws_url, _sim):
        client = MarketDataClient(ws_url, fmt="json")
        await client.connect()
        await client.subscribe("book", ["BINANCE:BTC-USDT"], depth=10)
        api = None
        targets = [f"gateway=127.0.0.1:{rt.port}"]
        if HAS_API:
            from api.main import start_api

            api = await start_api(config)
            targets.append(f"api=127.0.0.1:{api.port}")
        try:
            await asyncio.to_thread(start, *targets)
            up = await query(url, "up", lambda r: len(r) == len(targets))
            assert all(v == 1.0 for v in by_job(up).values()), up
            active = await query(
                url,
                'ws_connections_active{job="gateway"}',
                lambda r: bool(r) and float(r[0]["value"][1]) >= 1,
            )
            assert float(active[0]["value"][1]) >= 1
            consumed = await query(
                url,
                f'kafka_records_consumed_total{{job="gateway",topic="{config.kafka.book_topic}"}}',
                lambda r: bool(r) and float(r[0]["value"][1]) > 0,
            )
            assert consumed
            await query(
                url,
                'message_broadcast_latency_seconds_count{job="gateway"}',
                lambda r: bool(r) and float(r[0]["value"][1]) > 0,
            )
            await query(url, 'gateway_loop_stalls_total{job="gateway"}', bool)
            # every query of the Grafana dashboard (deploy/) runs on a real Prometheus
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                for expr in exprs(load_dashboard()):
                    resp = await http.get("/api/v1/query", params={"query": expr})
                    assert resp.status_code == 200, (expr, resp.text)
                    assert resp.json()["status"] == "success", (expr, resp.text)
            if api is not None:
                async with httpx.AsyncClient(base_url=api.url, timeout=5) as http:
                    await http.get("/api/v1/symbols")
                await query(
                    url,
                    'api_requests_total{job="api"}',
                    lambda r: bool(r),
                )
        finally:
            await client.close()
            if api is not None:
                await api.stop()
