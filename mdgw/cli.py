"""``mdgw``: the one wiring point of every process (gateway, api, feeds, tools)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from mdgw.config import Config, ConfigError, load_config, logging_settings
from mdgw.logs import setup_logging

log = logging.getLogger("mdgw")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        help="Kafka bootstrap HOST:PORT (env MDGW_KAFKA_BOOTSTRAP, default 127.0.0.1:9092)",
    )
    p.add_argument("--config", help="YAML or TOML config file (see README: Configuration)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    p.add_argument("--log-json", action="store_true", default=None, help="JSON log lines")


def _server(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", help="listen address")
    p.add_argument("--port", type=int, help="listen port")
    p.add_argument("--tls-cert", help="PEM certificate: serve TLS (wss/https)")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdgw", description="Kafka-sourced market-data gateway")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("gateway", help="WebSocket gateway (docs/protocol.md §4), default port 8080")
    _common(p)
    _server(p)
    p.add_argument("--workers", type=int, help="processes sharing the port (SO_REUSEPORT)")

    p = sub.add_parser("api", help="REST API (docs/protocol.md §6), default port 8000")
    _common(p)
    _server(p)

    p = sub.add_parser("simulate", help="simulated BINANCE/COINBASE/KRAKEN feeds into Kafka")
    _common(p)
    p.add_argument("--rate", type=float, help="book updates per second, all streams together")
    p.add_argument("--duration", type=float, help="seconds to run (default: until stopped)")
    p.add_argument("--seed", type=int, help="random seed (reproducible books)")
    p.add_argument(
        "--symbols", type=int, dest="symbols_per_exchange", help="symbols per exchange (default 3)"
    )
    p.add_argument(
        "--backfill-hours",
        type=float,
        help="instead: write the trades of the past N hours at full speed, then exit",
    )
    p.add_argument(
        "--trade-rate", type=float, default=100.0, help="trades per second of the backfill"
    )

    p = sub.add_parser("replay", help="publish recorded market data into Kafka")
    _common(p)
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="1 = recorded pace, 10 = 10x, 0 = as fast as possible",
    )
    p.add_argument(
        "--format",
        choices=["cryptofeed", "tardis", "native"],
        help="input format (detected when absent)",
    )
    p.add_argument("--loop", action="store_true", help="replay again and again (demos)")
    p.add_argument(
        "--exchange-info",
        metavar="FILE",
        help="Binance GET /api/v3/exchangeInfo answer (JSON): names Binance's symbols",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    p = sub.add_parser("record", help="capture the project's Kafka topics into a file")
    _common(p)
    p.add_argument("--out", required=True, help="output file (project capture format)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (default: until stopped)")
    p.add_argument("--from-beginning", action="store_true", help="include the topics' history")

    p = sub.add_parser("connect", help="live exchange connector into Kafka")
    _common(p)
    p.add_argument("venue", choices=["binance", "coinbase", "kraken"])
    p.add_argument("--symbols", required=True, help="canonical symbols, e.g. BTC-USDT,ETH-USDT")
    p.add_argument("--duration", type=float, default=0.0, help="seconds (default: until stopped)")
    p.add_argument("--ws-url", help="override the venue's WebSocket URL (tests, proxies)")
    p.add_argument("--rest-url", help="override the venue's REST base URL (Binance)")
    p.add_argument(
        "--exchange-info",
        metavar="FILE|fetch",
        help="Binance: check the symbols against an exchangeInfo answer saved in FILE, "
        "or fetched from the venue at start with 'fetch'",
    )

    p = sub.add_parser("topics", help="create or describe the Kafka topics")
    _common(p)
    p.add_argument("action", choices=["create", "describe"])
    p.add_argument("--partitions", type=int, help="partitions per topic (default 6)")

    p = sub.add_parser("token", help="print a JWT signed with the configured secret")
    _common(p)
    p.add_argument("--sub", required=True, help="subject (client id)")
    p.add_argument("--ttl", type=float, default=3600.0, help="seconds until it expires")
    p.add_argument(
        "--secret-file",
        help="file holding the HS256 secret (default: env MDGW_AUTH_JWT_SECRET[_FILE])",
    )
    p.add_argument("--secret", help=argparse.SUPPRESS)  # refused: see cmd_token
    p.add_argument("--private-key", help="PEM private key file for RS256/ES256")
    p.add_argument("--algorithm", help="signing algorithm (default: first allowed)")
    p.add_argument("--symbols", help="comma-separated symbols the token may subscribe to")
    p.add_argument("--channels", help="comma-separated channels the token may use")

    p = sub.add_parser("hash-key", help="print the SHA-256 digest of an API key for the config")
    p.add_argument("key", nargs="?", help="the key (default: read from stdin, kept out of ps)")

    p = sub.add_parser("top", help="live terminal view of a running gateway and API")
    _common(p)
    p.add_argument("--gateway", help="gateway base URL (default: from gateway.host/port)")
    p.add_argument("--api", help="API base URL (default: from api.host/port)")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    p.add_argument("--window", type=float, default=5.0, help="seconds the rates are taken over")
    p.add_argument("--api-key-file", help="file holding an X-API-Key for /api/v1/feeds")

    p = sub.add_parser("demo", help="topics + simulator + gateway + API in one command")
    _common(p)
    p.add_argument("--rate", type=float, default=200.0)
    p.add_argument(
        "--observe",
        action="store_true",
        help="tracing on and the dashboard's trace view (scripts/demo --observe also starts "
        "Prometheus and Jaeger)",
    )
    p.add_argument("--prometheus-url", help="where the demo's Prometheus is, to print it")
    return parser


def config_from_args(args: argparse.Namespace, section: str | None = None) -> Config:
    overrides: dict[str, dict[str, Any]] = {"kafka": {"bootstrap": args.bootstrap}, "telemetry": {}}
    if getattr(args, "log_level", None):
        overrides["telemetry"]["log_level"] = args.log_level
    if getattr(args, "log_json", None):
        overrides["telemetry"]["log_json"] = True
    if section:
        overrides[section] = {
            name: getattr(args, name, None)
            for name in (
                "host",
                "port",
                "workers",
                "tls_cert",
                "tls_key",
                "rate",
                "duration",
                "seed",
                "symbols_per_exchange",
                "partitions",
            )
            if getattr(args, name, None) is not None
        }
    if getattr(args, "partitions", None):
        overrides["kafka"]["partitions"] = args.partitions
        overrides[section or "kafka"].pop("partitions", None)
    return load_config(getattr(args, "config", None), overrides=overrides)


def cmd_topics(args: argparse.Namespace) -> int:
    from mdgw.kafka.admin import create_topics, describe_topic_config, topic_specs

    cfg = config_from_args(args).kafka
    if args.action == "create":
        for name, state in create_topics(cfg).items():
            print(f"{name}: {state}")
    else:
        for spec in topic_specs(cfg):
            conf = describe_topic_config(cfg, spec.name)
            print(
                f"{spec.name}: cleanup.policy={conf.get('cleanup.policy')} "
                f"retention.ms={conf.get('retention.ms')}"
            )
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.workers import run_workers

    cfg = config_from_args(args, "gateway")
    return run_workers(cfg)


def cmd_api(args: argparse.Namespace) -> int:
    from api.main import run_api

    cfg = config_from_args(args, "api")
    return run_api(cfg)


def cmd_simulate(args: argparse.Namespace) -> int:
    import signal
    import threading

    from mdgw.kafka.sink import KafkaSink
    from producers.publisher import Publisher
    from producers.simulate_run import run_simulator

    cfg = config_from_args(args, "simulator")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if args.backfill_hours:
        from producers.backfill import run_backfill

        sink = KafkaSink(cfg.kafka, linger_ms=20, extra={"batch.size": 1_000_000})
        filled = run_backfill(
            cfg.simulator,
            sink,
            cfg.kafka,
            hours=args.backfill_hours,
            trade_rate=args.trade_rate,
            stop=stop,
            progress=True,
        )
        return 0 if sink.stats.failed == 0 and not filled.undelivered else 1
    sink = KafkaSink(cfg.kafka)
    stats = run_simulator(cfg.simulator, Publisher(sink, cfg.kafka), stop=stop)
    print(stats.summary(), file=sys.stderr)
    # stats.ok: records still unacknowledged when the flush gave up are lost at exit too
    return 0 if stats.ok and sink.stats.failed == 0 else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from producers.replay import run_replay

    cfg = config_from_args(args)
    return run_replay(
        cfg,
        args.files,
        speed=args.speed,
        fmt=args.format,
        loop=args.loop,
        progress=not args.no_progress,
        exchange_info=args.exchange_info,
    )


def cmd_record(args: argparse.Namespace) -> int:
    from producers.record import run_record

    cfg = config_from_args(args)
    return run_record(cfg, args.out, duration=args.duration, from_beginning=args.from_beginning)


def cmd_connect(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from producers.captures.symbols import ExchangeInfoError, read_exchange_info
    from producers.connectors.errors import ConnectorError
    from producers.connectors.run import run_connector

    cfg = config_from_args(args)
    symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
    info = None
    if args.exchange_info not in (None, "fetch"):
        try:
            info = read_exchange_info(args.exchange_info)
        except ExchangeInfoError as e:
            print(f"mdgw connect: --exchange-info {e}", file=sys.stderr)
            return 2

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.duration:
            loop.call_later(args.duration, stop.set)
        stats = await run_connector(
            cfg,
            args.venue,
            symbols,
            ws_url=args.ws_url,
            rest_url=args.rest_url,
            stop=stop,
            exchange_info=info,
            fetch_exchange_info=args.exchange_info == "fetch",
        )
        print(stats.format(), file=sys.stderr)
        return 0

    try:
        return asyncio.run(main())
    except ConnectorError as e:
        print(f"mdgw connect: {e}", file=sys.stderr)
        return 2


def cmd_token(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from gateway.auth import issue_token

    if args.secret is not None:
        # A secret on the command line is visible to every user in `ps` and stays in
        # the shell history: only the environment or a file may carry it.
        print(
            "mdgw token: --secret is not accepted (visible in ps and shell history); "
            "set MDGW_AUTH_JWT_SECRET or pass --secret-file FILE",
            file=sys.stderr,
        )
        return 2
    cfg = config_from_args(args).auth
    if args.secret_file:
        cfg = dataclasses.replace(cfg, jwt_secret="", jwt_secret_file=args.secret_file)
    extra: dict[str, Any] = {}
    if args.symbols:
        extra["symbols"] = [s.strip() for s in args.symbols.split(",") if s.strip()]
    if args.channels:
        extra["channels"] = [c.strip() for c in args.channels.split(",") if c.strip()]
    key = Path(args.private_key).read_text() if args.private_key else None
    try:
        print(
            issue_token(
                cfg, args.sub, args.ttl, private_key=key, algorithm=args.algorithm, extra=extra
            )
        )
    except (ValueError, ConfigError) as e:
        print(f"mdgw token: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_hash_key(args: argparse.Namespace) -> int:
    import hashlib

    key = args.key if args.key is not None else sys.stdin.readline().rstrip("\r\n")
    print(hashlib.sha256(key.encode()).hexdigest())
    return 0


def _local_url(host: str, port: int, tls: bool) -> str:
    """Where a server bound to ``host`` is reached from this machine."""
    reach = "127.0.0.1" if host in ("", "0.0.0.0") else "[::1]" if host == "::" else host
    return f"{'https' if tls else 'http'}://{reach}:{port}"


def cmd_top(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mdgw.top.model import TopState
    from mdgw.top.run import run_top

    cfg = config_from_args(args)
    if args.interval <= 0 or args.window < args.interval:
        print("mdgw top: need --interval > 0 and --window >= --interval", file=sys.stderr)
        return 2
    g, a = cfg.gateway, cfg.api
    state = TopState(
        gateway_url=(args.gateway or _local_url(g.host, g.port, bool(g.tls_cert))).rstrip("/"),
        api_url=(args.api or _local_url(a.host, a.port, bool(a.tls_cert))).rstrip("/"),
        interval=args.interval,
        window=args.window,
    )
    key = Path(args.api_key_file).read_text().strip() if args.api_key_file else ""
    return run_top(state, api_key=key)


def cmd_demo(args: argparse.Namespace) -> int:
    from mdgw.demo import run_demo

    cfg = config_from_args(args)
    return run_demo(cfg, rate=args.rate, observe=args.observe, prometheus=args.prometheus_url)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "topics": cmd_topics,
    "gateway": cmd_gateway,
    "api": cmd_api,
    "simulate": cmd_simulate,
    "replay": cmd_replay,
    "connect": cmd_connect,
    "record": cmd_record,
    "token": cmd_token,
    "hash-key": cmd_hash_key,
    "demo": cmd_demo,
    "top": cmd_top,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        early = logging_settings()
        level = getattr(args, "log_level", None) or early.log_level  # hash-key has no flags
        json_logs = bool(args.log_json) if hasattr(args, "log_json") else False
        setup_logging(level, json_logs or early.log_json)
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(f"mdgw: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
