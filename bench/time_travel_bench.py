"""Time travel: time to first message of a replay starting 1 hour back, throughput at speed 0.

Writes one hour of simulated history (records stamped with past ingest times and
Kafka timestamps), lets a Materializer write the snapshot and checkpoint topics over
it exactly as a gateway would have, then starts a real gateway and asks for replays.
Run: ``.venv/bin/python -m bench.time_travel_bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from mdgw_client import MarketDataClient

from bench.common import bench_config, drop_topics, table, write_result
from core.market import Market
from core.types import BookUpdate
from gateway.app import start_gateway
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import read_to_end
from mdgw.materializer import Materializer
from producers.simulator import SimulatedMarket, default_streams
from schemas import codec

HOUR_NS = 3600 * 10**9


def write_history(cfg, rate: float, seconds: float) -> tuple[int, int]:
    """Publish ``seconds`` of history ending now; returns (records, start ns)."""
    sink = KafkaSink(cfg.kafka, linger_ms=20)
    start = time.time_ns() - int(seconds * 1e9)
    market = SimulatedMarket(default_streams(3), seed=3, sequence_base=start // 1000)
    step = int(1e9 / rate)
    n = 0
    for rec in market.snapshots(start):
        rec.ingest_ns = start
        sink.send(cfg.kafka.book_topic, rec.stream, codec.encode(rec), timestamp_ms=start // 10**6)
    for i in range(int(seconds * rate)):
        t = start + i * step
        for rec in market.next_events(t):
            rec.ingest_ns = t
            topic = cfg.kafka.book_topic if isinstance(rec, BookUpdate) else cfg.kafka.trades_topic
            sink.send(topic, rec.stream, codec.encode(rec), timestamp_ms=t // 10**6)
            n += 1
    sink.flush(120)
    return n, start


def write_checkpoints(cfg) -> int:
    """Run the gateway's Materializer over the history with its clock at record time."""
    sink = KafkaSink(cfg.kafka, linger_ms=20)
    now = [0]
    mat = Materializer(
        Market(),
        cfg.kafka,
        snapshot_sink=sink,
        snapshot_every_updates=10**9,
        snapshot_every_ms=60_000,
        checkpoint_every_ms=60_000,
        clock=lambda: now[0],
    )
    batch = []
    for rec in read_to_end(cfg.kafka, cfg.kafka.book_topic, timeout=300):
        now[0] = rec.timestamp_ms * 10**6
        batch.append(rec)
        if len(batch) == 1000:
            mat.handle(batch)
            batch = []
    mat.handle(batch)
    sink.flush(120)
    return int(sink.stats.sent)


async def measure(cfg, start_ns: int, window_s: float) -> dict[str, float]:
    rt = await start_gateway(cfg)
    try:
        while not rt.server.is_ready():
            await asyncio.sleep(0.1)
        c = MarketDataClient(f"ws://127.0.0.1:{rt.port}/ws", fmt="protobuf", batch=True)
        await c.connect()
        t0 = time.perf_counter()
        first = None
        n = 0
        await c.replay(
            "book",
            ["BINANCE:BTC-USDT"],
            start_ns + 1,
            start_ns + int(window_s * 1e9),
            depth=0,
            speed=0,
        )
        async for ev in c.events():
            if ev.kind == "book":
                first = first or time.perf_counter()
                n += 1
            elif ev.kind == "replay_complete":
                break
        end = time.perf_counter()
        ok = c.sequence_breaks == 0 and c.checksum_failures == 0
        await c.close()
        return {
            "first_message_ms": ((first or end) - t0) * 1000,
            "messages": n,
            "replay_s": end - t0,
            "messages_per_s": n / max(end - (first or end), 1e-9),
            "exact": ok,
        }
    finally:
        await rt.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate", type=float, default=40.0, help="history updates/s")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=600.0, help="replayed seconds")
    args = ap.parse_args()
    cfg = bench_config(
        partitions=3, gateway={"port": 0, "host": "127.0.0.1", "checkpoint_every_ms": 60_000}
    )
    try:
        t0 = time.perf_counter()
        n, start = write_history(cfg, args.rate, args.hours * 3600)
        cps = write_checkpoints(cfg)
        prep = time.perf_counter() - t0
        r = asyncio.run(measure(cfg, start, args.window))
        rows = [
            ("history", f"{args.hours:g} h, {n:,} records (prepared in {prep:.0f} s)"),
            ("checkpoints+snapshots written", f"{cps:,}"),
            ("replay from 1 h back: first message", f"{r['first_message_ms']:.0f} ms"),
            (
                f"replay of {args.window:g} s at speed 0",
                f"{r['messages']:,} messages in {r['replay_s']:.2f} s "
                f"({r['messages_per_s']:,.0f} msg/s)",
            ),
            ("sequence + checksum verified", "yes" if r["exact"] else "NO"),
        ]
        print(table(rows, ("time travel", "measured")))
        path = write_result("time_travel", {"history_records": n, **r, "window_s": args.window})
        print(f"\nwrote {path}")
    finally:
        drop_topics(cfg.kafka)


if __name__ == "__main__":
    main()
