"""Tracing end to end: Publisher -> Kafka -> gateway -> broadcast, one trace in a real Jaeger.

Jaeger v2 runs from ``scripts/jaeger-local`` on ports of its own (built once per
machine from the Go module proxy; skipped with the reason when it cannot be).
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mdgw_client import MarketDataClient

from mdgw import tracing
from mdgw.config import Config
from mdgw.kafka.sink import KafkaSink
from producers.publisher import Publisher
from producers.simulate_run import run_simulator
from tests.integration.helpers import collect, started_gateway
from tests.integration.observability import free_port, run_script, stop_script

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

BOOKS = ["BINANCE:BTC-USDT", "KRAKEN:BTC-USD", "COINBASE:ETH-USD"]


@pytest.fixture
def jaeger(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Jaeger on free loopback ports; OTEL_* point the exporters at it. Yields the query URL."""
    ports = {
        "MDGW_JAEGER_OTLP_PORT": free_port(),
        "MDGW_JAEGER_OTLP_GRPC_PORT": free_port(),
        "MDGW_JAEGER_QUERY_PORT": free_port(),
        "MDGW_JAEGER_QUERY_GRPC_PORT": free_port(),
        "MDGW_JAEGER_HEALTH_PORT": free_port(),
    }
    env = {k: str(v) for k, v in ports.items()} | {"MDGW_JAEGER_DIR": str(tmp_path / "jaeger")}
    run_script("jaeger-local", ["start"], env, timeout=1800)  # the first build takes minutes
    monkeypatch.setenv(
        "OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{ports['MDGW_JAEGER_OTLP_PORT']}"
    )
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    for var in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(var, raising=False)
    tracing.reset()
    try:
        yield f"http://127.0.0.1:{ports['MDGW_JAEGER_QUERY_PORT']}"
    finally:
        tracing.reset()
        stop_script("jaeger-local", env)


def _parent(spans: dict[str, Any], span: dict[str, Any] | None) -> dict[str, Any] | None:
    """The span's CHILD_OF parent within the same trace, if any."""
    refs = [r for r in (span or {}).get("references", []) if r["refType"] == "CHILD_OF"]
    return spans.get(refs[0]["spanID"]) if refs else None


def linked_trace(data: list[dict[str, Any]], book_topic: str) -> dict[str, Any] | None:
    """The first trace where broadcast -> process -> send are parent-linked, across services."""
    for tr in data:
        services = {pid: p["serviceName"] for pid, p in tr["processes"].items()}
        spans = {s["spanID"]: s for s in tr["spans"]}
        for span in tr["spans"]:
            if span["operationName"] != "broadcast":
                continue
            proc = _parent(spans, span)
            send = _parent(spans, proc)
            if (
                proc is not None
                and send is not None
                and proc["operationName"] == f"process {book_topic}"
                and send["operationName"] == f"send {book_topic}"
                and services[span["processID"]] == tracing.GATEWAY_SERVICE
                and services[proc["processID"]] == tracing.GATEWAY_SERVICE
                and services[send["processID"]] == tracing.PRODUCER_SERVICE
                and _parent(spans, send) is None
            ):
                return tr
    return None


async def find_trace(query_url: str, book_topic: str, timeout: float = 60.0) -> dict[str, Any]:
    params = {
        "service": tracing.GATEWAY_SERVICE,
        "operation": "broadcast",
        "limit": "50",
        "lookback": "1h",
    }
    deadline = time.monotonic() + timeout
    last: Any = None
    async with httpx.AsyncClient(base_url=query_url, timeout=10) as http:
        while time.monotonic() < deadline:
            resp = await http.get("/api/traces", params=params)
            last = resp.status_code, resp.text[:300]
            if resp.status_code == 200:
                found = linked_trace(resp.json().get("data") or [], book_topic)
                if found is not None:
                    return found
            await asyncio.sleep(1.0)
    raise AssertionError(f"no linked producer -> gateway -> broadcast trace in Jaeger; last {last}")


async def test_one_trace_from_producer_through_gateway_to_broadcast(
    config: Config, jaeger: str
) -> None:
    config = dataclasses.replace(
        config, telemetry=dataclasses.replace(config.telemetry, tracing=True, trace_ratio=1.0)
    )
    sink = KafkaSink(config.kafka)
    publisher = Publisher(sink, config.kafka, telemetry=config.telemetry)
    stop = threading.Event()
    sim = dataclasses.replace(config.simulator, rate=100, duration=0, seed=11)
    feed = threading.Thread(
        target=run_simulator, args=(sim, publisher), kwargs={"stop": stop}, daemon=True
    )
    feed.start()
    rt = await started_gateway(config)
    try:
        client = MarketDataClient(f"ws://127.0.0.1:{rt.port}/ws", fmt="json")
        await client.connect()
        await client.subscribe("book", BOOKS, depth=10)
        counts = await collect(client, 4.0)
        await client.close()
        assert counts.get("book", 0) > 5, counts
    finally:
        stop.set()
        feed.join(timeout=30)
        sink.flush(30)
        await rt.stop()  # flushes the gateway's spans
    tracing.force_flush()  # and the producer's

    trace = await find_trace(jaeger, config.kafka.book_topic)
    names = {s["operationName"] for s in trace["spans"]}
    assert "encode" in names, names
    services = {p["serviceName"] for p in trace["processes"].values()}
    assert services == {tracing.PRODUCER_SERVICE, tracing.GATEWAY_SERVICE}
    send = next(s for s in trace["spans"] if s["operationName"].startswith("send "))
    tags = {t["key"]: t["value"] for t in send["tags"]}
    assert tags["messaging.system"] == "kafka"
    assert tags["span.kind"] == "producer"
    broadcast = next(s for s in trace["spans"] if s["operationName"] == "broadcast")
    btags = {t["key"]: t["value"] for t in broadcast["tags"]}
    assert btags[tracing.SUBSCRIBERS_ATTR] >= 1
