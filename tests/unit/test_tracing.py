"""Tracing hooks without services: producer spans and headers, gateway spans, API plugin."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from core.market import Market
from core.types import BookUpdate, Exchange
from gateway.hub import Hub, ViewKey
from gateway.session import Session
from mdgw import tracing
from mdgw.config import KafkaConfig, TelemetryConfig, load_config
from mdgw.kafka.headers import TRACEPARENT, header
from mdgw.kafka.sink import MemorySink
from mdgw.kafka.source import Record
from mdgw.materializer import Materializer
from producers.publisher import Publisher
from tests.unit.gateway.fakes import FakeConn, frames_of

CFG = KafkaConfig()
STREAM = "BINANCE:BTC-USDT"


@pytest.fixture(autouse=True)
def clean_tracing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("MDGW_TELEMETRY_TRACING", raising=False)
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    tracing.reset()
    yield
    tracing.reset()


def on(ratio: float = 1.0) -> TelemetryConfig:
    return TelemetryConfig(tracing=True, trace_ratio=ratio)


def exporter_for(*services: str, ratio: float = 1.0) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    for service in services:
        tracing.setup(on(ratio), service, exporter=exporter, batch=False)
    return exporter


def updates(n: int) -> list[BookUpdate]:
    """A snapshot then n-1 deltas of one stream."""
    out = [
        BookUpdate(
            Exchange.BINANCE,
            "BTC-USDT",
            1,
            100,
            bids=[(99.0, 1.0), (98.0, 2.0)],
            asks=[(101.0, 1.0), (102.0, 2.0)],
            is_snapshot=True,
        )
    ]
    for i in range(1, n):
        out.append(
            BookUpdate(
                Exchange.BINANCE,
                "BTC-USDT",
                1 + i,
                100 + i,
                bids=[(99.0, 1.0 + i)],
                prev_sequence=99 + i,
            )
        )
    return out


def published(n: int, telemetry: TelemetryConfig | None = None) -> list[Record]:
    sink = MemorySink()
    pub = Publisher(sink, CFG, telemetry=telemetry)
    for u in updates(n):
        pub.publish(u)
    return [
        Record(topic, 0, i, key.encode(), value, headers, 0, 0)  # type: ignore[union-attr]
        for i, (topic, key, value, headers) in enumerate(sink.records)
    ]


def fake_session(binary: bool = False) -> Session:
    return Session(FakeConn(), binary=binary, batch=False)


def gateway(subscribers: int = 2) -> tuple[Materializer, Hub, list[Session]]:
    market = Market()
    hub = Hub(market)
    mat = Materializer(market, CFG, on_book=hub.on_book)
    return mat, hub, [fake_session(binary=i % 2 == 1) for i in range(subscribers)]


def subscribe(hub: Hub, sessions: list[Session]) -> None:
    for s in sessions:
        hub.sessions.add(s)
        assert hub.add_view(s, ViewKey(False, STREAM, 10, False))


def traceparent_of(rec: Record) -> str:
    raw = header(rec.headers, TRACEPARENT)
    assert raw is not None
    return raw.decode()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


# ---- off ---------------------------------------------------------------------------


def test_off_by_default_no_headers_no_sdk_state() -> None:
    records = published(3)
    assert tracing.ENABLED is False
    assert all(r.headers is None for r in records)
    assert tracing.setup(TelemetryConfig(), tracing.GATEWAY_SERVICE) is None
    assert tracing.api_tracing_plugins(TelemetryConfig()) == []


def test_env_switch_turns_the_producer_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MDGW_TELEMETRY_TRACING", "1")
    monkeypatch.setenv("MDGW_TELEMETRY_TRACE_RATIO", "0")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    records = published(2)
    assert tracing.ENABLED is True
    assert all(traceparent_of(r).endswith("-00") for r in records)


def test_sdk_disabled_wins() -> None:
    env = {"MDGW_TELEMETRY_TRACING": "1", "OTEL_SDK_DISABLED": "true"}
    telemetry = load_config(env=env).telemetry
    assert telemetry.tracing is False
    assert tracing.setup(telemetry, tracing.PRODUCER_SERVICE) is None
    assert tracing.ENABLED is False


# ---- producer ----------------------------------------------------------------------


def test_sampled_record_has_a_producer_span_and_its_traceparent() -> None:
    exporter = exporter_for(tracing.PRODUCER_SERVICE)
    records = published(1, on())
    (span,) = exporter.get_finished_spans()
    assert span.name == f"send {CFG.book_topic}"
    assert span.kind is SpanKind.PRODUCER
    assert span.parent is None
    assert span.resource.attributes["service.name"] == "mdgw-producer"
    attrs = span.attributes or {}
    assert attrs["messaging.system"] == "kafka"
    assert attrs["messaging.destination.name"] == CFG.book_topic
    assert attrs["messaging.operation.type"] == "send"
    assert attrs["messaging.kafka.message.key"] == STREAM
    assert attrs["mdgw.sequence"] == 100
    ctx = span.get_span_context()
    assert traceparent_of(records[0]) == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"


def test_ratio_zero_propagates_unsampled_and_builds_no_span() -> None:
    exporter = exporter_for(tracing.PRODUCER_SERVICE, ratio=0.0)
    records = published(20, on(0.0))
    assert exporter.get_finished_spans() == ()
    parents = [traceparent_of(r) for r in records]
    assert all(len(p) == 55 and p.startswith("00-") and p.endswith("-00") for p in parents)
    assert len({p[3:35] for p in parents}) == 20  # a fresh trace id per record


def test_pre_check_agrees_with_the_sdk_sampler() -> None:
    """Half sampled: exactly the records flagged sampled have a span with their ids."""
    exporter = exporter_for(tracing.PRODUCER_SERVICE, ratio=0.5)
    records = published(400, on(0.5))
    flagged = {traceparent_of(r)[3:52] for r in records if traceparent_of(r).endswith("-01")}
    spans = {
        f"{s.context.trace_id:032x}-{s.context.span_id:016x}" for s in exporter.get_finished_spans()
    }
    assert spans == flagged
    assert 120 < len(spans) < 280


def test_otel_service_name_overrides() -> None:
    telemetry = load_config(env={"OTEL_SERVICE_NAME": "my-feed", "OTEL_TRACES_EXPORTER": "none"})
    assert telemetry.telemetry.exporter == "none"
    named = dataclasses.replace(on(), service_name=telemetry.telemetry.service_name)
    exporter = InMemorySpanExporter()
    tracing.setup(named, tracing.PRODUCER_SERVICE, exporter=exporter, batch=False)
    published(1, named)
    (span,) = exporter.get_finished_spans()
    assert span.resource.attributes["service.name"] == "my-feed"


# ---- gateway -----------------------------------------------------------------------


def test_one_trace_from_send_to_broadcast() -> None:
    exporter = exporter_for(tracing.PRODUCER_SERVICE, tracing.GATEWAY_SERVICE)
    records = published(3, on())
    mat, hub, sessions = gateway(subscribers=3)
    mat.handle(records[:1])  # the snapshot creates the book
    subscribe(hub, sessions)
    exporter.clear()
    mat.handle(records[1:2])
    spans = exporter.get_finished_spans()
    assert {s.name for s in spans} == {f"process {CFG.book_topic}", "encode"}
    hub.flush()  # frames written: the broadcast span ends
    spans = exporter.get_finished_spans()
    (process,) = by_name(spans, f"process {CFG.book_topic}")
    (encode,) = by_name(spans, "encode")
    (broadcast,) = by_name(spans, "broadcast")
    producer_ctx = traceparent_of(records[1]).split("-")
    assert f"{process.context.trace_id:032x}" == producer_ctx[1]
    assert process.parent is not None and f"{process.parent.span_id:016x}" == producer_ctx[2]
    assert process.parent.is_remote
    assert process.kind is SpanKind.CONSUMER
    assert process.resource.attributes["service.name"] == "mdgw-gateway"
    assert (process.attributes or {})["messaging.operation.type"] == "process"
    for child in (encode, broadcast):
        assert child.context.trace_id == process.context.trace_id
        assert child.parent is not None and child.parent.span_id == process.context.span_id
    assert (broadcast.attributes or {})[tracing.SUBSCRIBERS_ATTR] == 3
    assert (encode.attributes or {})["mdgw.view"] == STREAM
    assert all(len(frames_of(s.conn)) >= 2 for s in sessions)  # snapshot + update


def test_unsampled_records_cost_no_gateway_spans() -> None:
    exporter = exporter_for(tracing.GATEWAY_SERVICE)
    tracing.setup(on(0.0), tracing.PRODUCER_SERVICE, exporter=exporter, batch=False)
    records = published(5, on(0.0))
    mat, hub, sessions = gateway()
    mat.handle(records[:1])
    subscribe(hub, sessions)
    mat.handle(records[1:])
    hub.flush()
    assert exporter.get_finished_spans() == ()
    assert mat.counters.applied == 5


def test_records_without_traceparent_are_untraced() -> None:
    records = published(3)  # producer tracing off
    exporter = exporter_for(tracing.GATEWAY_SERVICE)
    mat, hub, sessions = gateway()
    mat.handle(records[:1])
    subscribe(hub, sessions)
    mat.handle(records[1:])
    hub.flush()
    assert exporter.get_finished_spans() == ()


def test_malformed_traceparent_is_ignored() -> None:
    exporter = exporter_for(tracing.GATEWAY_SERVICE)
    records = published(2)
    bad = (b"00-zz-01", b"00-" + b"0" * 32 + b"-" + b"0" * 16 + b"-01")
    for rec, value in zip(records, bad, strict=True):
        rec.headers = [(TRACEPARENT, value)]
    mat, _hub, _ = gateway()
    mat.handle(records)
    # the first is too short; the second is well formed but all-zero ids: invalid
    assert exporter.get_finished_spans() == ()
    assert mat.counters.applied == 2


def test_messages_caused_by_no_record_are_untraced() -> None:
    """Conflated ticks and snapshots run outside a record: no dangling context."""
    exporter = exporter_for(tracing.PRODUCER_SERVICE, tracing.GATEWAY_SERVICE)
    records = published(2, on())
    mat, hub, sessions = gateway()
    mat.handle(records[:1])
    for s in sessions:
        hub.sessions.add(s)
        hub.add_view(s, ViewKey(False, STREAM, 10, True))
    exporter.clear()
    mat.handle(records[1:])
    hub.tick_conflated()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == [f"process {CFG.book_topic}"]


# ---- API ---------------------------------------------------------------------------


def test_api_plugin_traces_requests_and_skips_probes() -> None:
    pytest.importorskip("opentelemetry.instrumentation.asgi")
    from litestar import Litestar, get
    from litestar.testing import TestClient

    @get("/api/v1/ping", sync_to_thread=False)
    def ping() -> dict[str, str]:
        return {"ok": "yes"}

    @get("/health", sync_to_thread=False)
    def health() -> dict[str, str]:
        return {"status": "healthy"}

    exporter = exporter_for(tracing.API_SERVICE)
    plugins = tracing.api_tracing_plugins(on())
    assert len(plugins) == 1
    app = Litestar([ping, health], plugins=plugins)
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    with TestClient(app) as client:
        assert client.get("/api/v1/ping", headers={"traceparent": parent}).status_code == 200
        assert client.get("/health").status_code == 200
    spans = exporter.get_finished_spans()
    assert len(spans) == 1
    (span,) = spans
    assert span.kind is SpanKind.SERVER
    assert span.resource.attributes["service.name"] == "mdgw-api"
    assert f"{span.context.trace_id:032x}" == "ab" * 16


def test_the_api_app_traces_its_requests_when_tracing_is_on() -> None:
    """``create_app`` wires the plugin (it once existed without being used)."""
    from litestar.testing import TestClient

    from api.app import create_app
    from api.state import StateStore
    from core.market import Market
    from tests.unit.api.apidata import make_config

    exporter = exporter_for(tracing.API_SERVICE)
    config = dataclasses.replace(make_config(rate_limit=0), telemetry=on())
    app = create_app(config, StateStore(Market()))
    parent = "00-" + "ef" * 16 + "-" + "cd" * 8 + "-01"
    with TestClient(app) as client:
        assert client.get("/api/v1/symbols", headers={"traceparent": parent}).status_code == 200
        client.get("/health")
    (span,) = exporter.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == "ef" * 16
    assert span.resource.attributes["service.name"] == "mdgw-api"
