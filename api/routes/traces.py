"""The trace view's routes: recent traces and one trace's spans, read from Jaeger.

``GET /api/v1/traces`` lists the newest traces of one of the project's services
and ``GET /api/v1/traces/{trace_id}`` gives one trace as a waterfall
(docs/protocol.md §6.3). Both read the Jaeger query service named by
``api.jaeger_url``; without it they answer 404 and the dashboard hides its panel.
Every query is counted in ``trace_queries_total{result}``; Jaeger's failures
answer a generic 503 (details in the log).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from litestar import get
from litestar.params import Parameter, PathParameter

from api.errors import BadParameter, SymbolNotFound, Unavailable
from api.jaeger import TRACE_ID, JaegerError, JaegerQuery
from api.models import TraceListBody, TraceWaterfallBody
from api.routes.market import COMMON, _error
from mdgw import metrics, tracing

log = logging.getLogger(__name__)

OFF = "Trace view is off: set api.jaeger_url (MDGW_API_JAEGER_URL)"
UNAVAILABLE = "Trace store unavailable"
RESPONSES = {
    400: _error("Invalid parameter", "trace_id must be 16 or 32 hex digits"),
    404: _error("Trace view off, or no such trace", "Trace not found"),
    **COMMON,
    503: _error("Jaeger did not answer in time, or answered something unusable", UNAVAILABLE),
}
Service = Annotated[
    str,
    Parameter(
        description="Service whose traces to list",
        schema_extra={"enum": [tracing.GATEWAY_SERVICE, tracing.PRODUCER_SERVICE]},
    ),
]
Limit = Annotated[int, Parameter(ge=1, le=100, description="Traces, 1..100, newest first")]
Lookback = Annotated[int, Parameter(ge=1, le=86_400, description="Seconds back, 1..86400")]
TraceId = Annotated[str, PathParameter(description="16 or 32 hex digits", max_length=64)]


def routes(jaeger: JaegerQuery | None, services: tuple[str, ...]) -> list[Any]:
    """The two handlers over ``jaeger`` (None: the view is off); ``services`` may be listed."""

    def query() -> JaegerQuery:
        if jaeger is None:
            metrics.TRACE_QUERIES.labels("off").inc()
            raise SymbolNotFound(OFF)
        return jaeger

    @get(
        "/traces",
        summary="Recent traces",
        description="The newest sampled traces with spans of `service`, from Jaeger.",
        responses=RESPONSES,
    )
    async def recent_traces(
        service: Service = tracing.GATEWAY_SERVICE, limit: Limit = 20, lookback: Lookback = 900
    ) -> TraceListBody:
        q = query()
        if service not in services:
            metrics.TRACE_QUERIES.labels("bad_request").inc()
            raise BadParameter(f"service must be one of {', '.join(services)}")
        try:
            found = await q.recent(service, limit, lookback)
        except JaegerError as e:
            raise _unavailable(e) from e
        metrics.TRACE_QUERIES.labels("ok").inc()
        return msgspec.convert({"service": service, "traces": found}, TraceListBody)

    @get(
        "/traces/{trace_id:str}",
        summary="One trace as a waterfall",
        description="Spans sorted by start, with service, parent, duration and attributes.",
        responses=RESPONSES,
    )
    async def one_trace(trace_id: TraceId) -> TraceWaterfallBody:
        q = query()
        tid = trace_id.lower()
        if not TRACE_ID.match(tid):
            metrics.TRACE_QUERIES.labels("bad_request").inc()
            raise BadParameter("trace_id must be 16 or 32 hex digits")
        try:
            found = await q.trace(tid)
        except JaegerError as e:
            raise _unavailable(e) from e
        if found is None:
            metrics.TRACE_QUERIES.labels("not_found").inc()
            raise SymbolNotFound("Trace not found")
        metrics.TRACE_QUERIES.labels("ok").inc()
        return msgspec.convert(found, TraceWaterfallBody)

    return [recent_traces, one_trace]


def _unavailable(e: JaegerError) -> Unavailable:
    metrics.TRACE_QUERIES.labels(e.kind).inc()
    log.warning("trace view: Jaeger query failed (%s): %s", e.kind, e)
    return Unavailable(UNAVAILABLE, retry_after=2)
