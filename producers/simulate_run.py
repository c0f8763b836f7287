"""Drive the simulator against a Publisher in real time: the I/O half of ``mdgw simulate``.

The model (:mod:`producers.simulator`) decides what happens; this module decides
when. Events arrive as a Poisson process at ``rate`` per second over all streams.
The loop sleeps until the next arrival, but never for less than ~1 ms, and then
generates every event that came due in one batch; so 200/s is one sleep per
event and 50,000/s is ~50 events per wake-up, and a loop that fell behind
catches up in batches. ``rate <= 0`` runs as fast as possible (benchmarks).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.types import BookUpdate
from mdgw.config import KafkaConfig, SimulatorConfig
from mdgw.kafka.sink import DeliveryStats
from producers.publisher import Publisher
from producers.simulator import PoissonArrivals, Record, SimulatedMarket

log = logging.getLogger(__name__)

TICK_NS = 1_000_000
"""Shortest sleep: at high rates the loop wakes every ~1 ms and generates a batch."""
MAX_SLEEP_NS = 250_000_000
"""Longest sleep, so progress lines and the deadline stay on time at low rates."""
MAX_LAG_NS = 250_000_000
"""A loop this far behind (rate above what one process can generate) drops its
backlog rather than stamp ever older event times; the drops are counted."""
BATCH = 2_048
"""Events generated between two checks of the stop flag and the clock."""
PROGRESS_NS = 1_000_000_000


class Clock:
    """The run's time: the real clocks and a stoppable sleep. Tests pass a fake one, so
    pacing and deadlines are checked in simulated time, never against the wall clock."""

    def monotonic_ns(self) -> int:
        return time.monotonic_ns()

    def time_ns(self) -> int:
        return time.time_ns()

    def wait(self, stop: threading.Event, seconds: float) -> None:
        """Sleep ``seconds`` or until ``stop`` is set."""
        stop.wait(seconds)


def sequence_base(wall_ns: int) -> int:
    """First sequence number of every stream in a run: the wall clock in microseconds.

    Consumers remember each stream's last sequence (so does the compacted snapshot
    topic) across a simulator restart. A run that starts at t0 µs and writes n
    records to a stream ends at sequence t0 + n; a run restarted at t1 µs > t0 + n
    starts above it unless the old run wrote more than one record per stream per
    microsecond (a million a second), which it never does. So the restarted
    stream's first record, a full snapshot, carries a higher sequence than anything
    before it and is accepted rather than taken for an old or duplicate record.
    ~1.8e15 also stays below 2**53, so JSON clients read it exactly.
    """
    return wall_ns // 1000


@dataclass
class SimStats:
    """What one run sent and what Kafka acknowledged."""

    events: int = 0
    """Market events (each is one book delta, some also a trade)."""
    book_records: int = 0
    """Records on the book topic, snapshots included."""
    snapshot_records: int = 0
    trade_records: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    """Records sent per topic name."""
    elapsed_s: float = 0.0
    """Generation time, flush excluded."""
    flush_s: float = 0.0
    skipped_events: int = 0
    """Arrivals dropped because the loop fell more than a second behind."""
    undelivered: int = 0
    """Records still queued after the final flush."""
    delivered: int | None = None
    """Delivery reports of this run, when the sink keeps them."""
    failed: int | None = None
    last_error: str = ""
    interrupted: bool = False

    @property
    def rate(self) -> float:
        """Achieved events (book updates) per second."""
        return self.events / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def records_per_s(self) -> float:
        total = self.book_records + self.trade_records
        return total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every record handed to the sink was delivered (as far as it says)."""
        return self.undelivered == 0 and not self.failed

    def summary(self) -> str:
        line = (
            f"simulated {self.events} events in {self.elapsed_s:.2f}s ({self.rate:,.0f}/s): "
            f"{self.book_records} book records ({self.snapshot_records} snapshots), "
            f"{self.trade_records} trades"
        )
        if self.skipped_events:
            line += f", {self.skipped_events} events skipped (fell behind)"
        if self.delivered is not None:
            line += f"; delivered {self.delivered}, failed {self.failed}"
        if self.undelivered:
            line += f", {self.undelivered} undelivered after flush"
        return line


class _Run:
    """One run's outputs and bookkeeping: publishing, counting, progress lines."""

    def __init__(
        self, publisher: Publisher, kafka: KafkaConfig, progress: bool, clock: Clock
    ) -> None:
        self.publisher = publisher
        self.clock = clock
        self.stats = SimStats()
        self._book_topic, self._trades_topic = kafka.book_topic, kafka.trades_topic
        self._progress = progress
        self.start_ns = clock.monotonic_ns()
        self._next_progress_ns = self.start_ns + PROGRESS_NS

    def emit(self, records: Sequence[Record]) -> None:
        stats, publish = self.stats, self.publisher.publish
        for record in records:
            publish(record)
            if isinstance(record, BookUpdate):
                stats.book_records += 1
                stats.snapshot_records += record.is_snapshot
            else:
                stats.trade_records += 1

    def tick(self, now_ns: int) -> None:
        """Print a progress line once a second when asked to."""
        if not self._progress or now_ns < self._next_progress_ns:
            return
        self._next_progress_ns += PROGRESS_NS
        s = self.stats
        elapsed = (now_ns - self.start_ns) / 1e9
        print(
            f"[simulate] {elapsed:7.1f}s events={s.events} ({s.events / elapsed:,.0f}/s) "
            f"book={s.book_records} trades={s.trade_records}",
            file=sys.stderr,
            flush=True,
        )

    def finish(self, end_ns: int) -> None:
        s = self.stats
        s.elapsed_s = (end_ns - self.start_ns) / 1e9
        s.topics = {self._book_topic: s.book_records, self._trades_topic: s.trade_records}


def _paced(
    run: _Run,
    market: SimulatedMarket,
    rate: float,
    seed: int,
    deadline: int | None,
    stop: threading.Event,
) -> None:
    """Poisson arrivals at ``rate``/s on the monotonic clock, each stamped with its own
    time on the wall clock (so ``timestamp_ns`` <= ``ingest_ns``, off by the lag)."""
    clock = run.clock
    arrivals = PoissonArrivals(rate, run.start_ns, seed=seed)
    while not stop.is_set():
        now = clock.monotonic_ns()
        wall_offset = clock.time_ns() - now
        horizon = now if deadline is None else min(now, deadline)
        if horizon - arrivals.next_ns > MAX_LAG_NS:
            run.stats.skipped_events += arrivals.skip_to(horizon)
        due = arrivals.due(horizon, BATCH)
        for t in due:
            run.emit(market.next_events(t + wall_offset))
        run.stats.events += len(due)
        run.tick(now)
        if deadline is not None and now >= deadline:
            run.stats.skipped_events += arrivals.skip_to(deadline)  # backlog, if behind
            return
        if len(due) == BATCH:
            continue  # behind: catch up before sleeping
        target = arrivals.next_ns if deadline is None else min(arrivals.next_ns, deadline)
        wait = min(max(target - clock.monotonic_ns(), TICK_NS), MAX_SLEEP_NS)
        clock.wait(stop, wait / 1e9)


def _max_rate(
    run: _Run, market: SimulatedMarket, deadline: int | None, stop: threading.Event
) -> None:
    """Events back to back, stamped with the wall clock, until deadline or stop."""
    clock = run.clock
    while not stop.is_set():
        now = clock.monotonic_ns()
        if deadline is not None and now >= deadline:
            return
        for _ in range(BATCH):
            run.emit(market.next_events(clock.time_ns()))
        run.stats.events += BATCH
        run.tick(now)


def _delivery_stats(publisher: Publisher) -> DeliveryStats | None:
    # Publisher does not expose its sink; a KafkaSink keeps delivery reports in .stats.
    stats = getattr(getattr(publisher, "_sink", None), "stats", None)
    return stats if isinstance(stats, DeliveryStats) else None


def _flush(
    run: _Run, delivery: DeliveryStats | None, timeout: float, before: tuple[int, int]
) -> None:
    """Wait for Kafka's acknowledgements and record this run's deliveries and failures
    (``before``: the sink's counts when the run started)."""
    t0 = time.monotonic()
    run.stats.undelivered = run.publisher.flush(timeout)
    run.stats.flush_s = time.monotonic() - t0
    if delivery is not None:
        with delivery.lock:
            run.stats.delivered = delivery.delivered - before[0]
            run.stats.failed = delivery.failed - before[1]
            run.stats.last_error = delivery.last_error if run.stats.failed else ""
    if not run.stats.ok:
        log.error("simulator: %s (last error: %s)", run.stats.summary(), run.stats.last_error)


def run_simulator(
    cfg: SimulatorConfig,
    publisher: Publisher,
    *,
    stop: threading.Event | None = None,
    progress: bool = False,
    kafka: KafkaConfig | None = None,
    delivery: DeliveryStats | None = None,
    market: SimulatedMarket | None = None,
    flush_timeout: float = 30.0,
    clock: Clock | None = None,
) -> SimStats:
    """Publish simulated feeds at ``cfg.rate`` events/s for ``cfg.duration`` seconds.

    ``duration`` 0 runs until ``stop`` is set (or Ctrl-C, caught here so the run
    still flushes and reports). ``rate`` <= 0 runs as fast as possible. Every
    stream starts with a full snapshot. ``kafka`` names the topics in the stats;
    ``delivery`` is the sink's delivery accounting (found on a KafkaSink when
    omitted); ``market`` replaces the default streams (tests, benchmarks); ``clock``
    replaces the real clocks (tests).
    """
    stop = stop or threading.Event()
    clock = clock or Clock()
    if market is None:
        market = SimulatedMarket.from_config(cfg, sequence_base=sequence_base(clock.time_ns()))
    if delivery is None:
        delivery = _delivery_stats(publisher)
    run = _Run(publisher, kafka or KafkaConfig(), progress, clock)
    before = (delivery.delivered, delivery.failed) if delivery else (0, 0)
    deadline = run.start_ns + int(cfg.duration * 1e9) if cfg.duration > 0 else None
    try:
        run.emit(market.snapshots(clock.time_ns()))
        if cfg.rate > 0:
            _paced(run, market, cfg.rate, cfg.seed + 1, deadline, stop)
        else:
            _max_rate(run, market, deadline, stop)
    except KeyboardInterrupt:
        run.stats.interrupted = True
    run.finish(clock.monotonic_ns())
    _flush(run, delivery, flush_timeout, before)
    if progress:
        print(f"[simulate] {run.stats.summary()}", file=sys.stderr, flush=True)
    return run.stats
