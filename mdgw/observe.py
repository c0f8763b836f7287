"""``mdgw demo --observe``: tracing on for the demo's processes, and where to look.

``scripts/demo --observe`` starts the local Prometheus and Jaeger, exports the OTLP
endpoint and ``MDGW_API_JAEGER_URL``, and runs ``mdgw demo --observe``; this module
turns tracing on in the children's environment and writes the banner lines.
"""

from __future__ import annotations

from collections.abc import Mapping

from mdgw import tracing
from mdgw.config import Config

DEFAULT_JAEGER = "http://127.0.0.1:16686"


def observe_env(config: Config, env: Mapping[str, str]) -> dict[str, str]:
    """The children's environment: tracing on, the API's trace view on Jaeger."""
    out = dict(env)
    out["MDGW_TELEMETRY_TRACING"] = "1"
    if not config.api.jaeger_url:
        out["MDGW_API_JAEGER_URL"] = DEFAULT_JAEGER
    return out


def observe_banner(config: Config, prometheus: str | None) -> str:
    """Where the metrics, traces and the terminal view are (lines for the demo's banner)."""
    jaeger = (config.api.jaeger_url or DEFAULT_JAEGER).rstrip("/")
    lines = []
    if prometheus:
        lines.append(
            f"  Metrics    {prometheus.rstrip('/')}/targets  (Prometheus: gateway and API scraped)"
        )
    lines += [
        f"  Traces     http://127.0.0.1:{config.api.port}/#traces  (dashboard trace view, "
        f"{config.telemetry.trace_ratio * 100:g} % of the records traced)",
        f"             {jaeger}/api/traces?service={tracing.GATEWAY_SERVICE}&limit=5  "
        "(Jaeger's query API)",
        f"  Terminal   .venv/bin/mdgw top  (live view of gateway :{config.gateway.port} "
        f"and API :{config.api.port})",
    ]
    if prometheus:
        lines.append(
            "  Prometheus and Jaeger keep running after Ctrl-C: "
            "scripts/prometheus-local stop; scripts/jaeger-local stop"
        )
    return "\n".join(lines) + "\n"
