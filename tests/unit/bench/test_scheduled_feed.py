"""bench.scheduled_feed: the simulator runs ahead on its own clock, and each record reaches
the broker at its arrival time, stamped with it, in order; what is not due at the end of
a run is dropped."""

from __future__ import annotations

import dataclasses
import threading
import time

from bench.memory_gateway import ArrivalPublisher, Feed
from bench.scheduled_feed import RunAheadClock, ScheduledSink
from mdgw.config import Config, KafkaConfig, SimulatorConfig
from mdgw.kafka.memory import broker_with_topics
from producers.simulate_run import run_simulator
from schemas import codec

MS = 1_000_000


def test_the_clock_runs_ahead_without_sleeping_then_waits_for_half() -> None:
    clock = RunAheadClock(ahead_s=0.2)
    stop = threading.Event()
    start_v, start_real = clock.monotonic_ns(), time.monotonic_ns()
    for _ in range(150):  # 150 ms of simulated waits: no sleep, time only moves
        clock.wait(stop, 0.001)
    assert time.monotonic_ns() - start_real < 50 * MS
    assert clock.monotonic_ns() - start_v == 150 * MS
    assert abs(clock.time_ns() - clock.monotonic_ns() - clock.wall_offset) == 0
    while clock.monotonic_ns() - start_v < 250 * MS:  # past 200 ms ahead: it sleeps
        clock.wait(stop, 0.001)
    slept = time.monotonic_ns() - start_real
    assert slept >= 100 * MS  # until at most half of the 200 ms was left
    stop.set()
    t = time.monotonic_ns()
    clock.wait(stop, 10.0)  # stopped: returns at once however far ahead
    assert time.monotonic_ns() - t < 50 * MS


def test_records_are_released_at_their_time_in_order_and_the_rest_dropped() -> None:
    kafka = KafkaConfig()
    broker = broker_with_topics(kafka)
    sink = ScheduledSink(broker)
    now = time.time_ns()
    for i, delay in enumerate((60, 120, 5_000)):
        sink.due_wall_ns = now + delay * MS
        sink.send(kafka.book_topic, "K", b"%d" % i)
    assert broker.records(kafka.book_topic) == []
    time.sleep(0.03)
    assert broker.records(kafka.book_topic) == []  # none due yet
    deadline = time.monotonic() + 2
    while sink.released < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    released_at = time.time_ns()
    assert [r.value for r in broker.records(kafka.book_topic)] == [b"0", b"1"]
    assert released_at >= now + 120 * MS and sink.late_ns < 50 * MS
    assert sink.pending() == 1
    sink.close()  # the one due in 5 s never goes
    assert sink.pending() == 0 and sink.released == 2


def test_a_record_keeps_the_partition_and_timestamp_it_was_sent_with() -> None:
    kafka = KafkaConfig()
    broker = broker_with_topics(kafka)
    sink = ScheduledSink(broker)
    sink.due_wall_ns = time.time_ns()
    sink.send(kafka.book_topic, "K", b"placed", [("h", b"1")], partition=1, timestamp_ms=1234)
    sink.send(kafka.book_topic, "K", b"left to the broker")
    deadline = time.monotonic() + 2
    while sink.released < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    sink.close()
    by_value = {r.value: r for r in broker.records(kafka.book_topic)}
    placed, other = by_value[b"placed"], by_value[b"left to the broker"]
    assert (placed.value, placed.partition, placed.timestamp_ms) == (b"placed", 1, 1234)
    assert placed.headers == [("h", b"1")]
    assert other.timestamp_ms != 1234  # the broker's clock


def test_a_run_ahead_simulator_hands_over_records_on_time_stamped_with_their_arrival() -> None:
    kafka = KafkaConfig()
    broker = broker_with_topics(kafka)
    sink = ScheduledSink(broker)
    stop = threading.Event()
    sim = dataclasses.replace(SimulatorConfig(), rate=200.0, duration=0.0)
    started = time.time_ns()
    runner = threading.Thread(
        target=run_simulator,
        args=(sim, ArrivalPublisher(sink, kafka)),
        kwargs={"stop": stop, "kafka": kafka, "clock": RunAheadClock(ahead_s=2.0)},
    )
    runner.start()
    try:
        time.sleep(0.3)
        made = sink.pending() + sink.released
        assert made > 200  # ~1-2 s of events at 200/s were made at once, ahead of time
        records = broker.records(kafka.book_topic)
        now = time.time_ns()
        decoded = [codec.decode(r.value) for r in records if r.value is not None]
        # only what is due is in the broker, each stamped with its arrival, in order
        assert decoded and all(d.ingest_ns == d.timestamp_ns <= now for d in decoded)
        deltas = [d for d in decoded if not d.is_snapshot]
        assert 20 <= len(deltas) <= 120  # ~60 in 0.3 s at 200/s (Poisson)
        for stream in {d.stream for d in deltas}:  # the broker lists partition by partition
            times = [d.timestamp_ns for d in deltas if d.stream == stream]
            assert times == sorted(times)
        assert all(d.timestamp_ns >= started - 5 * MS for d in deltas)
    finally:
        stop.set()
        runner.join(5)
        sink.close()
    assert not runner.is_alive()


def test_the_memory_gateways_feed_stops_a_run_and_drops_what_it_made_ahead() -> None:
    kafka = KafkaConfig()
    broker = broker_with_topics(kafka)
    feed = Feed(Config(kafka=kafka), broker)
    feed.set_rate(100.0)
    time.sleep(0.2)
    feed.set_rate(0)  # stops the run: nothing more reaches the broker
    n = len(broker.records(kafka.book_topic))
    assert n > 0
    time.sleep(0.2)
    assert len(broker.records(kafka.book_topic)) == n
