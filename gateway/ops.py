"""``GET /health``, ``GET /metrics`` and ``GET /asyncapi.json`` on the gateway's WebSocket
port, with a budget.

``/asyncapi.json`` is the protocol as an AsyncAPI 3.0 document (schemas/asyncapi.json,
read once at start). All are open (probes and Prometheus need no token), so both are bounded: each
client address (IPv6 by /64) gets ``ops_requests_per_second`` of them (429 with
``Retry-After`` beyond), and ``/metrics``, whose rendering walks every metric, is
rendered at most once per ``METRICS_TTL`` seconds and served from that copy, so
many addresses together cannot make the event loop render more either.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from importlib.resources import files
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Response

from gateway.limits import address_group
from gateway.ratelimit import AttemptLimiter
from mdgw import metrics
from mdgw.metrics_http import render_metrics

METRICS_TTL = 1.0
"""Seconds a rendered /metrics body is served again (Prometheus scrapes every 15 s)."""

ASYNCAPI_PATH = "/asyncapi.json"
PATHS = ("/health", "/metrics", ASYNCAPI_PATH)
"""Plain HTTP paths the gateway answers on its WebSocket port."""


def asyncapi_document() -> bytes:
    """The WebSocket protocol as AsyncAPI 3.0 (docs/protocol.md §4), as shipped in schemas/."""
    return files("schemas").joinpath("asyncapi.json").read_bytes()


def http_response(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: tuple[tuple[str, str], ...] = (),
) -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
            *extra,
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


class OpsEndpoints:
    """Answers /health and /metrics; ``now`` is a monotonic clock passed in."""

    def __init__(
        self,
        per_second: float,
        health: Callable[[], dict[str, Any]],
        render: Callable[[], tuple[bytes, str]] = render_metrics,
    ) -> None:
        self.limiter = AttemptLimiter(int(per_second), 1.0, max_keys=10_000)
        self.health = health
        self.render = render
        self._metrics: tuple[float, bytes, str] | None = None
        self.asyncapi = asyncapi_document()

    def respond(self, path: str, ip: str, now: float) -> Response:
        if not self.limiter.allow(address_group(ip), now):
            metrics.RATE_LIMITED.labels("ws_http").inc()
            body = orjson.dumps({"error": "too many requests"})
            return http_response(429, body, extra=(("Retry-After", "1"),))
        if path == "/health":
            return http_response(200, orjson.dumps(self.health()))
        if path == ASYNCAPI_PATH:  # a public document: tools in browsers may read it
            return http_response(200, self.asyncapi, extra=(("Access-Control-Allow-Origin", "*"),))
        cached = self._metrics
        if cached is None or now - cached[0] >= METRICS_TTL:
            body, ctype = self.render()
            cached = self._metrics = (now, body, ctype)
        return http_response(200, cached[1], cached[2])
