"""W5 ingest: records/s consumed, decoded and applied with no clients, per Kafka client.

Fills a fresh topic with simulated records (100 streams), then reads it back to
the end with confluent-kafka and with aiokafka, each feeding the same
decode -> Market.apply_book path. Also times decode and apply alone, so the
Kafka client's share is visible, apply with every aggregated book kept
(``eager``, what the Market did before aggregated books became lazy), and a real
``mdgw gateway`` process catching up with the filled topic (no clients):
records/s of wall time and records per CPU-second of the whole process, the
"per core" figure. Run: ``.venv/bin/python -m bench.ingest_bench``.
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


def apply_all(values: list[bytes], eager: bool = False) -> float:
    """decode + apply of every value; ``eager`` keeps every symbol's aggregated book."""
    market = Market()
    if eager:
        for v in values:
            u = codec.decode(v)
            if isinstance(u, BookUpdate):
                market.apply_book(u, 0)
        for symbol in market.symbols():
            market.aggregated(symbol)
        market = _fresh_with_aggregates(market)
    t0 = time.process_time()
    for v in values:
        u = codec.decode(v)
        if isinstance(u, BookUpdate):
            market.apply_book(u, 0)
    return time.process_time() - t0


def _fresh_with_aggregates(seen: Market) -> Market:
    """An empty Market with an (empty) aggregated book for every symbol ``seen`` has."""
    market = Market()
    for stream in seen.streams():
        book = seen.book(stream)
        assert book is not None
        market.apply_book(BookUpdate(book.exchange, book.symbol, 0, 0), 0)  # stream, stale
    for symbol in market.symbols():
        market.aggregated(symbol)
    return market


def gateway_catch_up(cfg, total: int, timeout: float = 120.0) -> dict[str, float]:
    """A real ``mdgw gateway`` (no clients) reading the filled topic from the start."""
    from bench import procs
    from bench.fanout import free_port

    port = free_port()
    gw = procs.start_gateway(cfg, port)
    try:
        deadline = time.monotonic() + timeout
        first: tuple[float, float, int] | None = None
        while time.monotonic() < deadline:
            h = procs.gateway_health(port)
            n = h.get("records_consumed", 0) if h else 0
            if n and first is None:
                first = (time.perf_counter(), gw.cpu(), n)
            if n >= total:
                break
            if gw.popen.poll() is not None:
                raise RuntimeError("gateway exited")
            time.sleep(0.05)
        t1, c1 = time.perf_counter(), gw.cpu()
        if first is None or n < total:
            raise TimeoutError(f"gateway consumed {n} of {total}")
        records = n - first[2]
        return {
            "records": records,
            "records_per_s": records / (t1 - first[0]),
            "records_per_cpu_s": records / max(1e-9, c1 - first[1]),
            "cpu_share": (c1 - first[1]) / (t1 - first[0]),
        }
    finally:
        gw.stop()


def run(fill_seconds: float = 8.0, aiokafka: bool = False) -> dict[str, float]:
    """Every W5 measurement on one filled topic; also bench.run's entry point."""
    cfg = bench_config(partitions=6)
    try:
        total = fill(cfg, fill_seconds)
        ck_s, values = confluent_run(cfg, total)
        out = {"records": total, "streams": 102, "confluent_records_per_s": total / ck_s}
        if aiokafka:
            out["aiokafka_records_per_s"] = total / asyncio.run(aiokafka_run(cfg, total))
        out["decode_records_per_cpu_s"] = total / _time_decode(values)
        out["decode_apply_records_per_cpu_s"] = total / apply_all(values)
        out["decode_apply_eager_agg_records_per_cpu_s"] = total / apply_all(values, eager=True)
        gw = gateway_catch_up(cfg, total)
        out.update({f"gateway_{k}": v for k, v in gw.items()})
        return out
    finally:
        drop_topics(cfg.kafka)


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
    r = run(args.fill_seconds, aiokafka=True)
    rows = [
        ("confluent-kafka consume+decode+apply (wall)", f"{r['confluent_records_per_s']:,.0f}"),
        ("aiokafka consume+decode+apply (wall)", f"{r['aiokafka_records_per_s']:,.0f}"),
        ("decode only (per CPU-s)", f"{r['decode_records_per_cpu_s']:,.0f}"),
        (
            "decode+apply, lazy aggregates (per CPU-s)",
            f"{r['decode_apply_records_per_cpu_s']:,.0f}",
        ),
        (
            "decode+apply, every aggregate kept (per CPU-s)",
            f"{r['decode_apply_eager_agg_records_per_cpu_s']:,.0f}",
        ),
        ("mdgw gateway catch-up (wall)", f"{r['gateway_records_per_s']:,.0f}"),
        ("mdgw gateway catch-up (per CPU-s)", f"{r['gateway_records_per_cpu_s']:,.0f}"),
    ]
    print(f"{r['records']:,} book records, 102 streams\n")
    print(table(rows, ("path", "records/s")))
    print(f"\nwrote {write_result('ingest', r)}")


def _time_decode(values: list[bytes]) -> float:
    t0 = time.process_time()
    for v in values:
        codec.decode(v)
    return time.process_time() - t0


if __name__ == "__main__":
    main()
