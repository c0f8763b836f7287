"""Frames from the gateway as dicts in the JSON shape of docs/protocol.md §4.3.

Protobuf data frames (``marketdata.v1.protobuf``) are turned into the same dicts a
JSON connection receives, so the rest of the client handles one shape only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from mdgw_client import market_data_pb2 as pb

_EXCHANGES = {1: "BINANCE", 2: "COINBASE", 3: "KRAKEN"}
_SIDES = {1: "buy", 2: "sell", 0: ""}

Message = dict[str, Any]
"""One server message, as parsed JSON."""


def _levels(levels: Iterable[Any]) -> list[list[float]]:
    return [[lv.price, lv.quantity] for lv in levels]


def _book(u: pb.OrderBookUpdate) -> Message:
    agg = u.exchange == 0
    prefix = "aggregated_book" if agg else "order_book"
    d: Message = {
        "type": f"{prefix}_{'snapshot' if u.is_snapshot else 'update'}",
        "symbol": u.symbol,
        "timestamp": u.timestamp_ns,
        "sequence": u.sequence_number,
        "prev_sequence": u.prev_sequence_number,
        "depth": u.depth,
        "bids": _levels(u.bids),
        "asks": _levels(u.asks),
        "checksum": u.checksum,
        "ingest_ts": u.ingest_ns,
        "gateway_ts": u.gateway_ns,
    }
    if not agg:
        d["exchange"] = _EXCHANGES.get(u.exchange, "UNKNOWN")
    if u.is_replay:
        d["replay"] = True
        d["replay_id"] = u.replay_id
    return d


def _quote(levels: Any, agg: bool) -> list[Any] | None:
    if not levels:
        return None
    lv = levels[0]
    if agg:
        venue = _EXCHANGES.get(lv.venues[0].exchange, "UNKNOWN") if lv.venues else ""
        return [lv.price, lv.quantity, venue]
    return [lv.price, lv.quantity]


def _bbo(u: pb.OrderBookUpdate) -> Message:
    """A ``bbo`` (docs/protocol.md §4.8): in protobuf a depth-1 ``order_book_update``."""
    agg = u.exchange == 0
    d: Message = {"type": "bbo"}
    if not agg:
        d["exchange"] = _EXCHANGES.get(u.exchange, "UNKNOWN")
    d.update(
        symbol=u.symbol,
        timestamp=u.timestamp_ns,
        sequence=u.sequence_number,
        prev_sequence=u.prev_sequence_number,
        bid=_quote(u.bids, agg),
        ask=_quote(u.asks, agg),
        ingest_ts=u.ingest_ns,
        gateway_ts=u.gateway_ns,
    )
    return d


def _trade(t: pb.Trade) -> Message:
    d: Message = {
        "type": "trade",
        "exchange": t.exchange,
        "symbol": t.symbol,
        "timestamp": t.timestamp_ns,
        "trade_id": t.trade_id,
        "price": t.price,
        "quantity": t.quantity,
        "side": _SIDES.get(t.side, ""),
        "sequence": t.sequence_number,
        "ingest_ts": t.ingest_ns,
        "gateway_ts": t.gateway_ns,
    }
    if t.is_replay:
        d["replay"] = True
        d["replay_id"] = t.replay_id
    return d


def _candle(c: pb.Candle) -> Message:
    """docs/protocol.md §4.9: the JSON names (``trades``, ``open_time``/``close_time``)."""
    return {
        "type": "candle",
        "exchange": c.exchange,
        "symbol": c.symbol,
        "interval": c.interval,
        "open_time": c.open_time_ns,
        "close_time": c.close_time_ns,
        "open": c.open,
        "high": c.high,
        "low": c.low,
        "close": c.close,
        "volume": c.volume,
        "quote_volume": c.quote_volume,
        "trades": c.trade_count,
        "vwap": c.vwap,
        "closed": c.closed,
    }


def pb_to_dict(msg: pb.MarketDataMessage) -> Message:
    """A protobuf data message in the JSON shape of docs/protocol.md §4.3."""
    kind = msg.WhichOneof("message")
    if kind == "order_book_update":
        u = msg.order_book_update
        return _bbo(u) if u.depth == 1 else _book(u)  # no book view has depth 1
    if kind == "trade":
        return _trade(msg.trade)
    if kind == "statistics":
        s = msg.statistics
        return {"type": "statistics", **{f.name: getattr(s, f.name) for f in s.DESCRIPTOR.fields}}
    if kind == "heartbeat":
        return {"type": "heartbeat", "timestamp": msg.heartbeat.timestamp_ns}
    if kind == "candle":
        return _candle(msg.candle)
    return {"type": "unknown"}


def decode_frame(frame: str | bytes, *, protobuf: bool, batch: bool) -> list[Message]:
    """The messages of one frame: control replies are JSON text even on protobuf
    connections; a batched frame holds several data messages."""
    if isinstance(frame, str) or not protobuf:
        data = orjson.loads(frame)
        return data if isinstance(data, list) else [data]
    if batch:
        return [pb_to_dict(m) for m in pb.MarketDataBatch.FromString(frame).messages]
    return [pb_to_dict(pb.MarketDataMessage.FromString(frame))]
