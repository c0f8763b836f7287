"""Publish normalized book updates and trades to Kafka: the one path every feed uses.

It stamps ``ingest_ns`` (the moment the record is handed to Kafka), encodes with
the schema codec, keys by stream and counts what it sent.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from core.types import BookUpdate, Trade
from mdgw import tracing
from mdgw.config import KafkaConfig, TelemetryConfig
from mdgw.kafka.sink import RecordSink
from schemas import codec


class Publisher:
    """Sends BookUpdates to the book topic and Trades to the trades topic."""

    def __init__(
        self,
        sink: RecordSink,
        cfg: KafkaConfig,
        clock: Callable[[], int] = time.time_ns,
        telemetry: TelemetryConfig | None = None,
    ) -> None:
        tracing.setup_producer(telemetry, cfg.client_id)  # tracing hook: None reads MDGW_* env
        self._sink = sink
        self._book_topic = cfg.book_topic
        self._trades_topic = cfg.trades_topic
        self._clock = clock
        self.books_sent = 0
        self.trades_sent = 0
        self.per_stream: Counter[str] = Counter()

    def publish(self, msg: BookUpdate | Trade) -> None:
        msg.ingest_ns = self._clock()
        stream = msg.stream
        if isinstance(msg, BookUpdate):
            topic = self._book_topic
            self.books_sent += 1
        else:
            topic = self._trades_topic
            self.trades_sent += 1
        self.per_stream[stream] += 1
        value = codec.encode(msg)
        if tracing.ENABLED:  # tracing hook: traceparent header, span when sampled
            tracing.send(self._sink, topic, stream, value, msg.sequence)
        else:
            self._sink.send(topic, stream, value, None)

    def flush(self, timeout: float = 30.0) -> int:
        return self._sink.flush(timeout)
