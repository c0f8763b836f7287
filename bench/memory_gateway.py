"""The gateway without Kafka, for ``bench.latency``'s ``nobroker`` workload.

``python -m bench.memory_gateway --port P`` runs the real gateway (``gateway.app``,
the same code, configuration and environment as ``mdgw gateway``) on the in-memory
broker of :mod:`mdgw.kafka.memory` instead of a Kafka cluster, and the simulator of
``mdgw simulate`` on a thread of the same process, publishing to that broker. Every
record still takes the gateway's whole path: its consumer thread (woken by the
broker's condition variable instead of librdkafka), the hand-off to the loop, decode,
apply, encode and the pass over the clients. What is left out is the Kafka hop
(producer -> broker -> consumer), so the clients' age here, beside the floor's, is
the gateway's own share of the latency.

Each record's ``ingest_ts`` is its arrival time (``--stamp due``, the default): the
simulator's own time for it, which it gives as the record's ``timestamp_ns``, the
moment an outside feed would have handed it over; ``bench.latency_floor`` stamps its
messages the same way. Stamped when published (``--stamp published``, as ``mdgw
simulate`` does and as this workload did before the nineteenth pass), the record's
wait for the interpreter lock, held by the gateway's loop, would be left out of the
clients' age, although it is the gateway's own doing.

The simulator runs ahead of the wall clock (``--feed ahead``, the default with
arrival stamps; :mod:`bench.scheduled_feed`) and a release thread hands each record
to the broker at its arrival time, so making the events does not compete with the
gateway's loop for that lock as they come due. ``--feed live`` makes each event as
it comes due, on the simulator's thread, as ``mdgw simulate`` does in its process.

Like ``bench.latency_floor`` it reads the feed rate (updates/s over all streams)
from stdin, one number per line (a line that is not a finite number is reported on
stderr and ignored; 0 stops the feed; each new rate starts a new
simulator run: snapshots first, as a new ``mdgw simulate`` process would), prints
``ready`` once the gateway has every stream's book, and exits at EOF. The simulator
(counted in this process's CPU) makes 30 s of events at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import threading
import time
from collections.abc import Callable

from bench.rate_lines import read_rate
from bench.scheduled_feed import RunAheadClock, ScheduledSink
from core.types import BookUpdate, Trade
from gateway.app import start_gateway
from mdgw.config import Config, KafkaConfig, load_config
from mdgw.kafka.memory import MemoryBroker, broker_with_topics
from mdgw.kafka.sink import RecordSink
from producers.publisher import Publisher
from producers.simulate_run import run_simulator
from producers.simulator import default_streams

PRIME_RATE = 200.0
"""The first feed (what ``bench.latency.Gateway`` primes a real gateway with)."""


class ArrivalPublisher(Publisher):
    """A :class:`Publisher` that stamps ``ingest_ns`` with the record's arrival time, its
    ``timestamp_ns`` (the simulator's Poisson arrival, on the wall clock), and tells a
    :class:`ScheduledSink` when to hand it over."""

    def __init__(self, sink: RecordSink, kafka: KafkaConfig) -> None:
        super().__init__(sink, kafka, clock=lambda: self._arrival)
        self._arrival = 0
        self._scheduled = sink if isinstance(sink, ScheduledSink) else None

    def publish(self, msg: BookUpdate | Trade) -> None:
        self._arrival = msg.timestamp_ns
        if self._scheduled is not None:
            self._scheduled.due_wall_ns = msg.timestamp_ns
        super().publish(msg)


class Feed:
    """At most one simulator run at a time, on its own thread.

    ``feed`` ``ahead`` (the default with arrival stamps): the simulator runs ahead on
    its own clock and a release thread hands each record to the broker at its arrival
    time (:mod:`bench.scheduled_feed`); ``live``: the simulator paces itself and
    publishes as it goes, as ``mdgw simulate`` does, sharing the interpreter lock with
    the gateway's loop as it makes each event."""

    def __init__(
        self, config: Config, broker: MemoryBroker, stamp_due: bool = True, ahead: bool = True
    ) -> None:
        self.config = config
        self.broker = broker
        self.stamp_due = stamp_due
        self.ahead = ahead and stamp_due
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sink: ScheduledSink | None = None
        self.runs = 0

    def set_rate(self, rate: float) -> None:
        self.stop()
        if rate <= 0:
            return
        sim = dataclasses.replace(self.config.simulator, rate=rate, duration=0.0)
        kafka = self.config.kafka
        clock: RunAheadClock | None = None
        if self.ahead:
            self._sink = ScheduledSink(self.broker)
            publisher: Publisher = ArrivalPublisher(self._sink, kafka)
            clock = RunAheadClock()
        elif self.stamp_due:
            publisher = ArrivalPublisher(self.broker, kafka)
        else:
            publisher = Publisher(self.broker, kafka)
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=run_simulator,
            args=(sim, publisher),
            kwargs={"stop": self._stop, "kafka": kafka, "clock": clock},
            name=f"simulate{self.runs}",
            daemon=True,
        )
        self.runs += 1
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._sink is not None:  # what the run made ahead and is not due yet: dropped
            self._sink.close()
            self._sink = None


async def wait_for(pred: Callable[[], object], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("the memory gateway did not get ready")
        await asyncio.sleep(0.05)


async def main_async(
    config: Config, streams: int, stamp_due: bool = True, ahead: bool = True
) -> None:
    broker = broker_with_topics(config.kafka)
    gateway = await start_gateway(config, sources=broker, sink=broker)
    feed = Feed(config, broker, stamp_due, ahead)
    try:
        await wait_for(gateway.server.is_ready, 60)
        feed.set_rate(PRIME_RATE)
        await wait_for(lambda: gateway.market.stream_count() >= streams, 60)
        feed.set_rate(0)
        print("ready", gateway.port, flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            rate = read_rate(line, "memory_gateway")
            if rate is not None:
                await asyncio.to_thread(feed.set_rate, rate)
    finally:
        feed.stop()
        await gateway.stop(timeout=5)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--symbols", type=int, default=3, help="symbols per exchange (as simulate)")
    ap.add_argument(
        "--stamp",
        choices=("due", "published"),
        default="due",
        help="ingest_ts: the record's arrival time (default) or when it is published",
    )
    ap.add_argument(
        "--feed",
        choices=("ahead", "live"),
        default="ahead",
        help="with arrival stamps: the simulator runs ahead and a release thread hands each "
        "record over at its arrival (default), or it makes each event as it comes due",
    )
    args = ap.parse_args()
    overrides = {
        "gateway": {"host": "127.0.0.1", "port": args.port, "workers": 1},
        "simulator": {"symbols_per_exchange": args.symbols},
    }
    config = load_config(None, overrides=overrides)
    streams = len(default_streams(args.symbols))
    import uvloop

    uvloop.install()
    asyncio.run(main_async(config, streams, args.stamp == "due", args.feed == "ahead"))


if __name__ == "__main__":
    main()
