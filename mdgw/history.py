"""Kafka as history: the book of a stream at any retained instant, and its deltas after.

A time-indexed checkpoint topic holds full books (written with the compacted
snapshots, every ``checkpoint_every_ms``), each with the book-topic partition and
offset its deltas resume from. So the book at ``t`` is: the newest checkpoint at
or before ``t`` (found with ``offsets_for_times``), then the stream's deltas up to
``t``: never more than one checkpoint interval of deltas.

Blocking (a dedicated confluent-kafka consumer per call); callers run it on a
thread. Instants are the producer's ingest time (``ingest_ns``), the Kafka record
timestamp in milliseconds being the coarse index.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from core.book import ApplyResult, OrderBook
from core.types import BookUpdate, Trade, parse_stream_key
from mdgw.config import KafkaConfig
from mdgw.kafka.headers import BOOK_OFFSET, BOOK_PARTITION, Headers, int_header
from mdgw.kafka.source import consumer_conf
from schemas import codec
from schemas.errors import SchemaError

log = logging.getLogger(__name__)


class HistoryError(Exception):
    """A past instant that cannot be served; ``code`` says why, the message is for clients."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


UNAVAILABLE = "history is temporarily unavailable"
"""What a client is told when Kafka fails: its error texts name brokers, topics and
addresses, so they go to the log only (docs/security.md)."""


@contextlib.contextmanager
def kafka_boundary(what: str) -> Iterator[None]:
    """Translate the Kafka client's errors into ``HistoryError("kafka", UNAVAILABLE)``."""
    try:
        yield
    except KafkaException as e:
        log.warning("%s: Kafka error: %s", what, e)
        raise HistoryError("kafka", UNAVAILABLE) from e


@dataclass(frozen=True, slots=True)
class Checkpoint:
    book: BookUpdate
    partition: int
    offset: int
    """Book-topic offset of the first delta after this checkpoint."""
    timestamp_ms: int


HISTORY_FETCH = {
    "fetch.wait.max.ms": 20,
    # Small buffers: a history reader reads one stream's partition at its client's
    # pace, and there may be dozens at once; the live consumer's 64 MiB each would
    # let 50 replays hold gigabytes (docs/security.md: budgets).
    "queued.max.messages.kbytes": 1024,
    "queued.min.messages": 1000,
    "fetch.max.bytes": 1_048_576,
    "max.partition.fetch.bytes": 262_144,
}
"""librdkafka settings of every history consumer."""


def _consumer(cfg: KafkaConfig) -> Consumer:
    return Consumer(consumer_conf(cfg, f"{cfg.client_id}-history", **HISTORY_FETCH))


def find_checkpoint(
    cfg: KafkaConfig, stream: str, at_ns: int, lookback_ms: int
) -> Checkpoint | None:
    """The newest checkpoint of ``stream`` at or before ``at_ns`` within ``lookback_ms``."""
    with kafka_boundary(f"checkpoint of {stream}"):
        return _find_checkpoint(cfg, stream, at_ns, lookback_ms)


def _find_checkpoint(
    cfg: KafkaConfig, stream: str, at_ns: int, lookback_ms: int
) -> Checkpoint | None:
    at_ms = at_ns // 1_000_000
    consumer = _consumer(cfg)
    try:
        md = consumer.list_topics(cfg.checkpoints_topic, timeout=10).topics.get(
            cfg.checkpoints_topic
        )
        if md is None or md.error is not None:
            return None
        parts = list(md.partitions)
        starts = consumer.offsets_for_times(
            [TopicPartition(cfg.checkpoints_topic, p, max(0, at_ms - lookback_ms)) for p in parts],
            timeout=10,
        )
        assign = []
        ends: dict[int, int] = {}
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if tp.offset < 0 or tp.offset >= high:
                continue
            ends[tp.partition] = high
            assign.append(TopicPartition(cfg.checkpoints_topic, tp.partition, tp.offset))
        if not assign:
            return None
        consumer.assign(assign)
        best: Checkpoint | None = None
        key = stream.encode()
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(500, 0.2):
                if msg.error():
                    continue
                p, offset = msg.partition(), msg.offset()
                if p is None or offset is None:  # only error events have neither
                    continue
                ts = msg.timestamp()[1]
                if offset + 1 >= ends.get(p, 0) or ts > at_ms:
                    ends.pop(p, None)
                if ts > at_ms or msg.key() != key:
                    continue
                cp = _checkpoint(msg)
                if (
                    cp is not None
                    and cp.book.ingest_ns <= at_ns
                    and (best is None or cp.book.sequence > best.book.sequence)
                ):
                    best = cp
        return best
    finally:
        consumer.close()


def _checkpoint(msg: Message) -> Checkpoint | None:
    headers = cast(Headers | None, msg.headers())  # consumed records: (str, bytes) pairs
    part, offset = int_header(headers, BOOK_PARTITION), int_header(headers, BOOK_OFFSET)
    try:
        book = codec.decode(msg.value() or b"")
    except SchemaError:
        return None
    if part is None or offset is None or not isinstance(book, BookUpdate):
        return None
    book.is_snapshot = True
    return Checkpoint(book, part, offset, msg.timestamp()[1])


def earliest_ns(cfg: KafkaConfig, topic: str, partition: int) -> int | None:
    """Timestamp of the oldest retained record of a partition (None when empty)."""
    with kafka_boundary(f"oldest record of {topic}[{partition}]"):
        return _earliest_ns(cfg, topic, partition)


def _earliest_ns(cfg: KafkaConfig, topic: str, partition: int) -> int | None:
    consumer = _consumer(cfg)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        if low >= high:
            return None
        consumer.assign([TopicPartition(topic, partition, low)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for msg in consumer.consume(1, 0.2):
                if not msg.error():
                    return msg.timestamp()[1] * 1_000_000
        return None
    finally:
        consumer.close()


def stream_records(
    cfg: KafkaConfig,
    topic: str,
    partition: int,
    offset: int,
    stream: str,
    stop: threading.Event | None = None,
    until_ns: int | None = None,
) -> Iterator[BookUpdate | Trade]:
    """Decoded records of one stream from ``offset`` on; ends past ``until_ns`` or on stop.

    With ``until_ns`` None it follows the partition's growth (live tail) until stop.
    Records that do not decode are skipped (the live path dead-letters them).
    """
    with kafka_boundary(f"history of {stream}"):
        consumer = _consumer(cfg)
    key = stream.encode()
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        while stop is None or not stop.is_set():
            msgs = consumer.consume(500, 0.1)
            if not msgs and until_ns is not None:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=10, cached=False
                )
                pos = consumer.position([TopicPartition(topic, partition)])[0].offset
                # nothing fetched yet (a slow first fetch): the position is unknown, the
                # reader still stands at ``offset``; ending here would lose the window
                if pos < 0:
                    pos = offset
                if pos >= high:
                    return
            for msg in msgs:
                if msg.error() or msg.key() != key:
                    continue
                # the end is decided by the record's ingest_ns only: its Kafka timestamp is
                # stamped when it was produced, which under load is more than a ms later
                try:
                    rec = codec.decode(msg.value() or b"")
                except SchemaError:
                    continue
                if isinstance(rec, BookUpdate | Trade):
                    if until_ns is not None and rec.ingest_ns > until_ns:
                        return
                    yield rec
    except KafkaException as e:
        log.warning("history of %s: Kafka error: %s", stream, e)
        raise HistoryError("kafka", UNAVAILABLE) from e
    finally:
        consumer.close()


def book_at(
    cfg: KafkaConfig, stream: str, at_ns: int, lookback_ms: int, partition: int | None = None
) -> OrderBook:
    """The book of ``stream`` as it was at ``at_ns`` (after every record ingested by then)."""
    try:
        exchange, symbol = parse_stream_key(stream)
    except ValueError as e:
        raise HistoryError("unknown_symbol", str(e)) from e
    cp = find_checkpoint(cfg, stream, at_ns, lookback_ms)
    if cp is None:
        if partition is not None:
            oldest = earliest_ns(cfg, cfg.book_topic, partition)
            if oldest is None or at_ns < oldest:
                raise HistoryError(
                    "before_retention",
                    f"{stream}: no history at that time (retained from {oldest or 'nothing'} ns)",
                )
        raise HistoryError(
            "no_checkpoint", f"{stream}: no checkpoint within {lookback_ms} ms before that time"
        )
    book = OrderBook(exchange, symbol)
    book.apply(cp.book)
    for rec in stream_records(cfg, cfg.book_topic, cp.partition, cp.offset, stream, until_ns=at_ns):
        if isinstance(rec, BookUpdate):
            result = book.apply(rec)
            if result is ApplyResult.GAP:
                raise HistoryError("gap", f"{stream}: a sequence gap before that time")
    return book
