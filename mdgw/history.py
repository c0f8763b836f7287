"""Kafka as history: the book of a stream at any retained instant, and its deltas after.

A time-indexed checkpoint topic holds full books (written with the compacted
snapshots, every ``checkpoint_every_ms``), each with the book-topic partition and
offset its deltas resume from. So the book at ``t`` is: the newest checkpoint at
or before ``t`` (found with ``offsets_for_times``), then the stream's deltas up to
``t``: never more than one checkpoint interval of deltas.

Blocking (a dedicated record source per call, :mod:`mdgw.kafka.client`); callers run it on a
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

from core.book import ApplyResult, OrderBook
from core.types import BookUpdate, Trade, parse_stream_key
from mdgw.config import KafkaConfig
from mdgw.kafka.client import Record, RecordSource, SourceError, SourceFactory, sources_for
from mdgw.kafka.headers import BOOK_OFFSET, BOOK_PARTITION, int_header
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
    """Translate Kafka read errors into ``HistoryError("kafka", UNAVAILABLE)``."""
    try:
        yield
    except SourceError as e:
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
    # Small buffers: a history reader reads one stream's partition at its client's
    # pace, and there may be dozens at once; the live consumer's 64 MiB each would
    # let 50 replays hold gigabytes (docs/security.md: budgets).
    "queued.max.messages.kbytes": 1024,
    "queued.min.messages": 1000,
    "fetch.max.bytes": 1_048_576,
    "max.partition.fetch.bytes": 262_144,
}
"""librdkafka settings of every history consumer (beside a 20 ms fetch wait)."""


def _source(cfg: KafkaConfig, sources: SourceFactory | None) -> RecordSource:
    name = f"{cfg.client_id}-history"
    return sources_for(cfg, sources)(name, fetch_wait_ms=20, settings=HISTORY_FETCH)


def find_checkpoint(
    cfg: KafkaConfig,
    stream: str,
    at_ns: int,
    lookback_ms: int,
    *,
    sources: SourceFactory | None = None,
) -> Checkpoint | None:
    """The newest checkpoint of ``stream`` at or before ``at_ns`` within ``lookback_ms``."""
    with kafka_boundary(f"checkpoint of {stream}"):
        return _find_checkpoint(cfg, stream, at_ns, lookback_ms, sources)


def _find_checkpoint(
    cfg: KafkaConfig, stream: str, at_ns: int, lookback_ms: int, sources: SourceFactory | None
) -> Checkpoint | None:
    at_ms = at_ns // 1_000_000
    topic = cfg.checkpoints_topic
    source = _source(cfg, sources)
    try:
        try:
            parts = source.partitions(topic)
        except SourceError as e:
            if e.retriable:
                raise
            return None  # no checkpoint topic: no checkpoint
        starts = source.offsets_for_times(topic, parts, max(0, at_ms - lookback_ms))
        assign = []
        ends: dict[int, int] = {}
        for part, offset in starts.items():
            _low, high = source.watermarks(topic, part)
            if offset < 0 or offset >= high:
                continue
            ends[part] = high
            assign.append((topic, part, offset))
        if not assign:
            return None
        source.assign(assign)
        best: Checkpoint | None = None
        key = stream.encode()
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for rec in source.consume(500, 0.2):
                p = rec.partition
                ts = rec.timestamp_ms
                if rec.offset + 1 >= ends.get(p, 0) or ts > at_ms:
                    ends.pop(p, None)
                if ts > at_ms or rec.key != key:
                    continue
                cp = _checkpoint(rec)
                if (
                    cp is not None
                    and cp.book.ingest_ns <= at_ns
                    and (best is None or cp.book.sequence > best.book.sequence)
                ):
                    best = cp
        return best
    finally:
        source.close()


def _checkpoint(rec: Record) -> Checkpoint | None:
    part, offset = int_header(rec.headers, BOOK_PARTITION), int_header(rec.headers, BOOK_OFFSET)
    try:
        book = codec.decode(rec.value or b"")
    except SchemaError:
        return None
    if part is None or offset is None or not isinstance(book, BookUpdate):
        return None
    book.is_snapshot = True
    return Checkpoint(book, part, offset, rec.timestamp_ms)


def earliest_ns(
    cfg: KafkaConfig, topic: str, partition: int, *, sources: SourceFactory | None = None
) -> int | None:
    """Timestamp of the oldest retained record of a partition (None when empty)."""
    with kafka_boundary(f"oldest record of {topic}[{partition}]"):
        return _earliest_ns(cfg, topic, partition, sources)


def _earliest_ns(
    cfg: KafkaConfig, topic: str, partition: int, sources: SourceFactory | None
) -> int | None:
    source = _source(cfg, sources)
    try:
        low, high = source.watermarks(topic, partition)
        if low >= high:
            return None
        source.assign([(topic, partition, low)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for rec in source.consume(1, 0.2):
                return rec.timestamp_ms * 1_000_000
        return None
    finally:
        source.close()


def offset_for_time(
    cfg: KafkaConfig,
    topic: str,
    partition: int,
    at_ns: int,
    *,
    sources: SourceFactory | None = None,
) -> int | None:
    """First offset of a partition at or after ``at_ns`` (None when nothing is that new)."""
    with kafka_boundary(f"offset of {topic}[{partition}] at {at_ns}"):
        source = _source(cfg, sources)
        try:
            offset = source.offsets_for_times(topic, [partition], at_ns // 1_000_000)[partition]
            return offset if offset >= 0 else None
        finally:
            source.close()


def stream_records(
    cfg: KafkaConfig,
    topic: str,
    partition: int,
    offset: int,
    stream: str,
    stop: threading.Event | None = None,
    until_ns: int | None = None,
    *,
    sources: SourceFactory | None = None,
) -> Iterator[BookUpdate | Trade]:
    """Decoded records of one stream from ``offset`` on; ends past ``until_ns`` or on stop.

    With ``until_ns`` None it follows the partition's growth (live tail) until stop.
    Records that do not decode are skipped (the live path dead-letters them).
    """
    with kafka_boundary(f"history of {stream}"):
        source = _source(cfg, sources)
    key = stream.encode()
    position = offset  # next offset to read, to know when a bounded read is done
    try:
        source.assign([(topic, partition, offset)])
        while stop is None or not stop.is_set():
            recs = source.consume(500, 0.1)
            if not recs and until_ns is not None:
                low, high = source.watermarks(topic, partition)
                if max(position, low) >= high:
                    return
            for rec in recs:
                position = rec.offset + 1
                if rec.key != key:
                    continue
                # the end is decided by the record's ingest_ns only: its Kafka timestamp is
                # stamped when it was produced, which under load is more than a ms later
                try:
                    decoded = codec.decode(rec.value or b"")
                except SchemaError:
                    continue
                if isinstance(decoded, BookUpdate | Trade):
                    if until_ns is not None and decoded.ingest_ns > until_ns:
                        return
                    yield decoded
    except SourceError as e:
        log.warning("history of %s: Kafka error: %s", stream, e)
        raise HistoryError("kafka", UNAVAILABLE) from e
    finally:
        source.close()


def book_at(
    cfg: KafkaConfig,
    stream: str,
    at_ns: int,
    lookback_ms: int,
    partition: int | None = None,
    *,
    sources: SourceFactory | None = None,
) -> OrderBook:
    """The book of ``stream`` as it was at ``at_ns`` (after every record ingested by then)."""
    try:
        exchange, symbol = parse_stream_key(stream)
    except ValueError as e:
        raise HistoryError("unknown_symbol", str(e)) from e
    cp = find_checkpoint(cfg, stream, at_ns, lookback_ms, sources=sources)
    if cp is None:
        if partition is not None:
            oldest = earliest_ns(cfg, cfg.book_topic, partition, sources=sources)
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
    records = stream_records(
        cfg, cfg.book_topic, cp.partition, cp.offset, stream, until_ns=at_ns, sources=sources
    )
    for rec in records:
        if isinstance(rec, BookUpdate):
            result = book.apply(rec)
            if result is ApplyResult.GAP:
                raise HistoryError("gap", f"{stream}: a sequence gap before that time")
    return book
