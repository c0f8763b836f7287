"""The one place configuration is read: defaults < config file < MDGW_* env < flags.

Every section is a frozen dataclass; each field maps to the environment variable
``MDGW_<SECTION>_<FIELD>`` (upper case), and to ``<section>: {<field>: ...}`` in a
YAML or TOML file given with ``--config``. Unknown keys and values of the wrong
type are errors at start-up, with a message naming the key, never silent defaults.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class ConfigError(Exception):
    """A configuration value or file that cannot be used."""


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers HOST:PORT[,HOST:PORT]."""
    client_id: str = "mdgw"
    """Kafka client id (also the prefix of helper consumer groups)."""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (every producer, consumer and admin client)."""
    sasl_mechanism: str = ""
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL_* protocol)."""
    sasl_username: str = ""
    """SASL user name."""
    sasl_password: str = ""
    """SASL password (prefer sasl_password_file)."""
    sasl_password_file: str = ""
    """File holding the SASL password (trailing newline ignored)."""
    ssl_ca_file: str = ""
    """PEM CA certificate(s) the broker's certificate must chain to (default: system CAs)."""
    ssl_cert_file: str = ""
    """PEM client certificate (mutual TLS)."""
    ssl_key_file: str = ""
    """PEM private key of ssl_cert_file."""
    ssl_key_password: str = ""
    """Password of ssl_key_file, if encrypted."""
    ssl_check_hostname: bool = True
    """Verify that the broker's certificate names the host connected to."""
    book_topic: str = "marketdata.book"
    """Book deltas and snapshots."""
    trades_topic: str = "marketdata.trades"
    """Trades."""
    snapshots_topic: str = "marketdata.book.snapshots"
    """Compacted latest full book per stream."""
    checkpoints_topic: str = "marketdata.book.checkpoints"
    """Time-indexed full books for time travel (not compacted)."""
    stats_topic: str = "marketdata.stats.snapshots"
    """Compacted checkpoints of each stream's 24 h statistics and recent trades."""
    dlq_topic: str = "marketdata.dlq"
    """Dead letters: records that failed to decode or validate."""
    max_streams: int = 10_000
    """Streams a consumer keeps; records of further new streams are dead-lettered."""
    max_sequence_jump: int = 1_000_000_000_000
    """Largest forward sequence jump of a book record (0 = unchecked); beyond: dead-lettered."""
    partitions: int = 6
    """Partitions per topic created by `mdgw topics create`."""
    replication_factor: int = 1
    """Replication factor of created topics."""
    retention_ms: int = 7 * 24 * 3600 * 1000
    """Retention of the book, trades and checkpoint topics: the time-travel horizon."""
    producer_linger_ms: float = 0.0
    """Producers' linger.ms: how long a record may wait to share a batch. Any value above
    0 costs about 1 ms at the median (librdkafka's timer ticks in ms; bench/README.md)."""
    fetch_wait_max_ms: int = 100
    """Consumers' fetch.wait.max.ms: how long the broker holds a fetch that has less
    than fetch_min_bytes (an empty fetch is answered as soon as data arrives)."""
    fetch_min_bytes: int = 1
    """Consumers' fetch.min.bytes: 1 = answer a fetch as soon as any record is there;
    larger (with a small fetch_wait_max_ms) batches records: less CPU per record on both
    sides, up to fetch_wait_max_ms more latency (bench/README.md)."""
    idle_fetch_wait_ms: int = 250
    """A gateway with no WebSocket client for 5 s fetches in bulk (fetch.min.bytes 1 MiB,
    this wait): nobody waits for its records, and a record costs a fraction of the CPU
    (bench/README.md; 250 ms: a fifth less than 50 ms). The first client to connect
    switches it back to the eager fetch above; its requests wait the few ms until the
    records this fetch held back are in the books. 0 = always eager."""


@dataclass(frozen=True)
class GatewayConfig:
    host: str = "127.0.0.1"
    """Listen address (0.0.0.0: every interface)."""
    port: int = 8080
    """WebSocket (and /health, /metrics) port."""
    group_id: str = "mdgw-gateway"
    """Consumer group id prefix."""
    workers: int = 1
    """Processes sharing the port (SO_REUSEPORT)."""
    listen_sockets: int = 8
    """Listening sockets per process sharing the port (SO_REUSEPORT, Linux only): the event
    loop (libuv) accepts one connection per socket per loop turn, so a busy gateway takes
    new connections this many times faster (1 = one socket)."""
    mode: str = "replica"
    """replica: every process reads every partition; sharded: one group splits them."""
    max_connections: int = 10_000
    """Open connections per process; beyond, the handshake gets HTTP 503."""
    max_connections_per_ip: int = 500
    """Open connections per client IP (IPv6: per /64) per process; beyond, 429 (0 = no cap)."""
    max_message_size: int = 65_536
    """Largest client frame; larger closes with 1009."""
    ping_interval: float = 30.0
    """Seconds between keep-alive pings (0 = off)."""
    connection_timeout: float = 60.0
    """Seconds without a pong before the connection is closed."""
    handshake_timeout: float = 10.0
    """Seconds a client has to complete the opening handshake."""
    compression: bool = True
    """permessage-deflate offered to clients."""
    use_binary_protocol: bool = True
    """Format when the client names none: protobuf (true) or JSON."""
    heartbeat_interval: float = 5.0
    """Seconds between heartbeat messages."""
    control_rate: float = 5.0
    """Control messages per second per connection (Binance allows 5)."""
    control_burst: int = 20
    """Control messages a connection may send at once."""
    max_subscriptions: int = 1024
    """Subscriptions per connection (Binance allows 1024)."""
    snapshot_rate: float = 100.0
    """Book snapshots per second a connection may ask for (subscribe, resync)."""
    snapshot_burst: int = 1024
    """Book snapshots a connection may ask for at once."""
    abuse_strikes: int = 50
    """Refused control messages before the connection is closed with 1008."""
    high_water_bytes: int = 1_048_576
    """Unsent bytes past which a client's deltas are dropped and it is resynced."""
    slow_timeout: float = 5.0
    """Seconds a client may stay behind before 1013."""
    resync_interval: float = 1.5
    """Least seconds between two resyncs of one client (a client that keeps falling
    behind waits this long, caught up but without data, for its next snapshot)."""
    max_lag_ms: int = 500
    """Age of the oldest book message still queued for a client (in the process or the
    kernel's send queue) past which it is resynced (docs/protocol.md §4.6)."""
    probe_interval_ms: int = 200
    """Probe pings after data at most this often per client: their pongs tell what the
    client has read (0 = judge freshness by the kernel's send queue only). Each costs a
    write, a read and the client's pong: 100 ms added ~3 ms at p50 and ~17 ms at p99 at
    moderate load against 200 (two pairs, bench/README.md). Must be below half of
    max_lag_ms; left unset, it is lowered to fit a max_lag_ms of 400 or less."""
    send_buffer_bytes: int = 131_072
    """SO_SNDBUF of client sockets (0 = the OS's autotuning): bounds what can wait,
    undroppable, in the kernel."""
    stall_ms: int = 250
    """An event loop held this long is counted and logged with the stack that held it
    (`gateway_loop_stalls_total`; 0 = off)."""
    gc_freeze: bool = True
    """Move start-up objects (books, code) out of the garbage collector's scans once caught
    up, then after each full collection what survived it (the whole heap is scanned again
    once a quarter of the open connections have closed): shorter full collections on
    the hot path."""
    snapshot_every_updates: int = 1000
    """Write a book to the compacted topic every N updates..."""
    snapshot_every_ms: int = 5_000
    """...or every T ms, whichever comes first."""
    checkpoint_every_ms: int = 60_000
    """Interval of book checkpoints (the most deltas a replay reads) and statistics ones."""
    trades_per_stream: int = 1000
    """Recent trades kept per stream."""
    conflation_ms: int = 100
    """Interval of the `100ms` speed."""
    tls_cert: str = ""
    """PEM certificate: serve wss."""
    tls_key: str = ""
    """PEM key of tls_cert."""
    allowed_origins: tuple[str, ...] = ()
    """Browser Origins allowed to connect (empty = any)."""
    connects_per_minute_per_ip: int = 600
    """Handshakes per IP per minute (0 = unlimited)."""
    ops_requests_per_second: int = 10
    """GET /health and /metrics per IP (IPv6: /64) per second on the gateway port (0 = no cap)."""
    max_replays: int = 32
    """Time-travel replays running at once, all clients."""
    max_replays_per_connection: int = 4
    """Replays running at once per connection."""
    max_replays_per_client: int = 8
    """Replays running at once per client (token subject, else IP; IPv6 by /64)."""
    max_replay_symbols: int = 16
    """Symbols in one replay request."""
    max_history_readers: int = 64
    """Streams being replayed at once, all clients: Kafka history consumers and their threads."""
    resume_messages: int = 4096
    """Recent messages kept per book view for `subscribe` with `since` (0 = never resume)..."""
    resume_ms: int = 10_000
    """...none older than this; a view nobody subscribes to is kept this long for them."""


@dataclass(frozen=True)
class ApiConfig:
    host: str = "127.0.0.1"
    """Listen address (0.0.0.0: every interface)."""
    port: int = 8000
    """REST port."""
    group_id: str = "mdgw-api"
    """Consumer group id prefix."""
    rate_limit: int = 100
    """Requests per second per client IP."""
    trades_per_stream: int = 1000
    """Recent trades kept per stream."""
    tls_cert: str = ""
    """PEM certificate: serve https."""
    tls_key: str = ""
    """PEM key of tls_cert."""
    cors_origins: tuple[str, ...] = ()
    """CORS allowed origins (empty = no CORS: only the dashboard's own origin)."""
    dashboard_ws_hosts: tuple[str, ...] = ()
    """Hosts (host or host:port) besides its own that the dashboard's ?ws= may name."""
    history_reads: int = 4
    """?at= history reads running at once; beyond, 503 with Retry-After."""
    history_cache: int = 256
    """Past books (?at=) kept, by (stream, instant in ms)."""
    trusted_proxies: tuple[str, ...] = ()
    """Peers whose X-Forwarded-For is believed."""
    open_paths: tuple[str, ...] = ("/health", "/ready", "/metrics", "/schema", "/")
    """Paths that need no API key."""
    jaeger_url: str = ""
    """Jaeger query service (http://127.0.0.1:16686) the dashboard's trace view reads
    through /api/v1/traces; empty = the trace view is off."""
    jaeger_timeout: float = 3.0
    """Seconds a Jaeger query may take; beyond, /api/v1/traces answers 503."""


@dataclass(frozen=True)
class AuthConfig:
    jwt_enabled: bool = False
    """Require a JWT on WebSocket handshakes."""
    jwt_secret: str = ""
    """HS256 secret, at least 32 bytes (prefer jwt_secret_file)."""
    jwt_secret_file: str = ""
    """File holding the HS256 secret (trailing newline ignored); wins over jwt_secret."""
    jwt_public_key_file: str = ""
    """PEM public key for RS256/ES256."""
    jwt_jwks_file: str = ""
    """JWKS file (keys chosen by kid)."""
    jwt_algorithms: tuple[str, ...] = ("HS256",)
    """Allowed algorithms (never none)."""
    jwt_issuer: str = "market-data-server"
    """Required iss claim."""
    jwt_audience: str = ""
    """Required aud claim (empty = not checked)."""
    jwt_leeway: float = 5.0
    """Clock-skew leeway in seconds for exp/nbf."""
    jwt_max_lifetime: float = 86_400.0
    """Longest token lifetime accepted, seconds (exp - iat, or exp - now); 0 = no limit."""
    max_connections_per_subject: int = 100
    """Open connections per token subject."""
    api_keys: tuple[str, ...] = ()
    """SHA-256 hex digests of accepted API keys (never the keys themselves)."""
    api_keys_file: str = ""
    """File of SHA-256 digests, one per line."""


@dataclass(frozen=True)
class SimulatorConfig:
    rate: float = 200.0
    """Book updates per second, all streams together."""
    duration: float = 0.0
    """Seconds to run; 0 runs until stopped."""
    seed: int = 1
    """Random seed (reproducible books)."""
    snapshot_every: int = 500
    """Full-book record every N book records per stream."""
    trade_ratio: float = 0.1
    """Fraction of events that are trades."""
    levels: int = 300
    """Levels per book side."""
    symbols_per_exchange: int = 3
    """Symbols per exchange (3 real-looking, more synthetic)."""


@dataclass(frozen=True)
class TelemetryConfig:
    log_json: bool = False
    """One JSON object per log line."""
    log_level: str = "INFO"
    """DEBUG, INFO, WARNING, ERROR."""
    trace_ratio: float = 0.01
    """Share of records traced when tracing is on."""
    tracing: bool = False
    """OpenTelemetry tracing on/off (OTEL_SDK_DISABLED=true turns it off); the OTLP
    exporter reads the standard OTEL_EXPORTER_OTLP_* variables."""
    exporter: str = "otlp"
    """Span exporter: otlp (over HTTP), console or none; OTEL_TRACES_EXPORTER also sets it."""
    service_name: str = ""
    """service.name of spans (empty: mdgw-producer, mdgw-gateway, mdgw-api);
    OTEL_SERVICE_NAME also sets it."""


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    gateway: GatewayConfig = field(default_factory=GatewayConfig)
    api: ApiConfig = field(default_factory=ApiConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)


STANDARD_ENV = {
    ("telemetry", "exporter"): "OTEL_TRACES_EXPORTER",
    ("telemetry", "service_name"): "OTEL_SERVICE_NAME",
}
"""OpenTelemetry's own variables for a setting; the MDGW_* variable wins over them."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce(where: str, hint: Any, value: Any) -> Any:
    """Turn a file or env value into the field's type, or raise ConfigError."""
    origin = typing.get_origin(hint)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip().replace("_", ""))
            except ValueError:
                pass
    elif hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
    elif origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if isinstance(value, list | tuple):
            return tuple(str(v) for v in value)
    elif origin in (typing.Union, types.UnionType):
        return value
    raise ConfigError(f"{where}: cannot use {value!r} as {getattr(hint, '__name__', hint)}")


def _section_fields(section_cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(section_cls)}


def _read_file(path: Path) -> Mapping[str, Any]:
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"config file {path}: {e.strerror}") from e
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"config file {path}: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path}: top level must be a mapping of sections")
    return data


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the Config from a file, the environment and flag overrides (highest)."""
    env = os.environ if env is None else env
    file_data = _read_file(Path(path)) if path else {}
    sections_cls = _section_fields(Config)
    unknown = set(file_data) - set(sections_cls)
    if unknown:
        raise ConfigError(f"unknown config section(s): {', '.join(sorted(unknown))}")
    sections: dict[str, Any] = {}
    for name, cls in sections_cls.items():
        fields = _section_fields(cls)
        values: dict[str, Any] = {}
        raw = file_data.get(name) or {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"config section {name!r} must be a mapping")
        for key, value in raw.items():
            if key not in fields:
                raise ConfigError(f"unknown config key {name}.{key}")
            values[key] = _coerce(f"{name}.{key}", fields[key], value)
        for key, hint in fields.items():
            for var in (STANDARD_ENV.get((name, key)), f"MDGW_{name}_{key}".upper()):
                if var is not None and var in env:
                    values[key] = _coerce(var, hint, env[var])
        if name == "telemetry" and env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            values["tracing"] = False  # OpenTelemetry's switch for all its SDKs
        for key, value in (overrides or {}).get(name, {}).items():
            if value is not None:
                values[key] = _coerce(f"--{key}", fields[key], value)
        if name == "gateway" and "probe_interval_ms" not in values:
            values["probe_interval_ms"] = _default_probe_ms(values)
        sections[name] = cls(**values)
    config = Config(**sections)
    validate(config)
    return config


def _default_probe_ms(gateway: Mapping[str, Any]) -> int:
    """The probe interval nobody set: the default, or below half of a lower max_lag_ms
    (which the freshness check needs, ``_validate_latency``), not an error."""
    default = GatewayConfig.probe_interval_ms
    max_lag = gateway.get("max_lag_ms", GatewayConfig.max_lag_ms)
    return max(0, min(default, (max_lag - 1) // 2))


def logging_settings(env: Mapping[str, str] | None = None) -> TelemetryConfig:
    """The telemetry section from the environment alone: logging is set up before the
    command reads its configuration file (whose errors it must be able to log)."""
    env = os.environ if env is None else env
    fields = _section_fields(TelemetryConfig)
    values = {
        key: _coerce(var, fields[key], env[var])
        for key in ("log_level", "log_json")
        if (var := f"MDGW_TELEMETRY_{key.upper()}") in env
    }
    return TelemetryConfig(**values)


def validate(config: Config) -> None:
    """Reject combinations no process can run with."""
    g = config.gateway
    for where, port in (("gateway.port", g.port), ("api.port", config.api.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where} must be 0..65535, got {port}")
    if g.mode not in ("replica", "sharded"):
        raise ConfigError(f"gateway.mode must be replica or sharded, got {g.mode!r}")
    if g.workers < 1:
        raise ConfigError("gateway.workers must be >= 1")
    if not 1 <= g.listen_sockets <= 64:
        raise ConfigError(f"gateway.listen_sockets must be 1..64, got {g.listen_sockets}")
    if bool(g.tls_cert) != bool(g.tls_key):
        raise ConfigError("gateway.tls_cert and gateway.tls_key go together")
    if bool(config.api.tls_cert) != bool(config.api.tls_key):
        raise ConfigError("api.tls_cert and api.tls_key go together")
    if config.kafka.partitions < 1:
        raise ConfigError("kafka.partitions must be >= 1")
    _validate_jaeger(config.api)
    _validate_latency(config)
    from mdgw.kafka.security import validate_security  # the Kafka package imports config

    validate_security(config.kafka)
    if not 0.0 <= config.telemetry.trace_ratio <= 1.0:
        raise ConfigError("telemetry.trace_ratio must be within 0..1")
    a = config.auth
    keys = a.jwt_secret or a.jwt_secret_file or a.jwt_public_key_file or a.jwt_jwks_file
    if a.jwt_enabled and not keys:
        raise ConfigError(
            "auth.jwt_enabled needs jwt_secret(_file), jwt_public_key_file or jwt_jwks_file"
        )
    if "none" in (alg.lower() for alg in a.jwt_algorithms):
        raise ConfigError("auth.jwt_algorithms must not contain 'none'")
    secret = jwt_secret(a)
    if secret and len(secret.encode()) < MIN_SECRET_BYTES:
        # RFC 7518 §3.2: an HS256 key shorter than the hash output can be brute-forced
        raise ConfigError(
            f"auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    if a.jwt_max_lifetime < 0:
        raise ConfigError("auth.jwt_max_lifetime must be >= 0")


def _validate_latency(config: Config) -> None:
    """The hot path's settings (docs/protocol.md §4.6, bench/README.md)."""
    g, k = config.gateway, config.kafka
    if g.resume_messages < 0 or g.resume_ms < 0:
        raise ConfigError(
            f"gateway.resume_messages and resume_ms must be >= 0, got "
            f"{g.resume_messages} and {g.resume_ms}"
        )
    if g.max_lag_ms <= 0:
        raise ConfigError(f"gateway.max_lag_ms must be > 0, got {g.max_lag_ms}")
    if g.probe_interval_ms < 0 or 2 * g.probe_interval_ms >= g.max_lag_ms:
        # a client that keeps up is up to one probe interval unconfirmed: it would be
        # judged behind if the interval were half of max_lag_ms or more
        raise ConfigError(
            f"gateway.probe_interval_ms must be 0 (off) or below half of max_lag_ms "
            f"({g.max_lag_ms}), got {g.probe_interval_ms}"
        )
    for where, value in (
        ("gateway.send_buffer_bytes", g.send_buffer_bytes),
        ("kafka.producer_linger_ms", k.producer_linger_ms),
        ("kafka.fetch_wait_max_ms", k.fetch_wait_max_ms),
        ("kafka.idle_fetch_wait_ms", k.idle_fetch_wait_ms),
        ("gateway.resync_interval", g.resync_interval),
        ("gateway.stall_ms", g.stall_ms),
    ):
        if value < 0:
            raise ConfigError(f"{where} must be >= 0, got {value}")
    if k.fetch_min_bytes < 1:
        raise ConfigError(f"kafka.fetch_min_bytes must be >= 1, got {k.fetch_min_bytes}")


def _validate_jaeger(api: ApiConfig) -> None:
    url = api.jaeger_url
    if url and not re.fullmatch(r"https?://[A-Za-z0-9.\[\]:_-]+(?::\d+)?(?:/[^\s?#]*)?", url):
        raise ConfigError(f"api.jaeger_url must be http(s)://HOST[:PORT][/PATH], got {url!r}")
    if api.jaeger_timeout <= 0:
        raise ConfigError(f"api.jaeger_timeout must be > 0, got {api.jaeger_timeout}")


MIN_SECRET_BYTES = 32
"""Shortest HS256 secret accepted (the size of the SHA-256 output)."""


def jwt_secret(auth: AuthConfig) -> str:
    """The HS256 secret: the contents of ``jwt_secret_file`` when set, else ``jwt_secret``."""
    if not auth.jwt_secret_file:
        return auth.jwt_secret
    try:
        return Path(auth.jwt_secret_file).read_text().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"auth.jwt_secret_file {auth.jwt_secret_file}: {e.strerror}") from e
