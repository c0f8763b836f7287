"""``mdgw record``: capture the project's book and trade topics into the native format.

Each record's value is written as is (a ``MarketDataMessage``) with its receive
time, so ``mdgw replay`` plays it back at the recorded pace.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

from mdgw.config import Config
from mdgw.kafka.admin import partition_count
from mdgw.kafka.source import consumer_conf
from producers.captures import NativeCaptureWriter


def record(
    config: Config,
    out: str,
    *,
    duration: float = 0.0,
    from_beginning: bool = False,
    stop: threading.Event | None = None,
    idle_exit: float = 0.0,
) -> int:
    """Write records until ``duration`` (0 = until stopped); returns how many were written.

    ``idle_exit`` > 0 stops after that many seconds without a record (tests, batch use).
    """
    k = config.kafka
    stop = stop or threading.Event()
    consumer = Consumer(consumer_conf(k, f"{k.client_id}-record"))
    start = OFFSET_BEGINNING if from_beginning else OFFSET_END
    tps = [
        TopicPartition(t, p, start)
        for t in (k.book_topic, k.trades_topic)
        for p in range(partition_count(k, t))
    ]
    consumer.assign(tps)
    written = 0
    deadline = time.monotonic() + duration if duration else None
    last = time.monotonic()
    try:
        with NativeCaptureWriter(out) as writer:
            while not stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if idle_exit and now - last > idle_exit:
                    break
                for msg in consumer.consume(1000, 0.2):
                    value = msg.value()
                    if msg.error() or value is None:
                        continue
                    _ts_type, ts_ms = msg.timestamp()
                    writer.write(ts_ms * 1_000_000 if ts_ms > 0 else time.time_ns(), value)
                    written += 1
                    last = time.monotonic()
    finally:
        consumer.close()
    return written


def run_record(config: Config, out: str, *, duration: float, from_beginning: bool) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    n = record(config, out, duration=duration, from_beginning=from_beginning, stop=stop)
    print(f"recorded {n:,} records into {out}", file=sys.stderr)
    return 0
