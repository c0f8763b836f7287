"""``mdgw replay``: publish recorded market data into Kafka at any pace.

Reads captures (cryptofeed raw, Tardis CSV, the project's own format) through
:func:`producers.captures.open_capture`, paces them by their recorded receive
times (``speed`` 1 = as recorded, 10 = ten times faster, 0 = as fast as
possible) and publishes through the same :class:`Publisher` as every feed.

Sequence numbers are shifted by a per-run base (the wall clock in µs, as the
simulator does), so a replay after an earlier one, or the next ``--loop`` pass,
continues above what consumers have seen and its first record of each stream,
a full snapshot, is accepted.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from core.types import BookUpdate, Trade
from mdgw.config import Config
from mdgw.kafka.sink import KafkaSink, RecordSink
from producers.captures import CaptureEvent, ReplaySummary, open_capture
from producers.captures.detect import Format
from producers.captures.symbols import ExchangeInfoError, SymbolMapper, read_exchange_info
from producers.publisher import Publisher
from producers.simulate_run import sequence_base

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    records: int = 0
    books: int = 0
    trades: int = 0
    passes: int = 0
    elapsed_s: float = 0.0
    summaries: list[ReplaySummary] = field(default_factory=list)
    undelivered: int = 0
    failed: int = 0

    @property
    def rate(self) -> float:
        return self.records / self.elapsed_s if self.elapsed_s else 0.0


def shift(msg: BookUpdate | Trade, base: int) -> None:
    """Move a record's sequence numbers above ``base`` (0 stays 0: "no sequence")."""
    if isinstance(msg, BookUpdate):
        msg.sequence += base
        if msg.prev_sequence:
            msg.prev_sequence += base
    elif msg.sequence:
        msg.sequence += base


def paced(
    events: Iterable[CaptureEvent], speed: float, stop: threading.Event
) -> Iterable[CaptureEvent]:
    """Yield events no earlier than their recorded offset divided by ``speed``."""
    first: int | None = None
    start = time.monotonic_ns()
    for ev in events:
        if stop.is_set():
            return
        if speed > 0:
            if first is None:
                first = ev.recv_ns
            due = start + int((ev.recv_ns - first) / speed)
            wait = due - time.monotonic_ns()
            if wait > 1_000_000 and stop.wait(wait / 1e9):
                return
        yield ev


def replay_once(
    paths: list[str],
    publisher: Publisher,
    *,
    speed: float,
    fmt: Format | None,
    stop: threading.Event,
    result: ReplayResult,
    progress: Progress | None,
    exchange_info: dict[str, Any] | None = None,
) -> None:
    symbols = SymbolMapper()
    if exchange_info is not None:
        symbols.load_binance_exchange_info(exchange_info)
    events, summary = open_capture(paths, fmt, symbols=symbols)
    result.summaries.append(summary)
    base = sequence_base(time.time_ns())
    task = progress.add_task(f"pass {result.passes + 1}", total=None) if progress else None
    for ev in paced(events, speed, stop):
        msg = ev.message
        shift(msg, base)
        publisher.publish(msg)
        result.records += 1
        if isinstance(msg, BookUpdate):
            result.books += 1
        else:
            result.trades += 1
        if progress is not None and task is not None and result.records % 500 == 0:
            progress.update(task, completed=result.records)
    if progress is not None and task is not None:
        progress.update(task, completed=result.records)
    result.passes += 1


def replay(
    paths: list[str],
    sink: RecordSink,
    config: Config,
    *,
    speed: float = 1.0,
    fmt: Format | None = None,
    loop: bool = False,
    stop: threading.Event | None = None,
    progress: bool = False,
    exchange_info: dict[str, Any] | None = None,
) -> ReplayResult:
    """Publish the captures (again and again with ``loop``); flush before returning.
    ``exchange_info`` (a Binance ``exchangeInfo`` answer) names Binance's symbols."""
    stop = stop or threading.Event()
    publisher = Publisher(sink, config.kafka)
    result = ReplayResult()
    t0 = time.monotonic()
    bar = (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,} records"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        if progress
        else None
    )
    try:
        if bar is not None:
            bar.start()
        while True:
            replay_once(
                paths,
                publisher,
                speed=speed,
                fmt=fmt,
                stop=stop,
                result=result,
                progress=bar,
                exchange_info=exchange_info,
            )
            if not loop or stop.is_set():
                break
    finally:
        if bar is not None:
            bar.stop()
        result.undelivered = publisher.flush(60.0)
        result.elapsed_s = time.monotonic() - t0
        stats = getattr(sink, "stats", None)
        result.failed = getattr(stats, "failed", 0)
    return result


def run_replay(
    config: Config,
    paths: list[str],
    *,
    speed: float,
    fmt: Format | None,
    loop: bool,
    progress: bool,
    exchange_info: str | None = None,
) -> int:
    """CLI entry: exits 0 once every record is acknowledged by Kafka."""
    if speed < 0:
        print("mdgw replay: --speed must be >= 0", file=sys.stderr)
        return 2
    info = None
    if exchange_info is not None:
        try:
            info = read_exchange_info(exchange_info)
        except ExchangeInfoError as e:
            print(f"mdgw replay: --exchange-info {e}", file=sys.stderr)
            return 2
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sink = KafkaSink(config.kafka, linger_ms=5)
    result = replay(
        paths,
        sink,
        config,
        speed=speed,
        fmt=fmt,
        loop=loop,
        stop=stop,
        progress=progress and sys.stderr.isatty(),
        exchange_info=info,
    )
    console = Console(stderr=True)
    for summary in result.summaries[-1:]:
        console.print(summary.format())
    gaps = sum(s.gaps for summary in result.summaries[-1:] for s in summary.streams.values())
    console.print(
        f"replayed {result.records:,} records ({result.books:,} book, {result.trades:,} trades) "
        f"in {result.passes} pass(es), {result.elapsed_s:.2f}s, {result.rate:,.0f} records/s, "
        f"{gaps} exchange-side gaps; undelivered {result.undelivered}, failed {result.failed}"
    )
    errors = sum(s.error_count for s in result.summaries)
    if result.undelivered or result.failed:
        return 1
    if result.records == 0 and errors:
        return 2
    return 0
