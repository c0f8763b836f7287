"""Replay budgets: 50 clients ask for week-old replays of every stream at once.

Writes a few minutes of simulated history stamped ~6.5 days ago (records, then the
checkpoint and snapshot topics a gateway would have written over them), starts a
real gateway process, and has 50 WebSocket clients each ask for a replay of every
stream from that week-old instant, retrying while the gateway says
``rate_limited``. Samples the gateway's RSS, threads and TCP connections to the
broker every 0.2 s. Run twice: with the default budgets, and with the budgets
lifted (``--unbounded``: what the gateway did before issue #15), to compare.
Run: ``.venv/bin/python -m bench.replay_budget_bench [--unbounded]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import time
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench import procs
from bench.common import bench_config, drop_topics, table, write_result
from bench.time_travel_bench import write_checkpoints
from core.types import BookUpdate
from mdgw.kafka.sink import KafkaSink
from producers.simulator import SimulatedMarket, default_streams
from schemas import codec

DAY_NS = 86_400 * 10**9
UNBOUNDED = {
    "MDGW_GATEWAY_MAX_REPLAYS": 100_000,
    "MDGW_GATEWAY_MAX_REPLAYS_PER_CONNECTION": 100_000,
    "MDGW_GATEWAY_MAX_REPLAYS_PER_CLIENT": 100_000,
    "MDGW_GATEWAY_MAX_HISTORY_READERS": 100_000,
}


def write_old_history(cfg: Any, start: int, seconds: float, rate: float) -> int:
    """``seconds`` of history from ``start`` (ns), Kafka timestamps included."""
    sink = KafkaSink(cfg.kafka, linger_ms=20)
    market = SimulatedMarket(default_streams(3), seed=5, sequence_base=start // 1000)
    for rec in market.snapshots(start):
        rec.ingest_ns = start
        sink.send(cfg.kafka.book_topic, rec.stream, codec.encode(rec), timestamp_ms=start // 10**6)
    step = int(1e9 / rate)
    n = 0
    for i in range(int(seconds * rate)):
        t = start + i * step
        for rec in market.next_events(t):
            rec.ingest_ns = t
            topic = cfg.kafka.book_topic if isinstance(rec, BookUpdate) else cfg.kafka.trades_topic
            sink.send(topic, rec.stream, codec.encode(rec), timestamp_ms=t // 10**6)
            n += 1
    sink.flush(120)
    return n


def broker_connections(pid: int, broker_port: int) -> int:
    """Established TCP connections of process ``pid`` to the broker's port."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return 0
    want = f":{broker_port:04X}"
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "01" and parts[2].endswith(want) and parts[9] in inodes:
                        n += 1
        except OSError:
            pass
    return n


def threads(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def client(url: str, streams: list[str], start: int, end: int, out: dict[str, int]) -> None:
    """One replay of every stream, retried while refused; reconnects when closed."""
    while True:
        try:
            await _client(url, streams, start, end, out)
            return
        except ConnectionClosed:
            out["closed"] = out.get("closed", 0) + 1
            await asyncio.sleep(1 + random.random())


async def _client(url: str, streams: list[str], start: int, end: int, out: dict[str, int]) -> None:
    async with connect(f"{url}?format=json", max_size=None) as ws:
        rid = 0
        while True:
            rid += 1
            msg = {"op": "replay", "id": rid, "channel": "book", "symbols": streams}
            await ws.send(orjson.dumps({**msg, "from": start, "to": end, "speed": 0}).decode())
            while True:
                data = orjson.loads(await ws.recv())
                kind = data.get("type")
                if kind == "error" and data.get("id") == rid:
                    out[data["code"]] = out.get(data["code"], 0) + 1
                    break
                if kind == "replay_complete" and data.get("id") == rid:
                    out["completed"] = out.get("completed", 0) + 1
                    return
                if kind == "order_book_snapshot" or kind == "order_book_update":
                    out["messages"] = out.get("messages", 0) + 1
            if out.get("history_unavailable"):
                return
            await asyncio.sleep(1 + 2 * random.random())


async def run_clients(
    url: str, n: int, streams: list[str], start: int, end: int, gw_pid: int, broker_port: int
) -> dict[str, Any]:
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    samples: list[tuple[float, int, int, int]] = []
    done = asyncio.Event()

    async def sample() -> None:
        t0 = time.monotonic()
        while not done.is_set():
            samples.append(
                (
                    time.monotonic() - t0,
                    procs.rss_kib(gw_pid),
                    threads(gw_pid),
                    broker_connections(gw_pid, broker_port),
                )
            )
            await asyncio.sleep(0.2)

    sampler = asyncio.create_task(sample())
    rss0 = procs.rss_kib(gw_pid)
    conns0 = broker_connections(gw_pid, broker_port)
    t0 = time.monotonic()
    await asyncio.gather(*(client(url, streams, start, end, c) for c in counts))
    elapsed = time.monotonic() - t0
    done.set()
    await sampler
    total: dict[str, int] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0) + v
    return {
        "clients": n,
        "streams_per_replay": len(streams),
        "seconds": round(elapsed, 1),
        "rss_before_kib": rss0,
        "rss_peak_kib": max(s[1] for s in samples),
        "threads_peak": max(s[2] for s in samples),
        "broker_connections_before": conns0,
        "broker_connections_peak": max(s[3] for s in samples),
        **total,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=3.0, help="history written and replayed")
    ap.add_argument("--rate", type=float, default=20.0, help="history events/s")
    ap.add_argument("--unbounded", action="store_true", help="lift the replay budgets")
    ap.add_argument("--port", type=int, default=18931)
    args = ap.parse_args()
    cfg = bench_config(partitions=3, gateway={"checkpoint_every_ms": 60_000})
    broker_port = int(cfg.kafka.bootstrap.rsplit(":", 1)[1])
    start = time.time_ns() - int(6.5 * DAY_NS)
    seconds = args.minutes * 60
    gw = None
    try:
        n = write_old_history(cfg, start, seconds, args.rate)
        write_checkpoints(cfg)
        env: dict[str, Any] = {
            "MDGW_GATEWAY_CHECKPOINT_EVERY_MS": 60_000,
            **(UNBOUNDED if args.unbounded else {}),
        }
        gw = procs.start_gateway(cfg, args.port, **env)
        procs.wait_gateway(gw, args.port, streams=9, timeout=120)
        streams = [f"{st.exchange.name}:{st.symbol}" for st in default_streams(3)]
        url = f"ws://127.0.0.1:{args.port}/ws"
        end = start + int(seconds * 1e9)
        r = asyncio.run(
            run_clients(url, args.clients, streams, start + 1, end, gw.pid, broker_port)
        )
        r = {"budgets": "lifted" if args.unbounded else "default", "history_records": n, **r}
        rows = [(k, f"{v:,}" if isinstance(v, int) else str(v)) for k, v in r.items()]
        print(table(rows, ("replay budgets", "measured")))
        name = "replay_budget_unbounded" if args.unbounded else "replay_budget"
        print(f"\nwrote {write_result(name, r)}")
    finally:
        if gw is not None:
            gw.stop()
        drop_topics(cfg.kafka)


if __name__ == "__main__":
    main()
