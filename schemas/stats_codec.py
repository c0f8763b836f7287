"""``StatsCheckpoint`` records <-> :class:`core.stats.StatsCheckpoint`, validated.

A checkpoint comes from Kafka, so it is checked like any record: a column of the
wrong length, a bucket whose trades fall outside its interval, a non-finite or
negative figure or a bad trade raise :class:`schemas.errors.ValidationError`
(the caller then reads that stream's trades from Kafka instead); bytes that do
not parse raise :class:`schemas.errors.DecodeError`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import cast

from core.stats import Bucket, StatsCheckpoint
from core.types import Exchange, Trade
from schemas import market_data_pb2 as pb
from schemas.codec import _SIDE_CODES, _SIDES, _exchange, _symbol, parse
from schemas.errors import ValidationError

MAX_CHECKPOINT_BYTES = 8 * 1024 * 1024
"""The topic's max.message.bytes; a day of minute buckets and 1,000 trades is ~200 KB."""


@dataclass(frozen=True, slots=True)
class StatsRecord:
    """A decoded checkpoint and where in the trades topic it stands."""

    checkpoint: StatsCheckpoint
    trades_partition: int
    trades_offset: int
    """Every trade of the stream at a lower offset of that partition is in the state."""
    written_ns: int


def encode_stats(
    cp: StatsCheckpoint, trades_partition: int, trades_offset: int, written_ns: int
) -> bytes:
    """Serialize one stream's checkpoint."""
    m = pb.StatsCheckpoint(
        exchange=cast("pb.OrderBookUpdate.Exchange", int(cp.exchange)),
        symbol=cp.symbol,
        window_ns=cp.window_ns,
        bucket_ns=cp.bucket_ns,
        newest_index=cp.newest,
        last_trade_sequence=cp.last_trade_sequence,
        trades_partition=trades_partition,
        trades_offset=trades_offset,
        written_ns=written_ns,
    )
    cols, buckets = m.buckets, [b for _i, b in cp.buckets]
    # whole columns at once: extend() of a list runs in C, an append per value does not
    cols.index.extend([i for i, _b in cp.buckets])
    cols.first_ns.extend([b.first_ns for b in buckets])
    cols.open.extend([b.open for b in buckets])
    cols.last_ns.extend([b.last_ns for b in buckets])
    cols.close.extend([b.close for b in buckets])
    cols.high.extend([b.high for b in buckets])
    cols.low.extend([b.low for b in buckets])
    cols.volume.extend([b.volume for b in buckets])
    cols.quote_volume.extend([b.quote_volume for b in buckets])
    cols.count.extend([b.count for b in buckets])
    tape, trades = m.recent_trades, cp.recent
    tape.timestamp_ns.extend([t.timestamp_ns for t in trades])
    tape.trade_id.extend([t.trade_id for t in trades])
    tape.price.extend([t.price for t in trades])
    tape.quantity.extend([t.quantity for t in trades])
    tape.side.extend([_SIDE_CODES.get(t.side, pb.Trade.UNKNOWN_SIDE) for t in trades])
    tape.sequence_number.extend([t.sequence for t in trades])
    tape.ingest_ns.extend([t.ingest_ns for t in trades])
    return m.SerializeToString()


def decode_stats(data: bytes) -> StatsRecord:
    """Parse and validate one checkpoint record."""
    m = parse(pb.StatsCheckpoint(), data, MAX_CHECKPOINT_BYTES)
    exchange, symbol = _exchange(m.exchange), _symbol(m.symbol)
    if m.window_ns <= 0 or m.bucket_ns <= 0:
        raise ValidationError(f"checkpoint window {m.window_ns} / bucket {m.bucket_ns} ns")
    recent = _tape(m.recent_trades, exchange, symbol)
    cp = StatsCheckpoint(
        exchange=exchange,
        symbol=symbol,
        window_ns=m.window_ns,
        bucket_ns=m.bucket_ns,
        newest=m.newest_index,
        buckets=_buckets(m.buckets, m.bucket_ns),
        recent=recent,
        last_trade_sequence=m.last_trade_sequence,
    )
    return StatsRecord(cp, m.trades_partition, m.trades_offset, m.written_ns)


def _buckets(cols: pb.StatsCheckpoint.Buckets, bucket_ns: int) -> list[tuple[int, Bucket]]:
    n = len(cols.index)
    columns = (
        cols.first_ns,
        cols.open,
        cols.last_ns,
        cols.close,
        cols.high,
        cols.low,
        cols.volume,
        cols.quote_volume,
        cols.count,
    )
    if any(len(c) != n for c in columns):
        raise ValidationError("checkpoint bucket columns of different lengths")
    out: list[tuple[int, Bucket]] = []
    prev = None
    for row in zip(cols.index, *columns, strict=True):
        index, b = row[0], Bucket(*row[1:])
        if prev is not None and index <= prev:
            raise ValidationError("checkpoint buckets not in ascending order")
        _check_bucket(index, b, bucket_ns)
        out.append((index, b))
        prev = index
    return out


def _tape(cols: pb.StatsCheckpoint.Tape, exchange: Exchange, symbol: str) -> list[Trade]:
    columns = (
        cols.timestamp_ns,
        cols.trade_id,
        cols.price,
        cols.quantity,
        cols.side,
        cols.sequence_number,
        cols.ingest_ns,
    )
    if any(len(c) != len(cols.timestamp_ns) for c in columns):
        raise ValidationError("checkpoint tape columns of different lengths")
    out: list[Trade] = []
    for ts, trade_id, price, qty, code, seq, ingest in zip(*columns, strict=True):
        side = _SIDES.get(code)
        if not (math.isfinite(price) and price > 0.0 and math.isfinite(qty) and qty > 0.0):
            raise ValidationError(f"invalid trade price={price!r} quantity={qty!r} in the tape")
        if side is None:
            raise ValidationError(f"unknown trade side {code} in the tape")
        out.append(Trade(exchange, symbol, ts, trade_id, price, qty, side, seq, ingest))
    return out


def _check_bucket(index: int, b: Bucket, bucket_ns: int) -> None:
    start = index * bucket_ns
    prices = (b.open, b.close, b.high, b.low)
    ok = (
        start <= b.first_ns <= b.last_ns < start + bucket_ns
        and all(math.isfinite(p) and p > 0.0 for p in prices)
        and b.low <= min(b.open, b.close)
        and b.high >= max(b.open, b.close)
        and math.isfinite(b.volume)
        and b.volume > 0.0
        and math.isfinite(b.quote_volume)
        and b.quote_volume > 0.0
        and b.count > 0
    )
    if not ok:
        raise ValidationError(f"checkpoint bucket {index} is not a valid candle: {b}")
