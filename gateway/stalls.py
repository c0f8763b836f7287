"""Event-loop stall reports: what held the loop while pings and handshakes waited.

The loop beats from a timer; a watchdog thread looks every quarter of the threshold
and, once the loop has missed its beat by ``stall_ms``, takes the loop thread's
stack (``sys._current_frames``: what a sampling profiler would see, without one
attached). When the loop beats again the stall is counted
(``gateway_loop_stalls_total``) and logged with its length, the garbage collector's
share of it and the stacks sampled (at most one log line per ``LOG_EVERY_S``).

A collection holds the interpreter lock until it ends, so the watchdog cannot sample
during one: the report's GC figure says how much of the stall was collection.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from mdgw import metrics

log = logging.getLogger(__name__)

LOG_EVERY_S = 10.0
"""Least seconds between two stall log lines (every stall is counted)."""
MAX_SAMPLES = 3
"""Stacks kept per stall (one per threshold it lasts)."""
STACK_FRAMES = 14
"""Innermost frames shown per sample."""

_gc_ns = 0
"""Nanoseconds this process has spent collecting garbage (``note_gc``)."""


def note_gc(ns: int) -> None:
    """A collection took ``ns`` (the gateway's gc callback calls this)."""
    global _gc_ns
    _gc_ns += ns


def gc_ns() -> int:
    return _gc_ns


@dataclass(slots=True)
class Stall:
    """One stall: when the loop last beat, the stacks sampled since."""

    since: float
    samples: list[str] = field(default_factory=list)
    next_sample: float = 0.0


@dataclass(slots=True)
class StallReport:
    seconds: float
    """How late the loop's beat came: the loop ran something else (or nothing) at least
    this long past the beat's due time (the beats' own period is not counted)."""
    gc_seconds: float
    samples: list[str]

    def message(self) -> str:
        lines = [
            f"event loop held for {self.seconds * 1000:.0f} ms "
            f"(garbage collection {self.gc_seconds * 1000:.0f} ms of it): pings, "
            "handshakes and control messages waited"
        ]
        for i, stack in enumerate(self.samples):
            lines.append(f"  sample {i + 1}, innermost last:")
            lines.append(stack)
        if not self.samples:
            lines.append(
                "  (no sample: the loop thread kept the interpreter lock throughout, in C code"
                " or while the OS had it waiting for a core)"
            )
        return "\n".join(lines)


def format_stack(frame: FrameType) -> str:
    """The innermost :data:`STACK_FRAMES` frames, one ``file:line function`` each."""
    summary = traceback.extract_stack(frame)[-STACK_FRAMES:]
    return "\n".join(f"    {f.filename}:{f.lineno} {f.name}" for f in summary)


class StallWatch:
    """Call :meth:`beat` from the loop at least every ``period_s``; :meth:`start` runs
    the watchdog thread (``threshold_s`` <= 0: no thread, beats do nothing)."""

    def __init__(
        self,
        threshold_s: float,
        period_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_report: Callable[[StallReport], None] | None = None,
    ) -> None:
        self.threshold = threshold_s
        self.period = period_s
        self.clock = clock
        self.on_report = on_report or self._log
        self.last_beat = clock()
        self._gc_at_beat = gc_ns()
        self.stall: Stall | None = None
        self.stalls = 0
        self._loop_thread = threading.get_ident()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._logged_at = -LOG_EVERY_S
        self._unlogged = 0

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def start(self) -> None:
        """From the loop's thread: the stacks sampled are this thread's."""
        if not self.enabled or self._thread is not None:
            return
        self._loop_thread = threading.get_ident()
        self.last_beat = self.clock()
        self._thread = threading.Thread(target=self._run, name="stall-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _run(self) -> None:
        wait = max(0.005, self.threshold / 4)
        while not self._stop.wait(wait):
            self.check()

    def check(self) -> None:
        """Watchdog side: sample the loop's stack if it is late by the threshold."""
        now = self.clock()
        late = now - self.last_beat - self.period
        if late < self.threshold:
            return
        stall = self.stall
        if stall is None:  # the loop beats after this; it reports what was sampled
            stall = self.stall = Stall(self.last_beat, next_sample=now)
        if len(stall.samples) < MAX_SAMPLES and now >= stall.next_sample:
            frame = sys._current_frames().get(self._loop_thread)
            if frame is not None:
                stall.samples.append(format_stack(frame))
            stall.next_sample = now + self.threshold

    def beat(self) -> None:
        """Loop side: the loop runs; report the stall it comes out of, if any."""
        now = self.clock()
        late = now - self.last_beat - self.period
        stall, self.stall = self.stall, None
        if self.enabled and late >= self.threshold:
            self.stalls += 1
            metrics.LOOP_STALLS.inc()
            # a sample taken for an earlier beat (the watchdog raced this one) is not ours
            samples = stall.samples if stall and stall.since == self.last_beat else []
            gc_s = (gc_ns() - self._gc_at_beat) / 1e9
            self.on_report(StallReport(seconds=late, gc_seconds=gc_s, samples=samples))
        self.last_beat = now
        self._gc_at_beat = gc_ns()

    def _log(self, report: StallReport) -> None:
        now = self.clock()
        if now - self._logged_at < LOG_EVERY_S:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more since the last report)" if self._unlogged else ""
        self._logged_at, self._unlogged = now, 0
        log.warning("%s%s", report.message(), more)
