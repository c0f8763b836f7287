"""Backfill: a past window of simulated trades, written as fast as the producer goes.

``mdgw simulate --backfill-hours 24 --trade-rate 100`` fills the trades topic with
what the simulator would have printed over the last 24 hours at 100 trades/s
(~8.6 M records): the same :class:`~producers.simulator.SimulatedMarket`, its
events spread over ``[now - hours, now]`` as a Poisson process, each trade stamped
with its own past time (``timestamp_ns``, ``ingest_ns`` and the Kafka record
timestamp, so ``offsets_for_times`` finds the window). Book deltas move the
simulated books between trades but are not written; at the end one full book
per stream (stamped now) goes to the book topic, so a consumer has books too.
Used to measure a restart against a day of history (``bench/restart_bench.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from core.types import Trade
from mdgw.config import KafkaConfig, SimulatorConfig
from mdgw.kafka.sink import RecordSink
from producers.simulate_run import sequence_base
from producers.simulator import PoissonArrivals, SimulatedMarket
from schemas import codec

HOUR_NS = 3600 * 1_000_000_000
PROGRESS_EVERY = 500_000
"""Trades between two progress lines."""


@dataclass
class BackfillStats:
    trades: int = 0
    books: int = 0
    first_ns: int = 0
    last_ns: int = 0
    elapsed_s: float = 0.0
    undelivered: int = 0
    interrupted: bool = False

    def summary(self) -> str:
        rate = self.trades / self.elapsed_s if self.elapsed_s > 0 else 0.0
        line = (
            f"backfilled {self.trades} trades ({(self.last_ns - self.first_ns) / HOUR_NS:.2f} h "
            f"of history) and {self.books} books in {self.elapsed_s:.1f}s ({rate:,.0f} trades/s)"
        )
        if self.undelivered:
            line += f", {self.undelivered} undelivered after flush"
        return line


def run_backfill(
    cfg: SimulatorConfig,
    sink: RecordSink,
    kafka: KafkaConfig,
    *,
    hours: float,
    trade_rate: float,
    end_ns: int | None = None,
    stop: threading.Event | None = None,
    progress: bool = False,
) -> BackfillStats:
    """Write ``hours`` of trades at ``trade_rate``/s ending at ``end_ns`` (default now).

    Events arrive at ``trade_rate / cfg.trade_ratio`` per second (a share
    ``trade_ratio`` of them are trades), so a higher ``trade_ratio`` backfills
    faster with the same number of trades.
    """
    if hours <= 0 or trade_rate <= 0 or cfg.trade_ratio <= 0:
        raise ValueError("backfill needs hours > 0, trade_rate > 0 and trade_ratio > 0")
    stop = stop or threading.Event()
    end = time.time_ns() if end_ns is None else end_ns
    start = end - int(hours * HOUR_NS)
    market = SimulatedMarket.from_config(cfg, sequence_base=sequence_base(start))
    arrivals = PoissonArrivals(trade_rate / cfg.trade_ratio, start, seed=cfg.seed + 1)
    out = BackfillStats(first_ns=end)
    topic, send, encode = kafka.trades_topic, sink.send, codec.encode
    t0 = time.monotonic()
    next_progress = PROGRESS_EVERY
    while not stop.is_set():
        due = arrivals.due(end, 4096)
        if not due:
            break
        for t in due:
            for rec in market.next_events(t):
                if isinstance(rec, Trade):
                    rec.ingest_ns = t
                    send(topic, rec.stream, encode(rec), None, timestamp_ms=t // 1_000_000)
                    out.trades += 1
                    out.first_ns = min(out.first_ns, t)
                    out.last_ns = t
        if progress and out.trades >= next_progress:
            next_progress += PROGRESS_EVERY
            print(f"[backfill] {out.trades} trades, {time.monotonic() - t0:.0f}s", file=sys.stderr)
    out.interrupted = stop.is_set()
    for book in market.snapshots(end):
        book.ingest_ns = end
        send(kafka.book_topic, book.stream, encode(book), None)
        out.books += 1
    out.undelivered = sink.flush(300)
    out.elapsed_s = time.monotonic() - t0
    if progress:
        print(f"[backfill] {out.summary()}", file=sys.stderr, flush=True)
    return out
