"""The stall watch (gateway/stalls.py): a loop held past the threshold is counted and
reported with the stack that held it and the collector's share of it."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from gateway import stalls
from gateway.stalls import Stall, StallReport, StallWatch


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watch(threshold: float = 0.25, period: float = 0.05) -> tuple[StallWatch, FakeClock, list]:
    clock = FakeClock()
    reports: list[StallReport] = []
    return StallWatch(threshold, period, clock=clock, on_report=reports.append), clock, reports


def test_a_beat_on_time_reports_nothing() -> None:
    w, clock, reports = watch()
    for _ in range(10):
        clock.now += 0.05 + 0.2  # late, but under the threshold
        w.check()
        w.beat()
    assert reports == [] and w.stalls == 0 and w.stall is None


def this_test_holds_the_loop() -> None:
    pass


def test_a_late_beat_is_reported_with_the_stack_sampled_meanwhile() -> None:
    w, clock, reports = watch()
    clock.now += 0.05 + 0.24
    w.check()
    assert w.stall is None  # not late enough yet
    clock.now += 0.02
    w.check()  # samples this thread: the watch was made here, on the "loop"
    clock.now += 0.1
    w.check()  # the next sample waits a whole threshold
    clock.now += 0.2
    w.check()
    w.beat()
    assert len(reports) == 1 and w.stalls == 1
    report = reports[0]
    assert report.seconds == pytest.approx(0.56)  # late by: the 50 ms period is not counted
    assert len(report.samples) == 2
    assert "test_a_late_beat_is_reported_with_the_stack_sampled_meanwhile" in report.samples[0]
    assert "held for 560 ms" in report.message()
    clock.now += 0.05
    w.beat()
    assert len(reports) == 1  # over: the next beat is on time


def test_a_stall_the_watchdog_never_saw_is_reported_without_a_sample() -> None:
    w, clock, reports = watch()
    clock.now += 0.5
    w.beat()
    assert len(reports) == 1 and reports[0].samples == []
    assert "no sample" in reports[0].message()


def test_a_sample_taken_for_an_earlier_beat_is_not_reported() -> None:
    w, clock, reports = watch()
    w.stall = Stall(since=clock.now - 1.0, samples=["    stale:1 elsewhere"])  # a raced check
    clock.now += 0.06
    w.beat()
    assert reports == [] and w.stall is None
    w.stall = Stall(since=clock.now - 1.0, samples=["    stale:1 elsewhere"])
    clock.now += 0.4
    w.beat()
    assert len(reports) == 1 and reports[0].samples == []


def test_collection_time_during_the_stall_is_its_gc_share() -> None:
    w, clock, reports = watch()
    stalls.note_gc(5_000_000_000)  # before the last beat: not this stall's
    w.beat()
    clock.now += 0.3
    clock.now += 0.1
    stalls.note_gc(180_000_000)
    w.beat()
    assert reports[0].gc_seconds == pytest.approx(0.18)
    assert "garbage collection 180 ms" in reports[0].message()


def test_off_means_no_thread_and_no_reports() -> None:
    w, clock, reports = watch(threshold=0)
    w.start()
    assert w._thread is None
    clock.now += 10
    w.check()
    w.beat()
    assert reports == [] and w.stalls == 0


def test_log_lines_are_rate_limited_but_every_stall_counts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    w = StallWatch(0.25, 0.05, clock=clock)
    caplog.set_level(logging.WARNING, logger="gateway.stalls")
    for _ in range(3):
        clock.now += 1.0
        w.beat()
    assert w.stalls == 3
    assert len(caplog.records) == 1
    clock.now += stalls.LOG_EVERY_S
    w.beat()
    assert len(caplog.records) == 2
    assert "(2 more since the last report)" in caplog.records[1].getMessage()


def hold_the_loop_for_test(seconds: float) -> None:
    """Pure-Python work on the loop (the interpreter lock changes hands meanwhile)."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1


async def test_the_watchdog_thread_samples_a_loop_held_by_python_code() -> None:
    reports: list[StallReport] = []
    w = StallWatch(0.15, 0.02, on_report=reports.append)

    async def beats() -> None:
        while True:
            await asyncio.sleep(0.02)
            w.beat()

    task = asyncio.create_task(beats())
    w.start()
    try:
        await asyncio.sleep(0.1)
        hold_the_loop_for_test(0.6)
        await asyncio.sleep(0.1)
    finally:
        task.cancel()
        w.stop()
    assert len(reports) == 1
    assert reports[0].seconds >= 0.6 - 0.02  # held 0.6 s, less the 20 ms between beats
    assert reports[0].samples and all("hold_the_loop_for_test" in s for s in reports[0].samples)
