"""W5 ingest: records/s consumed, decoded and applied with no clients, per Kafka client.

Fills a fresh topic with simulated records (100 streams), then reads it back to
the end with confluent-kafka and with aiokafka, each feeding the same
decode -> Market.apply_book path. Also times decode and apply alone, so the
Kafka client's share is visible. Run: ``.venv/bin/python bench/ingest_bench.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time

from confluent_kafka import Consumer, TopicPartition

from bench.common import bench_config, drop_topics, table, write_result
from core.market import Market
from core.types import BookUpdate
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import consumer_conf
from producers.publisher import Publisher
from producers.simulate_run import run_simulator
from schemas import codec


def fill(cfg, seconds: float) -> int:
    sim = dataclasses.replace(
        cfg.simulator, rate=0, duration=seconds, symbols_per_exchange=34, trade_ratio=0.0
    )
    sink = KafkaSink(cfg.kafka, linger_ms=20)
    stats = run_simulator(sim, Publisher(sink, cfg.kafka))
    return stats.book_records


def apply_all(values: list[bytes]) -> float:
    market = Market()
    t0 = time.perf_counter()
    for v in values:
        u = codec.decode(v)
        if isinstance(u, BookUpdate):
            market.apply_book(u, 0)
    return time.perf_counter() - t0


def confluent_run(cfg, total: int) -> tuple[float, list[bytes]]:
    conf = consumer_conf(cfg.kafka, f"{cfg.kafka.client_id}-ck")
    consumer = Consumer(conf)
    parts = cfg.kafka.partitions
    consumer.assign([TopicPartition(cfg.kafka.book_topic, p, 0) for p in range(parts)])
    market = Market()
    seen = 0
    values: list[bytes] = []
    t0 = time.perf_counter()
    while seen < total:
        for m in consumer.consume(5000, 1.0):
            if m.error():
                continue
            v = m.value()
            u = codec.decode(v)
            market.apply_book(u, 0)  # type: ignore[arg-type]
            values.append(v)
            seen += 1
    elapsed = time.perf_counter() - t0
    consumer.close()
    return elapsed, values


async def aiokafka_run(cfg, total: int) -> float:
    from aiokafka import AIOKafkaConsumer
    from aiokafka import TopicPartition as ATP

    consumer = AIOKafkaConsumer(
        bootstrap_servers=cfg.kafka.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=32 << 20,
    )
    await consumer.start()
    tps = [ATP(cfg.kafka.book_topic, p) for p in range(cfg.kafka.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    market = Market()
    seen = 0
    t0 = time.perf_counter()
    while seen < total:
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for records in batches.values():
            for r in records:
                market.apply_book(codec.decode(r.value), 0)  # type: ignore[arg-type]
                seen += 1
    elapsed = time.perf_counter() - t0
    await consumer.stop()
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--fill-seconds", type=float, default=8.0)
    args = ap.parse_args()
    cfg = bench_config(partitions=6)
    try:
        total = fill(cfg, args.fill_seconds)
        ck_s, values = confluent_run(cfg, total)
        ak_s = asyncio.run(aiokafka_run(cfg, total))
        decode_s = sum(_time_decode(values) for _ in range(1))
        apply_s = apply_all(values)
        rows = [
            ("confluent-kafka consume+decode+apply", f"{total / ck_s:,.0f}"),
            ("aiokafka consume+decode+apply", f"{total / ak_s:,.0f}"),
            ("decode only (protobuf -> BookUpdate)", f"{total / decode_s:,.0f}"),
            ("decode+apply (no Kafka)", f"{total / apply_s:,.0f}"),
        ]
        print(f"{total:,} book records, 100 streams, one process\n")
        print(table(rows, ("path", "records/s")))
        path = write_result(
            "ingest",
            {
                "records": total,
                "streams": 102,
                "confluent_records_per_s": total / ck_s,
                "aiokafka_records_per_s": total / ak_s,
                "decode_records_per_s": total / decode_s,
                "decode_apply_records_per_s": total / apply_s,
            },
        )
        print(f"\nwrote {path}")
    finally:
        drop_topics(cfg.kafka)


def _time_decode(values: list[bytes]) -> float:
    t0 = time.perf_counter()
    for v in values:
        codec.decode(v)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
