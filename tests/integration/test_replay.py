"""Replay real exchange captures into Kafka, rebuild books from Kafka, check them."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core.book import ApplyResult, OrderBook
from core.types import BookUpdate, Trade
from mdgw.config import Config
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import read_to_end
from producers.record import record
from producers.replay import replay
from schemas import codec
from tests.kraken_oracle import expected_checksums, kraken_checksum

pytestmark = [pytest.mark.kafka]


def read_back(config: Config) -> tuple[list[BookUpdate], list[Trade]]:
    books = [codec.decode(r.value) for r in read_to_end(config.kafka, config.kafka.book_topic)]
    trades = [codec.decode(r.value) for r in read_to_end(config.kafka, config.kafka.trades_topic)]
    return books, trades  # type: ignore[return-value]


def rebuild(updates: list[BookUpdate]) -> dict[str, OrderBook]:
    """Per stream in Kafka order (one partition per stream): contiguous, checksums agree."""
    books: dict[str, OrderBook] = {}
    for u in sorted(updates, key=lambda u: (u.stream, u.sequence)):
        book = books.setdefault(u.stream, OrderBook(u.exchange, u.symbol))
        result = book.apply(u)
        assert result in (ApplyResult.SNAPSHOT, ApplyResult.APPLIED), (u.stream, result)
        assert book.checksum() == u.checksum, u.stream
    return books


def test_kraken_replay_matches_every_kraken_checksum(config, captures: Path) -> None:
    path = captures / "KRAKEN.ws.50.0"
    result = replay([str(path)], KafkaSink(config.kafka), config, speed=0)
    assert result.undelivered == 0 and result.failed == 0
    books, _ = read_back(config)
    assert len(books) == result.books == 2600
    expected, decimals = expected_checksums(path)
    rebuilt: dict[str, OrderBook] = {}
    index: dict[str, int] = {}
    matched = 0
    for u in sorted(books, key=lambda u: (u.stream, u.sequence)):
        book = rebuilt.setdefault(u.stream, OrderBook(u.exchange, u.symbol))
        assert book.apply(u) in (ApplyResult.SNAPSHOT, ApplyResult.APPLIED)
        if u.is_snapshot:
            continue
        i = index.get(u.symbol, 0)
        index[u.symbol] = i + 1
        assert kraken_checksum(book, decimals[u.symbol]) == expected[u.symbol][i], u.stream
        matched += 1
    assert matched == 2595


def test_binance_replay_follows_the_sync_procedure(config, captures: Path) -> None:
    result = replay([str(captures / "BINANCE.ws.1.0")], KafkaSink(config.kafka), config, speed=0)
    summary = result.summaries[0]
    stats = summary.streams
    dropped = sum(s.dropped_diffs for s in stats.values())
    applied = sum(s.applied_diffs for s in stats.values())
    assert (dropped, applied) == (5, 172)
    books, trades = read_back(config)
    rebuilt = rebuild(books)
    assert set(rebuilt) == {
        "BINANCE:NKN-USDT",
        "BINANCE:BLZ-ETH",
        "BINANCE:LRC-BTC",
        "BINANCE:RUNE-EUR",
    }
    raw = (captures / "BINANCE.ws.1.0").read_text()
    assert len(trades) == raw.count('"e":"aggTrade"') == 2


def test_coinbase_replay_trades_and_books(config, captures: Path) -> None:
    path = captures / "COINBASE.ws.28.0"
    result = replay([str(path)], KafkaSink(config.kafka), config, speed=0)
    books, trades = read_back(config)
    rebuilt = rebuild(books)
    assert len(rebuilt) == 10
    raw = path.read_text()
    assert len(trades) == len(re.findall(r'"type":\s*"(?:last_)?match"', raw)) == result.trades
    for book in rebuilt.values():
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None and ask is not None and bid[0] < ask[0]


def test_record_then_replay_round_trip(config, tmp_path: Path) -> None:
    """Simulated feed -> Kafka -> mdgw record -> file -> mdgw replay -> fresh topics."""
    from tests.integration.helpers import SimThread

    sim = SimThread(config, rate=300).start()
    import time

    time.sleep(3)
    sim.stop()
    out = tmp_path / "capture.mdgw"
    n = record(config, str(out), from_beginning=True, idle_exit=3.0)
    original, _ = read_back(config)
    assert n >= len(original) > 0
    prefix = "rt" + config.kafka.book_topic.split(".")[0]
    fresh = dataclasses.replace(config.kafka, book_topic=f"{prefix}.b", trades_topic=f"{prefix}.t")
    from mdgw.kafka.admin import create_topics

    create_topics(fresh)
    cfg2 = dataclasses.replace(config, kafka=fresh)
    result = replay([str(out)], KafkaSink(fresh), cfg2, speed=0)
    assert result.records == n
    replayed, _ = read_back(cfg2)
    a, b = rebuild(original), rebuild(replayed)
    assert set(a) == set(b)
    for stream in a:
        assert a[stream].bids() == b[stream].bids() and a[stream].asks() == b[stream].asks()


def test_cli_replay_exits_zero_and_reports(config, captures: Path) -> None:
    env_topics = {
        "MDGW_KAFKA_BOOK_TOPIC": config.kafka.book_topic,
        "MDGW_KAFKA_TRADES_TOPIC": config.kafka.trades_topic,
        "MDGW_KAFKA_BOOTSTRAP": config.kafka.bootstrap,
    }
    import os

    proc = subprocess.run(
        [sys.executable, "-m", "mdgw", "replay", str(captures / "KRAKEN.ws.48.0"), "--speed", "0"],
        env={**os.environ, **env_topics},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "replayed 10 records" in proc.stderr


def test_cli_replay_bad_file_is_a_clear_error(config, tmp_path: Path) -> None:
    bad = tmp_path / "garbage.bin"
    bad.write_bytes(b"\x00\x01\x02 not a capture")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdgw",
            "replay",
            str(bad),
            "--speed",
            "0",
            "--bootstrap",
            config.kafka.bootstrap,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "garbage.bin" in proc.stderr
