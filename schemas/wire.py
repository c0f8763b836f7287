"""Encoders for what the gateway sends to clients (docs/protocol.md §4.3), JSON and protobuf.

Each data message is encoded once per format and the same bytes go to every
subscriber; batching concatenates already-encoded messages (a JSON array, or a
``MarketDataBatch`` whose repeated field is just the messages framed back to back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from core.bbo import Bbo
from core.candles import Candle
from core.types import BookUpdate, Exchange, Level, Statistics, Trade
from schemas import market_data_pb2 as pb
from schemas.codec import book_header_pb, book_to_pb, stats_to_pb, trade_to_pb

_VENUE = {e.name: int(e) for e in Exchange}
_NAMES = {e: e.name for e in Exchange}


def _book_dict(u: BookUpdate, aggregated: bool, replay: object) -> dict[str, Any]:
    prefix = "aggregated_book" if aggregated else "order_book"
    d: dict[str, Any] = {"type": f"{prefix}_{'snapshot' if u.is_snapshot else 'update'}"}
    if not aggregated:
        d["exchange"] = u.exchange.name
    d["symbol"] = u.symbol
    d["timestamp"] = u.timestamp_ns
    d["sequence"] = u.sequence
    if u.is_snapshot:
        d["depth"] = u.depth
    else:
        d["prev_sequence"] = u.prev_sequence
    if aggregated:
        d["bids"] = _with_venues(u.bids, u.bid_venues)
        d["asks"] = _with_venues(u.asks, u.ask_venues)
    else:
        d["bids"] = u.bids
        d["asks"] = u.asks
    d["checksum"] = u.checksum
    d["ingest_ts"] = u.ingest_ns
    d["gateway_ts"] = u.gateway_ns
    if replay is not None:
        d["replay"] = True
        d["replay_id"] = replay
    return d


def _with_venues(levels: list[Level], venues: list[dict[str, float]] | None) -> list[Any]:
    if venues is None:
        return [(p, q, {}) for p, q in levels]
    return [(p, q, v) for (p, q), v in zip(levels, venues, strict=True)]


def book_json(u: BookUpdate, *, aggregated: bool = False, replay: object = None) -> bytes:
    """A book snapshot or update; aggregated levels are ``[p, total, {venue: q}]``."""
    return orjson.dumps(_book_dict(u, aggregated, replay))


def _agg_levels(levels: Sequence[Level], venue_maps: Sequence[Any] | None, out: Any) -> None:
    maps = venue_maps if venue_maps is not None else [{}] * len(levels)
    for (price, total), venues in zip(levels, maps, strict=True):
        lv = out.add(price=price, quantity=total)
        for name, qty in venues.items():
            lv.venues.add(exchange=_VENUE.get(name, 0), quantity=qty)


def book_pb(u: BookUpdate, *, aggregated: bool = False, replay: object = None) -> bytes:
    if aggregated:
        m = book_header_pb(u)
        m.exchange = pb.OrderBookUpdate.UNKNOWN  # over every venue
        _agg_levels(u.bids, u.bid_venues, m.bids)
        _agg_levels(u.asks, u.ask_venues, m.asks)
    else:
        m = book_to_pb(u)
    if replay is not None:
        m.is_replay = True
        m.replay_id = str(replay)
    return pb.MarketDataMessage(order_book_update=m).SerializeToString()


def bbo_json(b: Bbo) -> bytes:
    """Best bid/offer (docs/protocol.md §4.8): ``bid``/``ask`` are ``[p, q]``, or
    ``[p, q, "VENUE"]`` across venues, or null for an empty side."""
    d: dict[str, Any] = {"type": "bbo"}
    if b.exchange:  # one venue's stream; across venues the venue is in each side
        d["exchange"] = _NAMES[b.exchange]
    d["symbol"] = b.symbol
    d["timestamp"] = b.timestamp_ns
    d["sequence"] = b.sequence
    d["prev_sequence"] = b.prev_sequence
    d["bid"] = b.bid
    d["ask"] = b.ask
    d["ingest_ts"] = b.ingest_ns
    d["gateway_ts"] = b.gateway_ns
    return orjson.dumps(d)


def _bbo_level(quote: Any, out: Any) -> None:
    if quote is None:
        return
    lv = out.add(price=quote[0], quantity=quote[1])
    if len(quote) == 3:
        lv.venues.add(exchange=_VENUE.get(quote[2], 0), quantity=quote[1])


def bbo_pb(b: Bbo) -> bytes:
    """The same content as an ``order_book_update`` of depth 1, always a snapshot; across
    venues ``exchange`` is UNKNOWN and each level names its venue in ``venues``."""
    m = pb.OrderBookUpdate(
        exchange=int(b.exchange),  # type: ignore[arg-type]  # same numbers as the enum
        symbol=b.symbol,
        timestamp_ns=b.timestamp_ns,
        sequence_number=b.sequence,
        is_snapshot=True,
        prev_sequence_number=b.prev_sequence,
        depth=1,
        ingest_ns=b.ingest_ns,
        gateway_ns=b.gateway_ns,
    )
    _bbo_level(b.bid, m.bids)
    _bbo_level(b.ask, m.asks)
    return pb.MarketDataMessage(order_book_update=m).SerializeToString()


def trade_json(t: Trade, gateway_ns: int, *, replay: object = None) -> bytes:
    d: dict[str, Any] = {
        "type": "trade",
        "exchange": t.exchange.name,
        "symbol": t.symbol,
        "timestamp": t.timestamp_ns,
        "trade_id": t.trade_id,
        "price": t.price,
        "quantity": t.quantity,
        "side": t.side,
        "sequence": t.sequence,
        "ingest_ts": t.ingest_ns,
        "gateway_ts": gateway_ns,
    }
    if replay is not None:
        d["replay"] = True
        d["replay_id"] = replay
    return orjson.dumps(d)


def trade_pb(t: Trade, gateway_ns: int, *, replay: object = None) -> bytes:
    m = trade_to_pb(t)
    m.gateway_ns = gateway_ns
    if replay is not None:
        m.is_replay = True
        m.replay_id = str(replay)
    return pb.MarketDataMessage(trade=m).SerializeToString()


def stats_dict(s: Statistics) -> dict[str, Any]:
    return {f: getattr(s, f) for f in Statistics.__slots__}


def stats_json(s: Statistics) -> bytes:
    return orjson.dumps({"type": "statistics", **stats_dict(s)})


def stats_pb(s: Statistics) -> bytes:
    return pb.MarketDataMessage(statistics=stats_to_pb(s)).SerializeToString()


def candle_dict(c: Candle) -> dict[str, Any]:
    """A candle's fields, as the REST route and the channel carry them (JSON numbers)."""
    return {f: getattr(c, f) for f in Candle.__slots__}


def candle_json(c: Candle) -> bytes:
    return orjson.dumps({"type": "candle", **candle_dict(c)})


def candle_pb(c: Candle) -> bytes:
    m = pb.Candle(
        exchange=c.exchange,
        symbol=c.symbol,
        interval=c.interval,
        open_time_ns=c.open_time,
        close_time_ns=c.close_time,
        open=c.open,
        high=c.high,
        low=c.low,
        close=c.close,
        volume=c.volume,
        quote_volume=c.quote_volume,
        trade_count=c.trades,
        vwap=c.vwap,
        closed=c.closed,
    )
    return pb.MarketDataMessage(candle=m).SerializeToString()


def heartbeat_json(now_ns: int) -> bytes:
    return orjson.dumps({"type": "heartbeat", "timestamp": now_ns})


def heartbeat_pb(now_ns: int) -> bytes:
    return pb.MarketDataMessage(heartbeat=pb.Heartbeat(timestamp_ns=now_ns)).SerializeToString()


def control(kind: str, **fields: Any) -> bytes:
    """A control reply (subscribed, error, pong, status, ...): always JSON text."""
    return orjson.dumps({"type": kind, **fields})


def batch_json(frames: Sequence[bytes]) -> bytes:
    """Several encoded JSON messages as one JSON array, in order."""
    return b"[" + b",".join(frames) + b"]"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def batch_pb(frames: Sequence[bytes]) -> bytes:
    """A ``MarketDataBatch``: field 1 (tag 0x0A) framing each encoded message."""
    return b"".join(b"\x0a" + _varint(len(f)) + f for f in frames)
