"""``create_app``: the Litestar application of the REST service, from its config and state.

Layers, outermost first: CORS and gzip (Litestar configs), the per-IP rate limit
(Litestar's ``RateLimitConfig``), then routers: ``/api/v1`` (market data, feeds,
system metrics: ``Cache-Control: no-cache``, API-key guard when keys are
configured), the operational routes (``/health``, ``/ready``, ``/metrics``), the
OpenAPI document (``/schema``) and the static dashboard (``/``). Errors are
translated to ``{"error": ...}`` by :mod:`api.errors`; every answer is counted in
``api_requests_total`` by route template (bounded label values).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar, Router, get
from litestar.config.compression import CompressionConfig
from litestar.config.cors import CORSConfig
from litestar.datastructures import CacheControlHeader
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme, Tag
from litestar.static_files import create_static_files_router
from litestar.types import Message, Scope

from api.errors import EXCEPTION_HANDLERS
from api.jaeger import JaegerQuery
from api.routes import candles, market, system, traces
from api.routes.deps import dependencies
from api.security import (
    API_KEY_HEADER,
    ApiKeys,
    api_key_guard,
    load_digests,
    parse_networks,
    rate_limit_config,
)
from api.state import KafkaStateStore, StateStore
from mdgw import metrics, tracing
from mdgw.config import Config

STATIC_DIR = Path(__file__).parent / "static"
API_PREFIX = "/api/v1"
GZIP_LEVEL = 5
"""gzip level for large answers: ~3x faster than Litestar's default 9, a few % larger."""
GZIP_MIN_BYTES = 1024
UNMATCHED = "<unmatched>"
"""Route label of requests no route matched (404/405 from the router)."""


def create_app(
    config: Config, state: StateStore | None = None, *, extra_routes: Sequence[Any] = ()
) -> Litestar:
    """The app over ``state`` (default: a :class:`KafkaStateStore` started by the lifespan).

    ``extra_routes`` are served beside the API's own (the benchmarks add a constant
    route to compare with: ``bench/api_server.py``).
    """
    store = state if state is not None else KafkaStateStore(config)
    api = config.api
    trusted = parse_networks(api.trusted_proxies)
    keys = ApiKeys(load_digests(config.auth))
    guards = [api_key_guard(keys, api.open_paths, trusted)] if keys.enabled else []
    api_router = Router(
        API_PREFIX,
        route_handlers=[
            *market.ROUTES,
            *candles.ROUTES,
            *system.API_ROUTES,
            *trace_routes(config),
        ],
        guards=guards,
        cache_control=CacheControlHeader(no_cache=True),
        security=[{"ApiKey": []}] if keys.enabled else None,
        tags=["market data"],
    )
    handlers: list[Any] = [
        api_router,
        *system.ROUTES,
        dashboard_config(api.dashboard_ws_hosts, traces=bool(api.jaeger_url)),
        *extra_routes,
    ]
    handlers.append(create_static_files_router("/", [STATIC_DIR], html_mode=True, name="static"))
    rate_limit = rate_limit_config(api, trusted)
    return Litestar(
        route_handlers=handlers,
        dependencies=dependencies(store),
        lifespan=[store.lifespan],
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[rate_limit.middleware] if rate_limit else [],
        cors_config=_cors(api.cors_origins),
        compression_config=CompressionConfig(
            backend="gzip", minimum_size=GZIP_MIN_BYTES, gzip_compress_level=GZIP_LEVEL
        ),
        openapi_config=_openapi(keys.enabled),
        before_send=[count_request],
        plugins=tracing.api_tracing_plugins(config.telemetry),  # [] unless tracing is on
        logging_config=None,  # mdgw.logs configures logging for every process
        debug=False,
    )


def dashboard_config(ws_hosts: tuple[str, ...], *, traces: bool = False) -> Any:
    """``/dashboard.json``: the WebSocket hosts the dashboard's ``?ws=`` may name, and
    whether its trace view is on (``api.jaeger_url``)."""
    body = {"ws_hosts": list(ws_hosts), "traces": traces}

    @get("/dashboard.json", include_in_schema=False, sync_to_thread=False)
    def dashboard_json() -> dict[str, Any]:
        return body

    return dashboard_json


def trace_routes(config: Config) -> list[Any]:
    """``/traces`` routes over the configured Jaeger (answering 404 when there is none)."""
    api, name = config.api, config.telemetry.service_name
    jaeger = JaegerQuery(api.jaeger_url, api.jaeger_timeout) if api.jaeger_url else None
    services = (tracing.GATEWAY_SERVICE, tracing.PRODUCER_SERVICE, *([name] if name else []))
    return traces.routes(jaeger, services)


def _cors(origins: tuple[str, ...]) -> CORSConfig | None:
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_methods=["GET", "HEAD", "OPTIONS"],
        allow_headers=[API_KEY_HEADER, "If-None-Match"],
        expose_headers=[
            "ETag",
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "RateLimit-Policy",
        ],
    )


def _openapi(keys: bool) -> OpenAPIConfig:
    components = Components(
        security_schemes={
            "ApiKey": SecurityScheme(
                type="apiKey",
                name=API_KEY_HEADER,
                security_scheme_in="header",
                description="An API key whose SHA-256 digest is in auth.api_keys",
            )
        }
        if keys
        else None
    )
    return OpenAPIConfig(
        title="mdgw market-data API",
        version="1.0.0",
        description="Order books, trades and statistics of the market-data gateway "
        '(docs/protocol.md §6). Every error answers `{"error": "..."}`.',
        components=components,
        tags=[Tag(name="market data", description="/api/v1 routes")],
        use_handler_docstrings=False,
    )


async def count_request(message: Message, scope: Scope) -> None:
    """``before_send`` hook: one ``api_requests_total`` per answer, by route template."""
    if message["type"] == "http.response.start":
        route = scope.get("path_template") or UNMATCHED
        metrics.API_REQUESTS.labels(scope.get("method", ""), route, str(message["status"])).inc()
