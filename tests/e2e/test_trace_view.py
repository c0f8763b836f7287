"""The dashboard's trace view in a real Chromium, reading a real Jaeger through the API.

Jaeger v2 runs from ``scripts/jaeger-local`` on free ports (built once per machine;
the test skips with the reason when it cannot be built here, which CI's strict-skips
check turns into a failure). The simulator, gateway and API run as processes with
tracing on (5 % of records) and the API's ``api.jaeger_url`` pointing at it; three
WebSocket clients read every book so that sampled records are broadcast. The page
must list recent traces and draw one as a waterfall: the producer's ``send``, the
derived Kafka hop, the gateway's ``process``, ``encode`` and ``broadcast``, with
the span count Jaeger itself reports for that trace.

Writes ``traces.png`` (the panel) into the test's tmp dir (``MDGW_E2E_SCREENSHOTS``
copies it there: ``scripts/screenshot`` refreshes ``docs/traces.png``).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mdgw import tracing
from mdgw.config import Config
from tests.e2e.test_dashboard import (
    Console,
    Service,
    api_ready,
    chromium,  # noqa: F401  (the module-scoped browser fixture)
    free_port,
    gateway_ready,
    get_json,
    screenshot_dir,
    service_env,
    wait_until,
)
from tests.e2e.test_top_tmux import readers
from tests.integration.observability import run_script, stop_script

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {
        "MDGW_JAEGER_OTLP_PORT": free_port(),
        "MDGW_JAEGER_OTLP_GRPC_PORT": free_port(),
        "MDGW_JAEGER_QUERY_PORT": free_port(),
        "MDGW_JAEGER_QUERY_GRPC_PORT": free_port(),
        "MDGW_JAEGER_HEALTH_PORT": free_port(),
    }
    env = {k: str(v) for k, v in ports.items()} | {"MDGW_JAEGER_DIR": str(tmp_path / "jaeger")}
    run_script("jaeger-local", ["start"], env, timeout=1800)  # the first build takes minutes
    try:
        yield ports
    finally:
        stop_script("jaeger-local", env)


@pytest.fixture
def traced_stack(config: Config, tmp_path: Path, jaeger: dict[str, int]) -> Iterator[Any]:
    query = f"http://127.0.0.1:{jaeger['MDGW_JAEGER_QUERY_PORT']}"
    env = service_env(config) | {
        "MDGW_TELEMETRY_TRACING": "1",
        "MDGW_TELEMETRY_TRACE_RATIO": "0.05",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{jaeger['MDGW_JAEGER_OTLP_PORT']}",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "MDGW_API_JAEGER_URL": query,
    }
    for var in ("OTEL_SERVICE_NAME", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED"):
        env.pop(var, None)
    gw_port, api_port = free_port(), free_port()
    sim = Service("simulate", ["simulate", "--rate", "200"], env, tmp_path).start()
    gw = Service("gateway", ["gateway", "--port", str(gw_port)], env, tmp_path)
    api = Service("api", ["api", "--port", str(api_port)], env, tmp_path)
    stop = threading.Event()
    try:
        time.sleep(0.5)
        gw.start()
        api.start()
        wait_until(lambda: gateway_ready(gw_port), 40, "gateway /health ready", sim, gw)
        wait_until(lambda: api_ready(api_port), 40, "API /ready", sim, api)
        readers(f"ws://127.0.0.1:{gw_port}/ws", stop)
        yield {"gw_port": gw_port, "api_port": api_port, "query": query, "procs": (sim, gw, api)}
    finally:
        stop.set()
        for s in (api, gw, sim):
            s.stop()


def test_trace_view_draws_a_sampled_message_from_jaeger(
    chromium: Any,  # noqa: F811
    traced_stack: dict[str, Any],
    tmp_path: Path,
) -> None:
    api_port, gw_port, query = (
        traced_stack["api_port"],
        traced_stack["gw_port"],
        traced_stack["query"],
    )
    # Jaeger has complete traces before the page looks (the exporters batch every 200 ms)
    wait_until(
        lambda: any(
            {tracing.PRODUCER_SERVICE, tracing.GATEWAY_SERVICE}
            <= {p.get("serviceName") for p in t.get("processes", {}).values()}
            for t in (
                get_json(
                    f"{query}/api/traces?service={tracing.GATEWAY_SERVICE}"
                    "&operation=broadcast&limit=5"
                )[1]
                or {}
            ).get("data")
            or []
        ),
        60,
        "a producer -> gateway -> broadcast trace in Jaeger",
        *traced_stack["procs"],
    )
    console = Console()
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    console.attach(page)
    page.goto(f"http://127.0.0.1:{api_port}/?ws=ws://127.0.0.1:{gw_port}/ws")
    # the page draws a whole message's path: a trace whose producer span had not reached
    # Jaeger yet when the list was read gives way to a complete one at the next refresh
    page.wait_for_function(
        "document.querySelector('#traces') && !document.querySelector('#traces').hidden "
        "&& Number(document.querySelector('#waterfall')?.dataset.spans) >= 4 "
        "&& document.querySelector('#waterfall .wf-row[data-service]')?.dataset.service "
        f"=== '{tracing.PRODUCER_SERVICE}'",
        timeout=30_000,
        polling=200,
    )
    assert page.locator("#trace-list li").count() >= 1
    rows = page.eval_on_selector_all(
        "#waterfall .wf-row[data-service]",
        "rs => rs.map(r => [r.dataset.service, r.dataset.operation])",
    )
    services = [s for s, _ in rows]
    ops = [o for _, o in rows]
    assert rows[0][0] == tracing.PRODUCER_SERVICE and ops[0].startswith("send "), rows
    assert ops[1] == "in Kafka" and services[1] == "kafka", rows
    # every consumer of the record continues its trace: the gateway, and the API (its
    # state store) when both sampled it; each process span follows its own Kafka row
    consumers = [i for i, (s, o) in enumerate(rows) if o.startswith("process ")]
    assert any(services[i] == tracing.GATEWAY_SERVICE for i in consumers), rows
    assert all(rows[i - 1] == ["kafka", "in Kafka"] for i in consumers), rows
    assert {services[i] for i in consumers} <= {tracing.GATEWAY_SERVICE, tracing.API_SERVICE}
    assert "encode" in ops and "broadcast" in ops, rows

    # what the page drew is what Jaeger holds for that trace
    trace_id = page.eval_on_selector("#waterfall", "w => w.dataset.trace")
    status, raw = get_json(f"{query}/api/traces/{trace_id}")
    assert status == 200, raw
    jaeger_ops = sorted(s["operationName"] for s in raw["data"][0]["spans"])
    assert sorted(o for s, o in rows if s != "kafka") == jaeger_ops
    status, ours = get_json(f"http://127.0.0.1:{api_port}/api/v1/traces/{trace_id}")
    assert status == 200 and len(ours["spans"]) == len(jaeger_ops)

    png = tmp_path / "traces.png"
    page.locator("#traces").screenshot(path=str(png))
    print(f"screenshot: {png}")
    if (out := screenshot_dir()) is not None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, out / "traces.png")
    # another trace of the list is drawn when clicked (clicked in one step in the page:
    # the list is redrawn every 5 s with the newest traces)
    assert page.locator("#trace-list button").count() >= 2, "one sampled trace only"
    other = page.evaluate(
        "() => { const b = document.querySelectorAll('#trace-list button')[1]; "
        "b.click(); return b.dataset.trace; }"
    )
    page.wait_for_function(
        f"document.querySelector('#waterfall').dataset.trace === '{other}'", timeout=10_000
    )
    context.close()
    assert console.errors == [], console.errors
