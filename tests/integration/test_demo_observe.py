"""``scripts/demo --observe`` for real: Prometheus scrapes gateway and API, Jaeger has traces.

The script runs as a user runs it, on the test's broker and topics, with every port
free and the state of Prometheus and Jaeger in the test's tmp dir. It must start
both, print where to look, and within a minute Prometheus must report both targets
up and Jaeger (and the API's trace view) hold a producer -> gateway trace. Jaeger
is built once per machine (skipped with the reason where it cannot be: no Go).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mdgw import tracing
from mdgw.config import Config
from tests.integration.observability import ROOT, SKIP_CODE, free_port, stop_script

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(1800)]


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None


def poll(pred: Callable[[], Any], timeout: float, what: str, proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"scripts/demo exited {proc.returncode} while waiting for {what}")
        found = pred()
        if found:
            return found
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def demo_env(config: Config, tmp_path: Path) -> dict[str, str]:
    keep = ("MDGW_CACHE_DIR",)  # where Jaeger's binary is built once per machine
    env = {k: v for k, v in os.environ.items() if k in keep or not k.startswith(("MDGW_", "OTEL_"))}
    for name in (
        "bootstrap", "book_topic", "trades_topic", "snapshots_topic", "checkpoints_topic",
        "stats_topic", "dlq_topic",
    ):  # fmt: skip
        env[f"MDGW_KAFKA_{name.upper()}"] = str(getattr(config.kafka, name))
    ports = {
        "MDGW_GATEWAY_PORT": free_port(),
        "MDGW_API_PORT": free_port(),
        "MDGW_PROMETHEUS_PORT": free_port(),
        "MDGW_JAEGER_OTLP_PORT": free_port(),
        "MDGW_JAEGER_OTLP_GRPC_PORT": free_port(),
        "MDGW_JAEGER_QUERY_PORT": free_port(),
        "MDGW_JAEGER_QUERY_GRPC_PORT": free_port(),
        "MDGW_JAEGER_HEALTH_PORT": free_port(),
    }
    env |= {k: str(v) for k, v in ports.items()}
    env |= {
        "MDGW_GATEWAY_GROUP_ID": config.gateway.group_id,
        "MDGW_API_GROUP_ID": config.api.group_id,
        "MDGW_PROMETHEUS_DIR": str(tmp_path / "prometheus"),
        "MDGW_PROMETHEUS_SCRAPE_INTERVAL": "1s",
        "MDGW_JAEGER_DIR": str(tmp_path / "jaeger"),
        "MDGW_TELEMETRY_TRACE_RATIO": "0.1",
        "MDGW_TELEMETRY_LOG_LEVEL": "WARNING",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "PYTHONUNBUFFERED": "1",
    }
    return env


def test_demo_observe_starts_prometheus_and_jaeger_with_tracing_on(
    config: Config, tmp_path: Path
) -> None:
    env = demo_env(config, tmp_path)
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "demo"), "--observe", "--rate", "100"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    try:
        try:
            prom = f"http://127.0.0.1:{env['MDGW_PROMETHEUS_PORT']}"
            query = f"http://127.0.0.1:{env['MDGW_JAEGER_QUERY_PORT']}"
            api = f"http://127.0.0.1:{env['MDGW_API_PORT']}"
            poll(lambda: "AUTH IS OFF" in log.read_text(), 1700, "the demo's banner", proc)
        except AssertionError:
            text = log.read_text()
            if proc.returncode == SKIP_CODE:  # no Go to build Jaeger, no prometheus package
                lines = [ln for ln in text.splitlines() if ln.strip()]
                pytest.skip(f"scripts/demo --observe: {' / '.join(lines[-2:])}")
            raise AssertionError(text[-3000:]) from None
        banner = log.read_text()
        assert f"{prom}/targets" in banner, banner
        assert f"http://127.0.0.1:{env['MDGW_API_PORT']}/#traces" in banner, banner
        assert f"{query}/api/traces?service={tracing.GATEWAY_SERVICE}" in banner, banner
        assert "mdgw top" in banner

        def targets_up() -> bool:
            body = get_json(f"{prom}/api/v1/targets") or {}
            active = (body.get("data") or {}).get("activeTargets") or []
            return {t["labels"]["job"]: t["health"] for t in active} == {
                "gateway": "up",
                "api": "up",
            }

        poll(targets_up, 60, "Prometheus: gateway and API targets up", proc)
        series = get_json(f"{prom}/api/v1/query?query=ws_connections_active")
        assert series and series["data"]["result"], series

        def linked_trace() -> Any:
            url = f"{query}/api/traces?service={tracing.GATEWAY_SERVICE}&limit=20"
            for t in (get_json(url) or {}).get("data") or []:
                names = {p["serviceName"] for p in t["processes"].values()}
                # the API materializes the same records, so its process span may join
                if {tracing.PRODUCER_SERVICE, tracing.GATEWAY_SERVICE} <= names:
                    return t
            return None

        trace = poll(linked_trace, 60, "a producer -> gateway trace in Jaeger", proc)
        listed = poll(
            lambda: (get_json(f"{api}/api/v1/traces") or {}).get("traces"),
            30,
            "the API's trace view listing traces",
            proc,
        )
        assert listed and all(len(t["trace_id"]) == 32 for t in listed)
        one = get_json(f"{api}/api/v1/traces/{trace['traceID']}")
        # a span exported since (the API's) may have joined the trace meanwhile
        assert one and len(one["spans"]) >= len(trace["spans"])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as a user stops it
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        alive = [
            name
            for name in ("prometheus-local", "jaeger-local")
            if subprocess.run(
                [str(ROOT / "scripts" / name), "status"], env=env, capture_output=True
            ).returncode
            == 0
        ]
        stop_script("prometheus-local", env)
        stop_script("jaeger-local", env)
    assert proc.returncode == 0, log.read_text()[-2000:]
    # like Kafka, they outlive the demo's Ctrl-C (the banner says how to stop them)
    assert alive == ["prometheus-local", "jaeger-local"]
    assert "Failed to export spans" not in log.read_text()
