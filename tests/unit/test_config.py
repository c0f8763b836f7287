"""Configuration: layering, types, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdgw.config import ConfigError, TelemetryConfig, load_config, logging_settings


def test_layers_file_then_env_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("gateway:\n  port: 9000\n  compression: false\nkafka:\n  partitions: 2\n")
    cfg = load_config(
        f,
        env={"MDGW_GATEWAY_PORT": "9100", "MDGW_AUTH_API_KEYS": "a,b"},
        overrides={"gateway": {"port": 9200}},
    )
    assert cfg.gateway.port == 9200 and cfg.gateway.compression is False
    assert cfg.kafka.partitions == 2 and cfg.auth.api_keys == ("a", "b")
    toml = tmp_path / "c.toml"
    toml.write_text("[api]\nport = 8001\n")
    assert load_config(toml, env={}).api.port == 8001


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"MDGW_GATEWAY_PORT": "eighty"}, "MDGW_GATEWAY_PORT"),
        ({"MDGW_GATEWAY_COMPRESSION": "maybe"}, "MDGW_GATEWAY_COMPRESSION"),
        ({"MDGW_GATEWAY_PORT": "70000"}, "gateway.port"),
        ({"MDGW_GATEWAY_MODE": "mesh"}, "gateway.mode"),
        ({"MDGW_AUTH_JWT_ENABLED": "1"}, "jwt_secret"),
        (
            {
                "MDGW_AUTH_JWT_ENABLED": "1",
                "MDGW_AUTH_JWT_SECRET": "s",
                "MDGW_AUTH_JWT_ALGORITHMS": "HS256,none",
            },
            "none",
        ),
        ({"MDGW_GATEWAY_TLS_CERT": "/x.pem"}, "tls_key"),
        ({"MDGW_GATEWAY_MAX_LAG_MS": "0"}, r"gateway\.max_lag_ms"),
        ({"MDGW_GATEWAY_RESUME_MESSAGES": "-1"}, r"gateway\.resume_messages"),
        ({"MDGW_GATEWAY_RESUME_MS": "-5"}, r"gateway\.resume_messages and resume_ms"),
        ({"MDGW_GATEWAY_PROBE_INTERVAL_MS": "-1"}, r"gateway\.probe_interval_ms"),
        ({"MDGW_GATEWAY_PROBE_INTERVAL_MS": "250"}, r"below half of max_lag_ms \(500\)"),
        ({"MDGW_GATEWAY_SEND_BUFFER_BYTES": "-5"}, r"gateway\.send_buffer_bytes"),
        ({"MDGW_GATEWAY_RESYNC_INTERVAL": "-1"}, r"gateway\.resync_interval"),
        ({"MDGW_GATEWAY_STALL_MS": "-5"}, r"gateway\.stall_ms"),
        ({"MDGW_KAFKA_PRODUCER_LINGER_MS": "-1"}, r"kafka\.producer_linger_ms"),
        ({"MDGW_KAFKA_FETCH_WAIT_MAX_MS": "-1"}, r"kafka\.fetch_wait_max_ms"),
        ({"MDGW_KAFKA_FETCH_MIN_BYTES": "0"}, r"kafka\.fetch_min_bytes"),
        ({"MDGW_KAFKA_IDLE_FETCH_WAIT_MS": "-1"}, r"kafka\.idle_fetch_wait_ms"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_config(env=env)


def test_unknown_keys_and_sections_are_errors(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("gateway:\n  prot: 1\n")
    with pytest.raises(ConfigError, match=r"gateway\.prot"):
        load_config(f, env={})
    f.write_text("gatway:\n  port: 1\n")
    with pytest.raises(ConfigError, match="gatway"):
        load_config(f, env={})
    f.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(f, env={})
    with pytest.raises(ConfigError, match=r"nope\.yaml"):
        load_config(tmp_path / "nope.yaml", env={})


def test_opentelemetry_variables_set_telemetry_and_mdgw_ones_win() -> None:
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "feed-a"}
    t = load_config(env=env).telemetry
    assert (t.exporter, t.service_name) == ("console", "feed-a")
    t = load_config(env={**env, "MDGW_TELEMETRY_EXPORTER": "none"}).telemetry
    assert t.exporter == "none"
    env = {"MDGW_TELEMETRY_TRACING": "1", "OTEL_SDK_DISABLED": "TRUE"}
    assert load_config(env=env).telemetry.tracing is False
    assert load_config(env={"MDGW_TELEMETRY_TRACING": "1"}).telemetry.tracing is True


def test_logging_settings_come_from_the_environment_alone() -> None:
    t = logging_settings({"MDGW_TELEMETRY_LOG_LEVEL": "DEBUG", "MDGW_TELEMETRY_LOG_JSON": "yes"})
    assert (t.log_level, t.log_json) == ("DEBUG", True)
    assert logging_settings({}) == TelemetryConfig()
    with pytest.raises(ConfigError, match="MDGW_TELEMETRY_LOG_JSON"):
        logging_settings({"MDGW_TELEMETRY_LOG_JSON": "maybe"})


def test_probes_off_and_the_latency_defaults_are_valid() -> None:
    cfg = load_config(env={"MDGW_GATEWAY_PROBE_INTERVAL_MS": "0"})
    assert cfg.gateway.probe_interval_ms == 0 and load_config(env={}).gateway.max_lag_ms == 500


def test_an_unset_probe_interval_fits_a_lower_max_lag() -> None:
    """A lower max_lag_ms alone loads (the probe interval follows it); an explicit probe
    interval that does not fit is still refused."""
    cfg = load_config(env={"MDGW_GATEWAY_MAX_LAG_MS": "300"})
    assert cfg.gateway.probe_interval_ms == 149
    assert load_config(env={}).gateway.probe_interval_ms == 200
    with pytest.raises(ConfigError, match=r"below half of max_lag_ms \(300\)"):
        load_config(env={"MDGW_GATEWAY_MAX_LAG_MS": "300", "MDGW_GATEWAY_PROBE_INTERVAL_MS": "200"})
