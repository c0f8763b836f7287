"""Foundation end to end: empty broker -> topics -> simulator -> consume back -> rebuild."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time

import pytest

from core.book import ApplyResult, OrderBook
from core.stats import RollingStats
from core.types import BookUpdate, Trade
from mdgw.kafka.admin import admin_client, describe_topic_config
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import read_to_end
from producers.publisher import Publisher
from producers.simulate_run import run_simulator
from schemas import codec

pytestmark = [pytest.mark.kafka]


def test_topics_command_is_idempotent_and_compaction_is_on(config) -> None:
    env_cfg = {
        "MDGW_KAFKA_BOOTSTRAP": config.kafka.bootstrap,
        "MDGW_KAFKA_BOOK_TOPIC": config.kafka.book_topic + ".cli",
        "MDGW_KAFKA_TRADES_TOPIC": config.kafka.trades_topic + ".cli",
        "MDGW_KAFKA_SNAPSHOTS_TOPIC": config.kafka.snapshots_topic + ".cli",
        "MDGW_KAFKA_CHECKPOINTS_TOPIC": config.kafka.checkpoints_topic + ".cli",
        "MDGW_KAFKA_DLQ_TOPIC": config.kafka.dlq_topic + ".cli",
        "MDGW_KAFKA_STATS_TOPIC": config.kafka.stats_topic + ".cli",
    }
    import os

    run = [sys.executable, "-m", "mdgw", "topics", "create", "--partitions", "2"]
    first = subprocess.run(
        run, env={**os.environ, **env_cfg}, capture_output=True, text=True, timeout=60, check=True
    )
    assert first.stdout.count(": created") == 6
    again = subprocess.run(
        run, env={**os.environ, **env_cfg}, capture_output=True, text=True, timeout=60, check=True
    )
    assert again.stdout.count(": exists") == 6
    snap = describe_topic_config(config.kafka, env_cfg["MDGW_KAFKA_SNAPSHOTS_TOPIC"])
    assert snap["cleanup.policy"] == "compact"
    stats = describe_topic_config(config.kafka, env_cfg["MDGW_KAFKA_STATS_TOPIC"])
    assert stats["cleanup.policy"] == "compact"
    book = describe_topic_config(config.kafka, env_cfg["MDGW_KAFKA_BOOK_TOPIC"])
    assert book["cleanup.policy"] == "delete"
    names = [v for k, v in env_cfg.items() if k.endswith("_TOPIC")]
    admin_client(config.kafka).delete_topics(names, operation_timeout=10)


def test_simulated_feeds_rebuild_exactly_from_kafka(config) -> None:
    sim = dataclasses.replace(config.simulator, rate=1500, duration=3.0, seed=11)
    stats = run_simulator(sim, Publisher(KafkaSink(config.kafka), config.kafka))
    assert stats.ok and stats.failed == 0 and stats.undelivered == 0
    books = [codec.decode(r.value) for r in read_to_end(config.kafka, config.kafka.book_topic)]
    trades = [codec.decode(r.value) for r in read_to_end(config.kafka, config.kafka.trades_topic)]
    assert len(books) == stats.book_records and len(trades) == stats.trade_records
    by_stream: dict[str, list[BookUpdate]] = {}
    for u in books:
        assert isinstance(u, BookUpdate)
        by_stream.setdefault(u.stream, []).append(u)  # one partition per stream: in order
    assert len(by_stream) == 9
    for stream, updates in by_stream.items():
        assert updates[0].is_snapshot, stream
        book = OrderBook(updates[0].exchange, updates[0].symbol)
        for prev, u in zip([None, *updates], updates, strict=False):
            if prev is not None:
                assert (u.sequence, u.prev_sequence) == (prev.sequence + 1, prev.sequence)
            assert book.apply(u) in (ApplyResult.SNAPSHOT, ApplyResult.APPLIED)
            assert book.checksum() == u.checksum, stream
            assert 0 < u.ingest_ns <= time.time_ns()
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and bid[0] < ask[0]
        assert book.bid_count > 100 and book.ask_count > 100
    tape: dict[str, RollingStats] = {}
    for t in trades:
        assert isinstance(t, Trade)
        tape.setdefault(t.stream, RollingStats(t.exchange.name, t.symbol)).add_trade(t)
    for stream, rs in tape.items():
        s = rs.snapshot(time.time_ns(), 0.0, 0.0)
        assert s.trade_count > 0 and s.low <= s.vwap <= s.high and s.volume > 0, stream
        mid_ref = {"BTC": 97_000, "ETH": 3_500, "SOL": 240}[stream.split(":")[1][:3]]
        assert 0.9 * mid_ref < s.last < 1.1 * mid_ref, stream
