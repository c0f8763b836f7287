"""Load generator: many verifying WebSocket clients in one process (run several).

Each client subscribes to ``--per-client`` random streams and checks every book
message (``prev_sequence`` chain and the §5 checksum, via gateway.client), and
samples latency: ``gateway_ts - ingest_ts`` (gateway hop) and receive time minus
``ingest_ts`` (producer -> client). Prints one JSON object with the totals.

    python -m bench.loadgen --url ws://127.0.0.1:8080/ws --clients 500 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from typing import Any

from gateway.client import MarketDataClient


class Totals:
    def __init__(self) -> None:
        self.connected = 0
        self.failed = 0
        self.messages = 0
        self.book_messages = 0
        self.breaks = 0
        self.checksum_failures = 0
        self.closed_by_server = 0
        self.gateway_lat: list[int] = []
        self.e2e_lat: list[int] = []
        self.connect_s: list[float] = []
        self.errors: dict[str, int] = {}


async def one_client(
    args: argparse.Namespace,
    streams: list[str],
    totals: Totals,
    rng: random.Random,
    start_at: float,
    stop_at: float,
) -> None:
    client = MarketDataClient(
        args.url,
        fmt=args.format,
        batch=args.batch,
        reconnect=False,
        compression="deflate" if args.compression else None,
        open_timeout=60,
    )
    t0 = time.monotonic()
    try:
        await client.connect()
    except Exception as e:  # counted: the run reports failures rather than dying
        totals.failed += 1
        totals.errors[type(e).__name__] = totals.errors.get(type(e).__name__, 0) + 1
        return
    totals.connect_s.append(time.monotonic() - t0)
    totals.connected += 1
    chosen = rng.sample(streams, min(args.per_client, len(streams)))
    await client.subscribe(args.channel, chosen, depth=args.depth, speed=args.speed)
    sample = args.sample
    n = 0
    try:
        async with asyncio.timeout(max(0.1, stop_at - time.monotonic())):
            async for ev in client.events():
                totals.messages += 1
                if ev.kind == "book":
                    totals.book_messages += 1
                    n += 1
                    if time.monotonic() >= start_at and n % sample == 0:
                        d: dict[str, Any] = ev.data
                        ingest = d.get("ingest_ts") or 0
                        if ingest:
                            totals.gateway_lat.append(d["gateway_ts"] - ingest)
                            totals.e2e_lat.append(ev.received_ns - ingest)
            totals.closed_by_server += 1
    except TimeoutError:
        pass
    finally:
        totals.breaks += client.sequence_breaks
        totals.checksum_failures += client.checksum_failures
        await client.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    streams = args.streams.split(",")
    rng = random.Random(args.seed)
    totals = Totals()
    t_start = time.monotonic()
    stop_at = t_start + args.ramp + args.duration
    start_at = t_start + args.ramp + args.warmup
    tasks = []
    for i in range(args.clients):
        tasks.append(asyncio.create_task(one_client(args, streams, totals, rng, start_at, stop_at)))
        if args.connect_rate and i % args.connect_rate == args.connect_rate - 1:
            await asyncio.sleep(1.0)
        elif i % 50 == 49:
            await asyncio.sleep(0)
    connected_at = time.monotonic()
    await asyncio.gather(*tasks)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "clients": args.clients,
        "connected": totals.connected,
        "failed": totals.failed,
        "errors": totals.errors,
        "messages": totals.messages,
        "book_messages": totals.book_messages,
        "breaks": totals.breaks,
        "checksum_failures": totals.checksum_failures,
        "closed_by_server": totals.closed_by_server,
        "gateway_lat_ns": totals.gateway_lat,
        "e2e_lat_ns": totals.e2e_lat,
        "connect_s_max": max(totals.connect_s, default=0.0),
        "spawn_s": connected_at - t_start,
        "measure_s": args.duration - args.warmup,
        "client_rss_kib": rss_kib,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--streams", required=True, help="comma-separated EXCHANGE:SYMBOL")
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--channel", default="book")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--speed", default="raw")
    ap.add_argument("--format", default="protobuf", choices=["json", "protobuf"])
    ap.add_argument("--batch", action="store_true")
    ap.add_argument("--compression", action="store_true")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--ramp", type=float, default=0.0, help="seconds reserved for connecting")
    ap.add_argument("--connect-rate", type=int, default=0, help="connections per second (0=max)")
    ap.add_argument("--sample", type=int, default=1, help="latency sample every Nth message")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
