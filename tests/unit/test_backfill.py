"""The simulator's backfill: past trades spread over the window, stamped with their own
time (also as the Kafka timestamp), then one full book per stream."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from core.types import BookUpdate, Trade
from mdgw.config import KafkaConfig, SimulatorConfig
from mdgw.kafka.headers import Headers
from producers.backfill import HOUR_NS, run_backfill
from schemas import codec

END = 1_764_000_000 * 1_000_000_000
KAFKA = KafkaConfig()


class StampSink:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, bytes, int | None]] = []

    def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self.records.append((topic, key, value, timestamp_ms))

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0


def test_trades_fill_the_window_in_time_order() -> None:
    sink = StampSink()
    cfg = dataclasses.replace(SimulatorConfig(), trade_ratio=0.5)
    out = run_backfill(cfg, sink, KAFKA, hours=0.5, trade_rate=2.0, end_ns=END)
    trades = [(codec.decode(v), ts) for t, _k, v, ts in sink.records if t == KAFKA.trades_topic]
    assert len(trades) == out.trades and 3_000 < out.trades < 4_200  # ~1,800 s x 2/s
    times = [t.timestamp_ns for t, _ts in trades]
    assert times == sorted(times) and times[0] >= END - HOUR_NS // 2 and times[-1] <= END
    for trade, ts in trades:
        assert isinstance(trade, Trade) and trade.ingest_ns == trade.timestamp_ns
        assert ts == trade.timestamp_ns // 1_000_000
    books = [codec.decode(v) for t, _k, v, _ts in sink.records if t == KAFKA.book_topic]
    assert len(books) == out.books == 9
    assert all(isinstance(b, BookUpdate) and b.is_snapshot and b.ingest_ns == END for b in books)
    assert "backfilled" in out.summary()


def test_stop_ends_it_early_and_bad_arguments_are_refused() -> None:
    stop = threading.Event()
    stop.set()
    out = run_backfill(SimulatorConfig(), StampSink(), KAFKA, hours=1, trade_rate=1, stop=stop)
    assert out.interrupted and out.trades == 0 and out.books == 9
    with pytest.raises(ValueError, match="backfill needs"):
        run_backfill(SimulatorConfig(), StampSink(), KAFKA, hours=0, trade_rate=1)
