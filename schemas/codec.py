"""Protobuf <-> core value types, with validation of everything that comes from outside.

Decoding never trusts a record: unknown enum values, empty or malformed symbols,
non-finite or negative numbers raise :class:`schemas.errors.ValidationError`;
bytes that do not parse raise :class:`schemas.errors.DecodeError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar, cast

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from google.protobuf.message import DecodeError as _PbDecodeError
from google.protobuf.message import Message

from core.native import native
from core.types import EXCHANGE_BY_NAME, BookUpdate, Exchange, Level, Statistics, Trade
from schemas import market_data_pb2 as pb
from schemas.errors import DecodeError, ValidationError

MAX_RECORD_BYTES = 4 * 1024 * 1024
"""Largest record we decode; a full 1000-level book is ~40 KB, so 4 MiB is generous."""

SYMBOL_RE = re.compile(r"[A-Z0-9]{1,16}-[A-Z0-9]{1,16}\Z")
"""Also the cap on a symbol's length (33): streams are dict keys and label values.
Anchored at the very end of the string: ``$`` would also accept a trailing newline."""
MAX_TRADE_ID = 64
"""Longest trade id kept (venues use <= 20 characters); longer ones are refused."""
_SIDES = {pb.Trade.BUY: "buy", pb.Trade.SELL: "sell", pb.Trade.UNKNOWN_SIDE: ""}
_SIDE_CODES = {"buy": pb.Trade.BUY, "sell": pb.Trade.SELL, "": pb.Trade.UNKNOWN_SIDE}
_PB_EXCHANGES = {e: cast("pb.OrderBookUpdate.Exchange", int(e)) for e in Exchange}
"""Core enum -> protobuf enum: the same numbers (the stubs type ``Value()`` as int)."""


@dataclass(slots=True, frozen=True)
class Heartbeat:
    """A keep-alive carrying the sender's clock."""

    timestamp_ns: int


Decoded = BookUpdate | Trade | Statistics | Heartbeat


def _levels(
    levels: list[Level], out: RepeatedCompositeFieldContainer[pb.OrderBookUpdate.PriceLevel]
) -> None:
    add = out.add
    for price, qty in levels:
        add(price=price, quantity=qty)


def book_header_pb(u: BookUpdate) -> pb.OrderBookUpdate:
    """A book update's protobuf form without its levels (the caller adds them)."""
    return pb.OrderBookUpdate(
        exchange=_PB_EXCHANGES[u.exchange],
        symbol=u.symbol,
        timestamp_ns=u.timestamp_ns,
        sequence_number=u.sequence,
        is_snapshot=u.is_snapshot,
        prev_sequence_number=u.prev_sequence,
        checksum=u.checksum,
        depth=u.depth,
        ingest_ns=u.ingest_ns,
        gateway_ns=u.gateway_ns,
    )


def book_to_pb(u: BookUpdate) -> pb.OrderBookUpdate:
    """The protobuf form of a book update (bids/asks as PriceLevel)."""
    m = book_header_pb(u)
    _levels(u.bids, m.bids)
    _levels(u.asks, m.asks)
    return m


def trade_to_pb(t: Trade) -> pb.Trade:
    return pb.Trade(
        exchange=t.exchange.name,
        symbol=t.symbol,
        timestamp_ns=t.timestamp_ns,
        trade_id=t.trade_id,
        price=t.price,
        quantity=t.quantity,
        side=_SIDE_CODES.get(t.side, pb.Trade.UNKNOWN_SIDE),
        sequence_number=t.sequence,
        ingest_ns=t.ingest_ns,
    )


def stats_to_pb(s: Statistics) -> pb.Statistics:
    return pb.Statistics(**{f: getattr(s, f) for f in Statistics.__slots__})


def encode(msg: Decoded) -> bytes:
    """Serialize one value as a ``MarketDataMessage``."""
    if isinstance(msg, BookUpdate):
        return pb.MarketDataMessage(order_book_update=book_to_pb(msg)).SerializeToString()
    if isinstance(msg, Trade):
        return pb.MarketDataMessage(trade=trade_to_pb(msg)).SerializeToString()
    if isinstance(msg, Statistics):
        return pb.MarketDataMessage(statistics=stats_to_pb(msg)).SerializeToString()
    if isinstance(msg, Heartbeat):
        hb = pb.Heartbeat(timestamp_ns=msg.timestamp_ns)
        return pb.MarketDataMessage(heartbeat=hb).SerializeToString()
    raise TypeError(f"cannot encode {type(msg).__name__}")


M = TypeVar("M", bound=Message)


def parse(msg: M, data: bytes, limit: int) -> M:
    """``data`` parsed into ``msg``; refused past ``limit`` bytes or when it does not parse."""
    name = type(msg).__name__
    if len(data) > limit:
        raise ValidationError(f"{name} of {len(data)} bytes exceeds {limit}")
    try:
        msg.ParseFromString(data)
    except (_PbDecodeError, RuntimeError, ValueError) as e:
        raise DecodeError(f"not a {name}: {e}") from e
    return msg


def decode(data: bytes) -> Decoded:
    """Parse and validate one ``MarketDataMessage``."""
    if _native_book is not None:
        fields = _native_book(data)
        if fields is not None:  # a plain book record, checked as below would
            return BookUpdate(_EXCHANGES[fields[0]], *fields[1:])
    return python_decode(data)


def python_decode(data: bytes) -> Decoded:
    """``decode`` in Python: the reference the compiled twin (``core.native``) is tested
    against, and the path for everything the twin leaves to it."""
    msg = parse(pb.MarketDataMessage(), data, MAX_RECORD_BYTES)
    kind = msg.WhichOneof("message")
    if kind == "order_book_update":
        return book_from_pb(msg.order_book_update)
    if kind == "trade":
        return trade_from_pb(msg.trade)
    if kind == "statistics":
        return _stats_from_pb(msg.statistics)
    if kind == "heartbeat":
        return Heartbeat(msg.heartbeat.timestamp_ns)
    if kind == "candle":  # gateway -> client only, never a Kafka record
        raise ValidationError("a candle is not a record of the market-data topics")
    raise DecodeError("MarketDataMessage with no message set")


_EXCHANGES = {e.value: e for e in Exchange if e is not Exchange.UNKNOWN}
_native_book = None if native is None else native.decode_book


def _exchange(value: int) -> Exchange:
    exchange = _EXCHANGES.get(value)  # a dict lookup: Exchange(value) is a slow enum call
    if exchange is None:
        raise ValidationError(f"unknown exchange enum value {value}")
    return exchange


def _symbol(symbol: str) -> str:
    if not SYMBOL_RE.match(symbol):
        raise ValidationError(f"bad symbol {symbol!r} (want BASE-QUOTE, upper case)")
    return symbol


def _pb_levels(levels: Iterable[pb.OrderBookUpdate.PriceLevel], side: str) -> list[Level]:
    out: list[Level] = []
    for lv in levels:
        p, q = lv.price, lv.quantity
        if not (math.isfinite(p) and p > 0.0 and math.isfinite(q) and q >= 0.0):
            raise ValidationError(f"invalid {side} level price={p!r} quantity={q!r}")
        out.append((p, q))
    return out


def book_from_pb(m: pb.OrderBookUpdate) -> BookUpdate:
    return BookUpdate(
        exchange=_exchange(m.exchange),
        symbol=_symbol(m.symbol),
        timestamp_ns=m.timestamp_ns,
        sequence=m.sequence_number,
        bids=_pb_levels(m.bids, "bid"),
        asks=_pb_levels(m.asks, "ask"),
        is_snapshot=m.is_snapshot,
        prev_sequence=m.prev_sequence_number,
        checksum=m.checksum,
        depth=m.depth,
        ingest_ns=m.ingest_ns,
        gateway_ns=m.gateway_ns,
    )


def trade_from_pb(m: pb.Trade) -> Trade:
    exchange = EXCHANGE_BY_NAME.get(m.exchange)
    if exchange is None:
        raise ValidationError(f"unknown exchange {m.exchange!r}")
    if not (math.isfinite(m.price) and m.price > 0 and math.isfinite(m.quantity)):
        raise ValidationError(f"invalid trade price={m.price!r} quantity={m.quantity!r}")
    if m.quantity <= 0:
        raise ValidationError(f"invalid trade quantity {m.quantity!r}")
    side = _SIDES.get(m.side)
    if side is None:
        raise ValidationError(f"unknown trade side {m.side}")
    if len(m.trade_id) > MAX_TRADE_ID:
        raise ValidationError(f"trade_id of {len(m.trade_id)} characters (max {MAX_TRADE_ID})")
    return Trade(
        exchange=exchange,
        symbol=_symbol(m.symbol),
        timestamp_ns=m.timestamp_ns,
        trade_id=m.trade_id,
        price=m.price,
        quantity=m.quantity,
        side=side,
        sequence=m.sequence_number,
        ingest_ns=m.ingest_ns,
    )


def _stats_from_pb(m: pb.Statistics) -> Statistics:
    return Statistics(**{f: getattr(m, f) for f in Statistics.__slots__})
