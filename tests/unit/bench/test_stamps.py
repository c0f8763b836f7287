"""How the benchmark's floor and its gateway without a broker stamp ``ingest_ts``: with a
message's arrival time by default, so its wait for the process's loop is part of its age,
and the floor counts that wait either way."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading
import time
from typing import Any

import orjson
import pytest

from bench import latency, latency_stats
from bench.kafka_floor import record_stamp
from bench.latency_floor import Floor, feed_thread
from bench.memory_gateway import ArrivalPublisher
from core.types import BookUpdate, Exchange
from mdgw.config import KafkaConfig
from mdgw.kafka.memory import broker_with_topics
from producers.publisher import Publisher
from producers.simulator import PoissonArrivals
from schemas import codec

STREAM = "BINANCE:BTC-USDT"


class Sent:
    """A picows transport that keeps what it is sent."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.underlying_transport = self

    def get_write_buffer_size(self) -> int:
        return 0

    def send(self, _msg_type: Any, frame: bytes) -> None:
        self.frames.append(frame)


def run_floor(stamp_due: bool, late_ms: int) -> tuple[Floor, list[int], int, int]:
    """A floor at 1,000 msgs/s whose loop gets to its messages ``late_ms`` after the first
    came due: (the floor, the frames' ingest_ts, the first arrival, the wall clock then)."""
    floor = Floor([STREAM], 330, 1 << 20, stamp_due)
    sub = Sent()
    floor.subs[STREAM].append(sub)
    # the feed started late_ms ago: the loop gets to its first messages late_ms late
    floor._arrivals = PoissonArrivals(1000.0, time.monotonic_ns() - late_ms * 1_000_000)
    first = floor._arrivals.next_ns
    wall_offset = time.time_ns() - time.monotonic_ns()
    floor.produce(time.monotonic_ns())
    after = time.time_ns()
    stamps = [orjson.loads(f)["ingest_ts"] for f in sub.frames]
    return floor, stamps, first + wall_offset, after


def test_the_floor_stamps_arrival_times_and_counts_the_wait() -> None:
    floor, stamps, first_wall, after = run_floor(True, late_ms=50)
    n = len(stamps)
    assert n > 10 and floor.produced == floor.sent == n
    assert stamps == sorted(stamps) and len(set(stamps)) == n
    # the first message's stamp is its arrival, ~50 ms before the loop built its frame
    assert abs(stamps[0] - first_wall) < 2_000_000
    assert after - stamps[0] >= 40_000_000
    late = floor.counters()["late"]
    assert sum(late) == n
    # the first waited ~50 ms, the last (due just before the loop ran) hardly at all
    assert latency_stats.hist_percentile(late, 1.0) >= 40_000
    assert latency_stats.hist_percentile(late, 0.0) < 5_000


def test_stamped_when_built_the_wait_is_left_out_of_the_age_but_still_counted() -> None:
    floor, stamps, _first_wall, after = run_floor(False, late_ms=50)
    assert stamps and all(after - s < 20_000_000 for s in stamps)
    assert sum(floor.counters()["late"]) == len(stamps)
    assert latency_stats.hist_percentile(floor.counters()["late"], 1.0) >= 40_000


@pytest.mark.parametrize(
    ("now", "before", "delta"),
    [(7, 3, 4), (7, None, 7), ([1, 5, 2], [1, 2], [0, 3, 2]), ([4], None, [4]), ([], [], [])],
)
def test_a_window_takes_the_difference_of_each_counter(now: Any, before: Any, delta: Any) -> None:
    assert latency.counter_delta(now, before) == delta


def _update(timestamp_ns: int) -> BookUpdate:
    return BookUpdate(
        exchange=Exchange.BINANCE,
        symbol="BTC-USDT",
        timestamp_ns=timestamp_ns,
        sequence=7,
        bids=[(100.0, 1.0)],
        asks=[(101.0, 1.0)],
        is_snapshot=True,
    )


def test_the_memory_gateways_feed_stamps_each_record_with_its_arrival() -> None:
    kafka = KafkaConfig()
    broker = broker_with_topics(kafka)
    pub = ArrivalPublisher(broker, kafka)
    for ts in (1_700_000_000_000_000_000, 1_700_000_000_250_000_000):
        pub.publish(_update(ts))
    decoded = [codec.decode(r.value) for r in broker.records(kafka.book_topic)]
    assert len(decoded) == 2
    assert [d.ingest_ns for d in decoded] == [d.timestamp_ns for d in decoded]
    assert decoded[1].ingest_ns == 1_700_000_000_250_000_000


def test_a_plain_publisher_stamps_when_it_publishes() -> None:
    kafka = KafkaConfig()
    broker = broker_with_topics(kafka)
    Publisher(broker, kafka, clock=lambda: 42).publish(_update(1_700_000_000_000_000_000))
    [record] = broker.records(kafka.book_topic)
    assert codec.decode(record.value).ingest_ns == 42


async def test_a_feed_thread_wakes_the_loop_at_each_arrival_and_stops() -> None:
    floor = Floor([STREAM], 330, 1 << 20)
    sub = Sent()
    floor.subs[STREAM].append(sub)
    stop = threading.Event()
    feed = threading.Thread(target=feed_thread, args=(floor, asyncio.get_running_loop(), stop))
    feed.start()
    try:
        await asyncio.sleep(0.05)
        assert floor.produced == 0  # no rate yet: nothing comes due
        floor.set_rate(500.0)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.to_thread(feed.join, 2.0)
    assert not feed.is_alive()
    # ~250 Poisson arrivals in 0.5 s, each produced and sent once
    assert 150 <= floor.produced <= 400 and len(sub.frames) == floor.produced
    assert sum(floor.counters()["late"]) == floor.produced


@pytest.mark.parametrize(
    "argv",
    [
        ["bench.latency_floor", "--port", "1", "--streams", STREAM, "--stamp", "sometime"],
        ["bench.latency_floor", "--port", "1", "--streams", STREAM, "--wake", "never"],
        ["bench.memory_gateway", "--port", "1", "--stamp", "sometime"],
        ["bench.memory_gateway", "--port", "1", "--feed", "later"],
        ["bench.latency", "--stamp", "sometime"],
        ["bench.latency", "--floor-wake", "never"],
        ["bench.latency", "--nobroker-feed", "later"],
    ],
)
def test_an_unknown_stamp_wake_or_feed_is_refused_with_the_choices(argv: list[str]) -> None:
    out = subprocess.run([sys.executable, "-m", *argv], capture_output=True, timeout=60)
    assert out.returncode == 2
    assert b"invalid choice" in out.stderr and out.stdout == b""


def book_record(stream: str, ingest_ns: int) -> bytes:
    exchange, symbol = stream.split(":")
    u = BookUpdate(Exchange[exchange], symbol, 1, 7, [(1.0, 2.0)], [], False, 6, 77, 20, 5, 6)
    return codec.encode(dataclasses.replace(u, ingest_ns=ingest_ns))


def test_a_kafka_fed_floor_sends_each_book_record_stamped_by_its_producer() -> None:
    floor = Floor([STREAM, "KRAKEN:BTC-USD"], 330, 1 << 20)
    sub = Sent()
    floor.subs[STREAM].append(sub)
    stamp = time.time_ns() - 3_000_000  # produced 3 ms ago
    floor.records(
        [
            book_record(STREAM, stamp),
            book_record("KRAKEN:BTC-USD", stamp + 1),  # nobody on that stream
            book_record("COINBASE:ETH-USD", stamp),  # not one of the floor's streams
            book_record(STREAM, 0),  # no producer stamp
            None,  # a tombstone
            b"\xff\x00 not protobuf",
        ]
    )
    assert [orjson.loads(f)["ingest_ts"] for f in sub.frames] == [stamp]
    k = floor.counters()
    assert (k["produced"], k["sent"], k["unknown"]) == (2, 1, 4)
    # the wait from the producer's stamp to the frame: ~3 ms, counted for both records
    assert sum(k["late"]) == 2
    assert 2_500 <= latency_stats.hist_percentile(k["late"], 0.5) < 50_000


def test_record_stamp_names_the_stream_and_the_producers_stamp() -> None:
    assert record_stamp(book_record(STREAM, 42)) == (STREAM, 42)
    assert record_stamp(book_record(STREAM, 0)) is None
    assert record_stamp(None) is None
    assert record_stamp(b"\x00" * 40) is None
