"""OpenTelemetry tracing of the record path: producer -> Kafka -> gateway -> broadcast.

Off unless ``telemetry.tracing`` (``MDGW_TELEMETRY_TRACING=1``) is set. The hooks in
the publisher, materializer and hub first test the module-level :data:`ENABLED`,
so a process without tracing pays one global lookup per record and never
imports the SDK.

Sampling is decided once, at the head: the producer draws the trace id and
samples it with the same rule as ``TraceIdRatioBased(telemetry.trace_ratio)``
*before* building anything, so an unsampled record costs a random number and a
formatted header. Every record then carries a W3C ``traceparent`` header
(docs/protocol.md §2.4) with the sampled flag set or not, and the consumers' sampler,
``ParentBased``, follows the flag: the gateway looks at the flag byte and only
builds spans for sampled records.

One trace per sampled record::

    send marketdata.book        PRODUCER   mdgw-producer   (Publisher.publish)
    └─ process marketdata.book  CONSUMER   mdgw-gateway    (decode, apply, views)
       ├─ encode                INTERNAL                   (encode once, queue to subscribers)
       └─ broadcast             INTERNAL                   (until the frames are written)

The hub encodes per view message, not per record: the materializer makes the
record's ``process`` span current (:func:`start_process`) while the market and
the hub react to it, so the messages it causes are traced under it.

Spans go to OTLP/HTTP, configured by the standard variables
(``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_BSP_*`` ...). ``OTEL_SERVICE_NAME``
overrides the service name; ``OTEL_TRACES_EXPORTER=console|none`` and
``OTEL_SDK_DISABLED=true`` are honoured.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from mdgw.kafka.headers import TRACEPARENT, Headers, header

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from mdgw.config import TelemetryConfig
    from mdgw.kafka.sink import RecordSink
    from mdgw.kafka.source import Record

log = logging.getLogger(__name__)

ENABLED = False
"""True once any tracer is set up in this process: the hooks' first, cheap test."""

PRODUCER_SERVICE = "mdgw-producer"
GATEWAY_SERVICE = "mdgw-gateway"
API_SERVICE = "mdgw-api"

SUBSCRIBERS_ATTR = "mdgw.subscribers"
_LOW64 = (1 << 64) - 1
_ODD_HEX = frozenset(b"13579bdfBDF")
"""Last hex digit of the flags with the sampled bit (0x01) set."""
_ROOT = Context()
"""Empty context: producer spans are always roots, whatever is current."""
_PROPAGATOR = TraceContextTextMapPropagator()
_MAX_PENDING = 10_000
"""Open broadcast spans kept until the next flush; a safety bound, never reached in use."""


class _PresetIds:
    """Random ids, except that the next trace id can be preset (per thread).

    Lets the producer decide sampling from a trace id it drew itself and then
    have the SDK build the span with exactly that id, so the SDK's sampler and
    the cheap pre-check always agree. It is an ``IdGenerator`` by duck typing:
    subclassing would import the SDK with this module, even when tracing is off.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def generate_span_id(self) -> int:
        return random.getrandbits(64) or 1

    def generate_trace_id(self) -> int:
        preset = getattr(self._local, "trace_id", 0)
        if preset:
            self._local.trace_id = 0
            return preset
        return random.getrandbits(128) or 1

    def is_trace_id_random(self) -> bool:
        return True

    def preset(self, trace_id: int) -> None:
        self._local.trace_id = trace_id


class _State:
    """What :func:`setup` built; module-level so the hooks reach it in one lookup."""

    def __init__(self) -> None:
        self.producer: trace.Tracer | None = None
        self.consumer: trace.Tracer | None = None
        self.bound = 0
        """The producer's TraceIdRatioBased bound: sampled iff trace_id & LOW64 < bound."""
        self.client_id = ""
        self.providers: dict[str, TracerProvider] = {}
        self.ids = _PresetIds()
        self.current: trace.Span | None = None
        """The ``process`` span of the record being applied (event-loop thread only)."""
        self.current_ctx: Context | None = None
        self.broadcasts: list[trace.Span] = []


_state = _State()


# ---- set-up ------------------------------------------------------------------------


def _exporter() -> SpanExporter | None:
    """The exporter named by ``OTEL_TRACES_EXPORTER`` (default otlp, over HTTP)."""
    kind = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if kind == "none":
        return None
    if kind == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if kind not in ("otlp", "otlp_proto_http"):
        log.warning("OTEL_TRACES_EXPORTER=%s is not supported here; using otlp (HTTP)", kind)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup(
    telemetry: TelemetryConfig,
    service: str,
    *,
    exporter: SpanExporter | None = None,
    batch: bool = True,
) -> TracerProvider | None:
    """The tracer provider of ``service`` in this process, or None when tracing is off.

    Built once per service name (later calls return it). ``exporter`` replaces the
    OTLP one (tests); ``batch=False`` exports each span as it ends.
    """
    global ENABLED
    if not telemetry.tracing or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if service in _state.providers:
        return _state.providers[service]
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    ratio = TraceIdRatioBased(telemetry.trace_ratio)
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(
        sampler=ParentBased(ratio),
        resource=Resource.create({"service.name": name}),
        id_generator=_state.ids,  # type: ignore[arg-type]  # duck-typed: see _PresetIds
    )
    exp = exporter if exporter is not None else _exporter()
    if exp is not None:
        provider.add_span_processor(BatchSpanProcessor(exp) if batch else SimpleSpanProcessor(exp))
    _state.providers[service] = provider
    if service == PRODUCER_SERVICE:
        _state.producer = provider.get_tracer("mdgw.producer")
        _state.bound = ratio.bound
    else:
        _state.consumer = _state.consumer or provider.get_tracer("mdgw.consumer")
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(provider)  # for third-party instrumentation
    ENABLED = True
    log.info(
        "tracing on: service %s, ratio %s, exporter %s",
        name,
        telemetry.trace_ratio,
        type(exp).__name__ if exp is not None else "none",
    )
    return provider


def setup_producer(telemetry: TelemetryConfig | None = None, client_id: str = "") -> bool:
    """Trace published records (``mdgw-producer``); None reads MDGW_TELEMETRY_* from env."""
    if telemetry is None:
        from mdgw.config import load_config

        telemetry = load_config(env=os.environ).telemetry
    _state.client_id = client_id
    return setup(telemetry, PRODUCER_SERVICE) is not None


def setup_gateway(telemetry: TelemetryConfig) -> bool:
    """Continue producer traces through the gateway (``mdgw-gateway``)."""
    return setup(telemetry, GATEWAY_SERVICE) is not None


def api_tracing_plugins(telemetry: TelemetryConfig) -> list[Any]:
    """Litestar plugins tracing the REST API (``mdgw-api``): ``[]`` when tracing is off.

    ``Litestar(..., plugins=[*api_tracing_plugins(config.telemetry)])``. Needs
    ``opentelemetry-instrumentation-asgi``. Requests with a ``traceparent``
    continue the caller's trace; the scrape and probe routes are not traced.
    """
    provider = setup(telemetry, API_SERVICE)
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    config = OpenTelemetryConfig(
        tracer_provider=provider,
        exclude=["^/metrics", "^/health", "^/ready"],
        exclude_spans=["receive", "send"],
    )
    return [OpenTelemetryPlugin(config)]


def force_flush(timeout_ms: int = 5_000) -> None:
    """Export every ended span now (graceful shutdown, tests)."""
    for provider in list(_state.providers.values()):
        provider.force_flush(timeout_ms)


def reset() -> None:
    """Shut every provider down and turn tracing off (tests)."""
    global ENABLED, _state
    for provider in _state.providers.values():
        provider.shutdown()
    ENABLED = False
    _state = _State()


# ---- producer ----------------------------------------------------------------------


def traceparent(trace_id: int, span_id: int, flags: int) -> bytes:
    """The W3C ``traceparent`` header value (version 00)."""
    return b"00-%032x-%016x-%02x" % (trace_id, span_id, flags)


def send(sink: RecordSink, topic: str, key: str, value: bytes, sequence: int = -1) -> None:
    """``sink.send`` with a ``traceparent`` header, in a PRODUCER span when sampled."""
    st = _state
    tracer = st.producer
    if tracer is None:
        sink.send(topic, key, value, None)
        return
    trace_id = random.getrandbits(128) or 1
    if trace_id & _LOW64 >= st.bound:  # not sampled: pass the decision on, build nothing
        tp = traceparent(trace_id, random.getrandbits(64) or 1, 0)
        sink.send(topic, key, value, [(TRACEPARENT, tp)])
        return
    st.ids.preset(trace_id)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": topic,
        "messaging.kafka.message.key": key,
        "messaging.message.body.size": len(value),
    }
    if st.client_id:
        attributes["messaging.client.id"] = st.client_id
    if sequence >= 0:
        attributes["mdgw.sequence"] = sequence
    span = tracer.start_span(
        f"send {topic}", context=_ROOT, kind=SpanKind.PRODUCER, attributes=attributes
    )
    ctx = span.get_span_context()
    try:
        sink.send(topic, key, value, [(TRACEPARENT, traceparent(ctx.trace_id, ctx.span_id, 1))])
    except BaseException as e:
        span.record_exception(e)
        span.set_status(Status(StatusCode.ERROR, type(e).__name__))
        raise
    finally:
        span.end()


# ---- consumer: process, encode, broadcast --------------------------------------------


def sampled_parent(headers: Headers | None) -> str | None:
    """The record's ``traceparent`` if it is well formed and sampled, else None (cheap)."""
    tp = header(headers, TRACEPARENT)
    if tp is None or len(tp) != 55 or tp[54] not in _ODD_HEX:
        return None
    return tp.decode("ascii", "replace")


def start_process(rec: Record) -> trace.Span | None:
    """Open the CONSUMER span of a sampled record and make it current; None otherwise."""
    st = _state
    if st.current is not None:  # the previous record's hooks raised: close it
        end_process(st.current)
    tracer = st.consumer
    if tracer is None:
        return None
    tp = sampled_parent(rec.headers)
    if tp is None:
        return None
    parent = _PROPAGATOR.extract({TRACEPARENT: tp})
    if not trace.get_current_span(parent).get_span_context().is_valid:
        return None  # e.g. all-zero ids: no trace to continue
    key = (rec.key or b"").decode(errors="replace")
    span = tracer.start_span(
        f"process {rec.topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": rec.topic,
            "messaging.destination.partition.id": str(rec.partition),
            "messaging.kafka.offset": rec.offset,
            "messaging.kafka.message.key": key,
            "messaging.message.body.size": len(rec.value or b""),
        },
    )
    st.current = span
    st.current_ctx = trace.set_span_in_context(span, _ROOT)
    return span


def end_process(span: trace.Span) -> None:
    """Close the record's span; messages encoded from now on are untraced."""
    span.end()
    _state.current = None
    _state.current_ctx = None


def encode_started(view: str, depth: int) -> trace.Span | None:
    """Hub: a view message is being encoded; a span if a sampled record caused it."""
    st = _state
    if st.current_ctx is None or st.consumer is None:
        return None
    return st.consumer.start_span(
        "encode", context=st.current_ctx, attributes={"mdgw.view": view, "mdgw.depth": depth}
    )


def encode_finished(span: trace.Span, subscribers: int) -> None:
    """Hub: frames encoded and queued; the ``broadcast`` span runs until they are written."""
    span.set_attribute(SUBSCRIBERS_ATTR, subscribers)
    span.end()
    st = _state
    if st.consumer is None or st.current_ctx is None:
        return
    pending = st.broadcasts
    if len(pending) >= _MAX_PENDING:
        broadcast_flushed()
    pending.append(
        st.consumer.start_span(
            "broadcast", context=st.current_ctx, attributes={SUBSCRIBERS_ATTR: subscribers}
        )
    )


def broadcast_flushed() -> None:
    """Hub: queued frames were written to the sockets; close the broadcast spans."""
    pending, _state.broadcasts = _state.broadcasts, []
    for span in pending:
        span.end()
