"""Restart against a day of history: process start -> ready, with and without the
statistics checkpoints.

    python -m bench.restart_bench                 # 24 h at 100 trades/s, ~8.6 M trades
    python -m bench.restart_bench --hours 1       # a smaller history

1. Fill (once; reused while the topic holds it): ``mdgw simulate --backfill-hours H
   --trade-rate R`` into topics named ``<prefix>.marketdata.*``.
2. A live feed runs (``mdgw simulate``, R trades/s) while the gateways run.
3. Gateway A starts with an empty statistics topic: the full-recompute path (it
   reads the whole window). It then runs as in production, writing a round of
   checkpoints per trades partition every 60 s, and is killed (SIGKILL, no flush)
   ``--run-after`` seconds after it was ready: the worst case leaves up to one
   interval of trades after the last round.
4. Gateway B starts: checkpoint + tail; then ``--repeat`` more restarts of it (each
   after a SIGTERM, which flushes a round). Then the feed stops.
5. API C starts from the checkpoints (``--repeat`` times more), API D with the
   statistics topic absent (full path); both answer ``/api/v1/stats`` for every
   stream and symbol in the same minute, and the figures must be identical.

Ready = ``/health`` says ``"ready": true`` (gateway), ``/ready`` answers 200 (API):
both mean books and trades read up to where the topics ended at start-up. ``cpu_s``
is the process's CPU time (all threads) at that moment: on a shared machine it says
more about the cost than the wall time does.
Writes ``bench/results/restart.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from bench.common import write_result
from bench.procs import (
    PY,
    Proc,
    gateway_health,
    http_get,
    kafka_env,
    log_path,
    machine_busy,
    spawn,
)
from mdgw.config import Config, load_config
from mdgw.kafka.admin import create_topics
from mdgw.kafka.source import consumer_conf

TARGET_S = 3.0
GW_PORT, API_C, API_D = 18480, 18401, 18402


def prefixed(prefix: str, stats_suffix: str) -> Config:
    """A Config on ``<prefix>.``-named topics (kept between runs: the history is costly)."""
    base = load_config()
    k = base.kafka
    kafka = dataclasses.replace(
        k,
        client_id=prefix,
        book_topic=f"{prefix}.{k.book_topic}",
        trades_topic=f"{prefix}.{k.trades_topic}",
        snapshots_topic=f"{prefix}.{k.snapshots_topic}",
        checkpoints_topic=f"{prefix}.{k.checkpoints_topic}",
        dlq_topic=f"{prefix}.{k.dlq_topic}",
        stats_topic=f"{prefix}.{k.stats_topic}{stats_suffix}",
    )
    return dataclasses.replace(base, kafka=kafka)


def topic_records(cfg: Config, topic: str) -> int:
    c = Consumer(consumer_conf(cfg.kafka, f"{cfg.kafka.client_id}-count"))
    try:
        for _attempt in range(60):  # topics just created elect their leaders first
            try:
                md = c.list_topics(topic, timeout=10).topics[topic]
                total = 0
                for p in md.partitions:
                    low, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    total += high - low
                return total
            except KafkaException:
                time.sleep(0.5)
        raise RuntimeError(f"cannot read the offsets of {topic}")
    finally:
        c.close()


def fill(cfg: Config, hours: float, rate: float) -> dict[str, Any]:
    want = int(hours * 3600 * rate)
    have = topic_records(cfg, cfg.kafka.trades_topic)
    if have >= 0.97 * want:
        print(f"history: {have:,} trades already in {cfg.kafka.trades_topic}", flush=True)
        return {"trades": have, "fill_s": None, "reused": True}
    print(f"history: backfilling {want:,} trades ({hours} h at {rate}/s)...", flush=True)
    t0 = time.monotonic()
    env = kafka_env(cfg, MDGW_SIMULATOR_TRADE_RATIO=1.0, MDGW_TELEMETRY_LOG_LEVEL="INFO")
    argv = [PY, "-m", "mdgw", "simulate", "--backfill-hours", str(hours)]
    proc = spawn("backfill", [*argv, "--trade-rate", str(rate)], env)
    if proc.popen.wait() != 0:
        raise RuntimeError("backfill failed")
    have = topic_records(cfg, cfg.kafka.trades_topic)
    return {"trades": have, "fill_s": round(time.monotonic() - t0, 1), "reused": False}


def until_ready(proc: Proc, url: str, gateway: bool, t0: float, timeout: float) -> float:
    """Seconds from ``t0`` (just before the spawn) to ready."""
    while time.monotonic() - t0 < timeout:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        if gateway:
            h = gateway_health(GW_PORT)
            ok = bool(h and h.get("ready"))
        else:
            try:
                ok = json.loads(http_get(url, 2.0)).get("status") == "ready"
            except (OSError, ValueError):
                ok = False
        if ok:
            return time.monotonic() - t0
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} not ready in {timeout}s")


def bootstrap_line(proc: Proc) -> dict[str, Any]:
    """What the process logged about its bootstrap (checkpoints restored, trades to read)."""
    text = Path(log_path(proc.name)).read_text()
    m = re.search(r"(\d+) statistics checkpoints, (\d+) trades to read, in ([\d.]+)s", text)
    if not m:
        return {}
    return {
        "checkpoints": int(m[1]),
        "trades_to_read": int(m[2]),
        "bootstrap_s": float(m[3]),
    }


def run_gateway(cfg: Config, name: str, timeout: float) -> tuple[Proc, dict[str, Any]]:
    env = kafka_env(
        cfg, MDGW_TELEMETRY_LOG_LEVEL="INFO", MDGW_GATEWAY_GROUP_ID=f"{cfg.kafka.client_id}-gw"
    )
    argv = [PY, "-m", "mdgw", "gateway", "--host", "127.0.0.1", "--port", str(GW_PORT)]
    t0 = time.monotonic()
    proc = spawn(name, argv, env)
    ready = until_ready(proc, "", True, t0, timeout)
    out = {"ready_s": round(ready, 3), "cpu_s": round(proc.cpu(), 2), **bootstrap_line(proc)}
    print(f"{name}: ready after {ready:.2f}s {out}", flush=True)
    return proc, out


def run_api(cfg: Config, name: str, port: int, timeout: float) -> tuple[Proc, dict[str, Any]]:
    env = kafka_env(cfg, MDGW_TELEMETRY_LOG_LEVEL="INFO", MDGW_API_RATE_LIMIT=100000)
    argv = [PY, "-m", "mdgw", "api", "--host", "127.0.0.1", "--port", str(port)]
    t0 = time.monotonic()
    proc = spawn(name, argv, env)
    ready = until_ready(proc, f"http://127.0.0.1:{port}/ready", False, t0, timeout)
    out = {"ready_s": round(ready, 3), "cpu_s": round(proc.cpu(), 2), **bootstrap_line(proc)}
    print(f"{name}: ready after {ready:.2f}s {out}", flush=True)
    return proc, out


FIGURES = ("open", "high", "low", "last", "volume", "quote_volume", "vwap", "trade_count")


def compare_stats(names: list[str]) -> dict[str, Any]:
    """Every stream's and symbol's 24 h figures from both APIs, asked in the same minute."""
    for _attempt in range(5):
        minute = time.time() // 60
        got: dict[int, dict[str, tuple]] = {API_C: {}, API_D: {}}
        for port in got:
            for name in names:
                body = json.loads(http_get(f"http://127.0.0.1:{port}/api/v1/stats/{name}"))
                got[port][name] = tuple(body[f] for f in FIGURES)
        if time.time() // 60 == minute:
            diff = [n for n in names if got[API_C][n] != got[API_D][n]]
            trades = sum(got[API_C][n][-1] for n in names if ":" in n)
            return {"compared": len(names), "different": diff, "trades_in_window": trades}
    raise RuntimeError("could not ask both APIs within one minute")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--trade-rate", type=float, default=100.0)
    ap.add_argument("--prefix", default="restartbench")
    ap.add_argument("--run-after", type=float, default=70.0, help="gateway A's run once ready")
    ap.add_argument("--timeout", type=float, default=1800.0, help="longest full read")
    ap.add_argument("--repeat", type=int, default=3, help="more checkpoint restarts of each")
    args = ap.parse_args()

    stats_suffix = f".{int(time.time())}"  # a fresh statistics topic: A has no checkpoint
    cfg = prefixed(args.prefix, stats_suffix)
    create_topics(cfg.kafka)
    history = fill(cfg, args.hours, args.trade_rate)
    busy0 = machine_busy()

    live_env = kafka_env(cfg, MDGW_SIMULATOR_TRADE_RATIO=0.1)
    live = spawn(
        "live", [PY, "-m", "mdgw", "simulate", "--rate", str(args.trade_rate * 10)], live_env
    )
    try:
        gw_a, full = run_gateway(cfg, "gatewayA", args.timeout)
        time.sleep(args.run_after)
        gw_a.popen.send_signal(signal.SIGKILL)
        gw_a.popen.wait(10)
        gw_b, ckpt = run_gateway(cfg, "gatewayB", args.timeout)
        gw_b.stop()
        ckpt["again_ready_s"] = []  # more restarts (SIGTERM before each): the spread
        for i in range(args.repeat):
            gw, again = run_gateway(cfg, f"gatewayB{i}", args.timeout)
            gw.stop()
            ckpt["again_ready_s"].append(again["ready_s"])
    finally:
        live.stop()

    api_again = []
    for i in range(args.repeat):
        api, again = run_api(cfg, f"apiC{i}", API_C, args.timeout)
        api.stop()
        api_again.append(again["ready_s"])
    api_c, api_ckpt = run_api(cfg, "apiC", API_C, args.timeout)
    api_ckpt["again_ready_s"] = api_again
    absent = dataclasses.replace(cfg, kafka=dataclasses.replace(cfg.kafka, stats_topic="absent"))
    api_d, api_full = run_api(absent, "apiD", API_D, args.timeout)
    try:
        names = json.loads(http_get(f"http://127.0.0.1:{API_C}/api/v1/symbols"))
        streams = [f"{s['exchange']}:{s['symbol']}" for s in names]
        symbols = sorted({s["symbol"] for s in names})
        equal = compare_stats(streams + symbols)
    finally:
        api_c.stop()
        api_d.stop()
    busy1 = machine_busy()
    result = {
        "args": vars(args),
        "history": history,
        "target_ready_s": TARGET_S,
        "gateway": {"checkpoint": ckpt, "full_recompute": full},
        "api": {"checkpoint": api_ckpt, "full_recompute": api_full},
        "stats_equal": equal,
        "machine_load": {
            "load1_end": round(busy1["load1"], 1),
            "busy_cores": round(
                (busy1["busy_s"] - busy0["busy_s"])
                / max(1e-9, (busy1["total_s"] - busy0["total_s"]))
                * (os.cpu_count() or 1),
                2,
            ),
        },
    }
    path = write_result("restart", result)
    print(
        f"\nhistory {history['trades']:,} trades; target ready <= {TARGET_S}s\n"
        f"gateway: checkpoint {ckpt['ready_s']}s, full recompute {full['ready_s']}s\n"
        f"api:     checkpoint {api_ckpt['ready_s']}s, full recompute {api_full['ready_s']}s\n"
        f"24 h stats identical on {equal['compared'] - len(equal['different'])}/"
        f"{equal['compared']} streams and symbols\nwrote {path}"
    )


if __name__ == "__main__":
    main()
