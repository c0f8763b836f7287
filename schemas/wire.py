"""Encoders for what the gateway sends to clients (docs/protocol.md §4.3), JSON and protobuf.

Each data message is encoded once per format and the same bytes go to every
subscriber; batching concatenates already-encoded messages (a JSON array, or a
``MarketDataBatch`` whose repeated field is just the messages framed back to back).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from core.types import BookUpdate, Exchange, Level, Statistics, Trade
from schemas import market_data_pb2 as pb
from schemas.codec import book_header_pb, book_to_pb, stats_to_pb, trade_to_pb

_VENUE = {e.name: int(e) for e in Exchange}


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
