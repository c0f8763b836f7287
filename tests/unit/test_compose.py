"""docker-compose.yml, Dockerfile and deploy/ checked statically against the code.

No Docker engine is needed: the files are parsed and compared with what
``mdgw.config`` reads, what ``mdgw.cli`` accepts and what ``mdgw.metrics`` exposes.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from mdgw import metrics
from mdgw.cli import build_parser
from mdgw.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MDGW_SERVICES = ("topics", "simulator", "gateway", "api")
REQUIRED = (*MDGW_SERVICES, "kafka", "jaeger", "prometheus", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def config_of(service: dict[str, Any]) -> Config:
    return load_config(env={k: v for k, v in env_of(service).items() if k.startswith("MDGW_")})


def config_vars() -> set[str]:
    """Every MDGW_<SECTION>_<FIELD> that load_config reads."""
    config = Config()
    return {
        f"MDGW_{section.name}_{f.name}".upper()
        for section in dataclasses.fields(config)
        for f in dataclasses.fields(getattr(config, section.name))
    }


def published(service: dict[str, Any]) -> dict[int, tuple[str, int]]:
    """container port -> (host ip, host port) of the service's ports."""
    out = {}
    for spec in service.get("ports", []):
        parts = str(spec).split("/")[0].split(":")
        assert len(parts) == 3, f"publish on an explicit host address: {spec}"
        ip, host, container = parts
        out[int(container)] = (ip, int(host))
    return out


def exposed_metric_names() -> set[str]:
    """Sample names mdgw.metrics exposes (counters' _total, histograms' _bucket...)."""
    names: set[str] = set()
    for obj in vars(metrics).values():
        if not isinstance(obj, MetricWrapperBase):
            continue
        (family,) = obj.describe()
        name = family.name
        if family.type == "counter":
            names |= {f"{name}_total", f"{name}_created"}
        elif family.type == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum", f"{name}_created"}
        else:
            names.add(name)
    return names


# ---- compose -----------------------------------------------------------------------


def test_every_required_service_is_there(services: dict[str, Any]) -> None:
    assert set(REQUIRED) <= set(services)


def test_every_service_has_an_image_or_a_build(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), name


def test_depends_on_targets_exist(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        deps = svc.get("depends_on") or []
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert dep != name


def test_ports_are_published_on_loopback_and_unique(services: dict[str, Any]) -> None:
    seen: dict[int, str] = {}
    for name, svc in services.items():
        for container, (ip, host) in published(svc).items():
            assert ip == "127.0.0.1", f"{name}: {container} published beyond loopback"
            assert host not in seen, f"host port {host} of {name} also used by {seen[host]}"
            assert 0 < container < 65536
            seen[host] = name


def test_mdgw_env_vars_are_real_config_fields(services: dict[str, Any]) -> None:
    known = config_vars()
    for name, svc in services.items():
        mdgw_vars = {k for k in env_of(svc) if k.startswith("MDGW_")}
        assert mdgw_vars <= known, f"{name}: unknown {sorted(mdgw_vars - known)}"
        if name in MDGW_SERVICES:
            cfg = config_of(svc)  # raises ConfigError on a value of the wrong type
            assert cfg.kafka.bootstrap == "kafka:9092", name


def test_mdgw_commands_parse(services: dict[str, Any]) -> None:
    parser = build_parser()
    for name in MDGW_SERVICES:
        svc = services[name]
        assert svc.get("build") == ".", name
        args = parser.parse_args(svc["command"])
        assert args.command in ("topics", "simulate", "gateway", "api"), name
    assert parser.parse_args(services["topics"]["command"]).action == "create"


def test_servers_listen_on_the_published_ports(services: dict[str, Any]) -> None:
    gw, api = config_of(services["gateway"]), config_of(services["api"])
    assert gw.gateway.host == "0.0.0.0" and api.api.host == "0.0.0.0"
    assert gw.gateway.port in published(services["gateway"])
    assert api.api.port in published(services["api"])


def test_tracing_is_wired_to_jaeger(services: dict[str, Any]) -> None:
    for name in ("simulator", "gateway", "api"):
        env = env_of(services[name])
        assert config_of(services[name]).telemetry.tracing, name
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", name
    config = yaml.safe_load((DEPLOY / "jaeger.yaml").read_text())
    assert config["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    assert "memory" in str(config["extensions"]["jaeger_storage"])
    mounts = services["jaeger"]["volumes"]
    assert any(m.startswith("./deploy/jaeger.yaml:") for m in mounts)


def test_kafka_is_single_node_kraft_with_an_internal_listener(services: dict[str, Any]) -> None:
    env = env_of(services["kafka"])
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "PLAINTEXT://kafka:9092" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert len(env["CLUSTER_ID"]) == 22


# ---- Prometheus --------------------------------------------------------------------


def test_prometheus_scrapes_gateway_and_api_ports(services: dict[str, Any]) -> None:
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in prom["scrape_configs"]
    }
    gw, api = config_of(services["gateway"]), config_of(services["api"])
    assert targets["gateway"] == [f"gateway:{gw.gateway.port}"]
    assert targets["api"] == [f"api:{api.api.port}"]
    for job in prom["scrape_configs"]:
        assert job.get("metrics_path", "/metrics") == "/metrics"
    mounts = services["prometheus"]["volumes"]
    assert any(
        m.startswith("./deploy/prometheus.yml:/etc/prometheus/prometheus.yml") for m in mounts
    )


# ---- Grafana -----------------------------------------------------------------------

PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "by", "without",
    "histogram_quantile", "le", "on", "ignoring", "offset", "and", "or", "unless",
}  # fmt: skip


def promql_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers, groupings and strings dropped)."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[m.end() :].lstrip().startswith("("):
            continue  # a function or aggregation
        names.add(m.group())
    return names - PROMQL_WORDS


def load_dashboard() -> dict[str, Any]:
    """The Grafana dashboard the compose stack provisions."""
    return json.loads((DEPLOY / "grafana" / "dashboards" / "mdgw.json").read_text())


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_promql_metric_extraction() -> None:
    assert promql_metrics(
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{job="x"}[1m])))'
    ) == {"a_bucket"}
    assert promql_metrics("max by (topic, partition) (kafka_consumer_lag)") == {
        "kafka_consumer_lag"
    }


def test_dashboard_queries_use_metrics_that_exist(dashboard: dict[str, Any]) -> None:
    known = exposed_metric_names()
    used: set[str] = set()
    for expr in exprs(dashboard):
        names = promql_metrics(expr)
        assert names, expr
        assert names <= known, f"{expr}: unknown {sorted(names - known)}"
        used |= names
    # what the issue asks the dashboard to show
    for wanted in (
        "ws_connections_active",
        "kafka_records_consumed_total",
        "message_broadcast_latency_seconds_bucket",
        "kafka_consumer_lag",
        "stale_streams",
        "gateway_hop_seconds_bucket",
        "gateway_loop_lag_seconds_bucket",
        "gateway_loop_stalls_total",
    ):
        assert wanted in used, wanted
    assert any("histogram_quantile" in e for e in exprs(dashboard))


def test_dashboard_panels_use_the_provisioned_datasource(dashboard: dict[str, Any]) -> None:
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yml").read_text()
    )
    uids = {d["uid"]: d for d in sources["datasources"]}
    assert uids["prometheus"]["url"] == "http://prometheus:9090"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]


def test_dashboard_is_provisioned_from_the_mounted_folder(services: dict[str, Any]) -> None:
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    mounts = services["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in mounts


# ---- Dockerfile --------------------------------------------------------------------


def test_dockerfile_builds_the_project_image() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"pip install (/src|\.)\s*$", text, re.M)
    # the compiled hot path, with a Rust toolchain newer than Debian's (PyO3 needs it)
    assert re.search(r"^FROM rust:\S+ AS rust$", text, re.M)
    assert re.search(r"pip install /src/native\s*$", text, re.M)
    assert "native/target" in (ROOT / ".dockerignore").read_text().split()
    assert 'ENTRYPOINT ["mdgw"]' in text
    assert re.search(r"^USER (?!root)", text, re.M)
