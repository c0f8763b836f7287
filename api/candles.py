"""``GET /api/v1/candles/{stream}`` (docs/protocol.md §6.2): which candles, and from where.

A request names at most ``limit`` consecutive intervals (:func:`window`). They come
from the cheapest exact source:

* the statistics' minute buckets the service holds for the last 24 h (restored
  from the statistics checkpoints at start, then kept current from the trades
  topic): a day of ``1m`` candles costs no Kafka read at all;
* otherwise (``1s``, or intervals older than those buckets) the stream's trades,
  read from the trades topic over the window only (:func:`read_trades`).

Both fold the same parts in the same order (:mod:`core.candles`), so the figures
are identical to the last bit whichever source answers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from core.candles import (
    CLOSE_GRACE_NS,
    INTERVALS,
    Candle,
    base_ns,
    candle,
    candles_of_parts,
    fold_parts,
)
from core.stats import Bucket, RollingStats
from core.types import Trade
from mdgw.config import KafkaConfig
from mdgw.history import offset_for_time, stream_records
from mdgw.kafka.client import SourceFactory

BUCKET_MARGIN = 2
"""Buckets at the old edge of the statistics window not trusted for candles: a service
that read the trades from ``now - 24 h`` at start may hold the oldest minute partly."""
SKEW_NS = 5_000_000_000
"""How far a trade's timestamp may precede its ingest time (the topic's time index)."""


class CandleRequestError(ValueError):
    """A request that names no valid window; the message is for the client."""


@dataclass(frozen=True, slots=True)
class Window:
    """Intervals ``first..last`` (interval numbers, inclusive) of one width."""

    interval: str
    first: int
    last: int

    @property
    def width(self) -> int:
        return INTERVALS[self.interval]

    @property
    def from_ns(self) -> int:
        return self.first * self.width

    @property
    def to_ns(self) -> int:
        return (self.last + 1) * self.width - 1


def window(
    interval: str, from_ns: int | None, to_ns: int | None, limit: int, now_ns: int
) -> Window:
    """The intervals a request covers: from ``from`` on (at most ``limit`` of them, none
    after ``to``), or the ``limit`` intervals ending with the one holding ``to`` (default:
    now). Raises :class:`CandleRequestError`."""
    width = INTERVALS.get(interval)
    if width is None:
        raise CandleRequestError(f"interval must be one of {' '.join(INTERVALS)}")
    if not 1 <= limit <= 1000:
        raise CandleRequestError("limit must be an integer from 1 to 1000")
    if from_ns is not None and to_ns is not None and from_ns > to_ns:
        raise CandleRequestError("from must not be after to")
    if from_ns is None:
        last = (now_ns if to_ns is None else to_ns) // width
        return Window(interval, max(0, last - limit + 1), last)
    first = from_ns // width
    last = first + limit - 1
    if to_ns is not None:
        last = min(last, to_ns // width)
    return Window(interval, first, last)


def from_statistics(
    stats: RollingStats, w: Window, complete_from_ns: int = 0
) -> list[tuple[int, Bucket]] | None:
    """The window's candles from the statistics' buckets; None when they do not cover it
    (an interval that is not a whole number of buckets, older than the buckets held, or
    starting before ``complete_from_ns``, where this process's trade history begins)."""
    if w.width % stats.bucket_ns or w.from_ns < complete_from_ns:
        return None
    per = w.width // stats.bucket_ns
    lo, hi = w.first * per, (w.last + 1) * per
    if lo < stats.complete_from + BUCKET_MARGIN:
        return None
    parts = [(i, b) for i, b in stats.buckets(copy=False) if lo <= i < hi]
    return candles_of_parts(parts, stats.bucket_ns, w.width)


def from_trades(trades: Iterable[Trade], w: Window, bucket_ns: int) -> list[tuple[int, Bucket]]:
    """The window's candles from its trades (feed order), folded as the statistics fold."""
    part = base_ns(w.width, bucket_ns)
    inside = (t for t in trades if w.from_ns <= t.timestamp_ns <= w.to_ns)
    return candles_of_parts(fold_parts(inside, part).items(), part, w.width)


def present(
    stream: str, w: Window, found: list[tuple[int, Bucket]], newest_ns: int, stream_now_ns: int
) -> list[Candle]:
    """Candles of ``found``, closed as the channel closes them: a later trade came
    (``newest_ns``, the stream's newest trade), or the stream's clock is past the end."""
    exchange, _, symbol = stream.partition(":")
    out = []
    for i, b in found:
        end = (i + 1) * w.width - 1
        closed = newest_ns > end or stream_now_ns > end + CLOSE_GRACE_NS
        out.append(candle(exchange, symbol, w.interval, i, b, closed))
    return out


def read_trades(
    cfg: KafkaConfig,
    stream: str,
    partition: int,
    from_ns: int,
    to_ns: int,
    *,
    sources: SourceFactory | None = None,
) -> tuple[list[Trade], int]:
    """Blocking: the stream's trades with a timestamp in ``[from_ns, to_ns]``, in feed
    order, taken as the live path takes them (valid, repeats by sequence dropped), and
    how many of the stream's records were read. Raises HistoryError on Kafka errors."""
    start = max(0, from_ns - SKEW_NS)
    offset = offset_for_time(cfg, cfg.trades_topic, partition, start, sources=sources)
    if offset is None:
        return [], 0
    records = stream_records(
        cfg, cfg.trades_topic, partition, offset, stream, until_ns=to_ns + SKEW_NS, sources=sources
    )
    out: list[Trade] = []
    read = last_sequence = 0
    for rec in records:
        read += 1
        if not isinstance(rec, Trade) or not (
            0.0 < rec.price < math.inf and 0.0 < rec.quantity < math.inf
        ):
            continue
        if rec.sequence:
            if rec.sequence <= last_sequence:
                continue
            last_sequence = rec.sequence
        if from_ns <= rec.timestamp_ns <= to_ns:
            out.append(rec)
    return out, read
