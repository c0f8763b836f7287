"""Client -> server control messages (docs/protocol.md §4.2): parsing and validation, no I/O.

Every malformed input becomes a :class:`ProtocolError` carrying the contract's
error code and the request ``id`` when one could be read, so the server can
answer ``{"type":"error",...}`` and keep the connection open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from core.candles import INTERVALS
from core.types import VALID_DEPTHS, parse_stream_key

CHANNELS = ("book", "trades", "stats", "aggregated_book", "candles", "bbo")
SPEEDS = ("raw", "100ms")
OPS = ("subscribe", "unsubscribe", "resync", "ping", "auth", "replay", "cancel_replay")
MAX_SYMBOLS_PER_REQUEST = 1024


class ProtocolError(Exception):
    """A refused client message: ``code`` is one of the error codes of docs/protocol.md §9.2."""

    def __init__(self, code: str, message: str, req_id: object = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.req_id = req_id


@dataclass(frozen=True, slots=True)
class Request:
    """A parsed control message."""

    op: str
    id: object = None
    channel: str = ""
    symbols: tuple[str, ...] = ()
    depth: int = 20
    speed: str = "raw"
    token: str = ""
    from_ns: int = 0
    to_ns: int | None = None
    """None means "live" (replay joins the live stream)."""
    replay_speed: float = 1.0
    since: dict[str, int] | None = None
    """Resume (docs/protocol.md §4.10): symbol -> the last sequence the client applied."""
    interval: str = ""
    """Candles only: the candle width (one of core.candles.INTERVALS); "" in an
    ``unsubscribe`` means every interval."""


def parse_time(value: object, field: str, req_id: object) -> int:
    """ISO-8601 (``Z`` or offset) or integer nanoseconds -> ns since the epoch."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        try:
            if value.isdigit():
                return int(value)
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as e:
            raise ProtocolError("bad_request", f"{field}: not a time: {value!r}", req_id) from e
        if dt.tzinfo is None:
            raise ProtocolError("bad_request", f"{field}: time needs a zone (Z)", req_id)
        return int(dt.timestamp() * 1_000_000) * 1000
    raise ProtocolError("bad_request", f"{field}: expected ISO-8601 time or ns", req_id)


def _symbols(raw: object, channel: str, req_id: object) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, str) for s in raw):
        raise ProtocolError("bad_request", "symbols must be a non-empty list of strings", req_id)
    if len(raw) > MAX_SYMBOLS_PER_REQUEST:
        raise ProtocolError("bad_request", f"at most {MAX_SYMBOLS_PER_REQUEST} symbols", req_id)
    if channel not in ("aggregated_book", "bbo"):
        for s in raw:
            try:
                parse_stream_key(s)
            except ValueError as e:
                raise ProtocolError("unknown_symbol", f"unknown symbol {s!r}", req_id) from e
    return tuple(dict.fromkeys(raw))


def _since(
    raw: object, channel: str, symbols: tuple[str, ...], req_id: object
) -> dict[str, int] | None:
    """``since``: one sequence (one symbol), or ``{symbol: sequence}`` for several."""
    if raw is None:
        return None
    if channel not in ("book", "aggregated_book"):
        raise ProtocolError("bad_request", "since is for book and aggregated_book", req_id)
    if isinstance(raw, dict):
        since = raw
    elif len(symbols) == 1:
        since = {symbols[0]: raw}
    else:
        raise ProtocolError(
            "bad_request", "since for several symbols is an object {symbol: sequence}", req_id
        )
    for name, seq in since.items():
        if name not in symbols:
            raise ProtocolError("bad_request", f"since names {name[:40]!r}, not subscribed", req_id)
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 1 << 64:
            raise ProtocolError("bad_request", "since must be a sequence number >= 0", req_id)
    return since


def _interval(msg: dict[str, object], op: str, req_id: object) -> str:
    """The ``interval`` of a candles request (docs/protocol.md §4.9); "" for the others."""
    if msg.get("channel") != "candles":
        return ""
    interval = msg.get("interval")
    if interval is None and op == "unsubscribe":
        return ""
    if not isinstance(interval, str) or interval not in INTERVALS:
        raise ProtocolError("bad_request", f"interval must be one of {' '.join(INTERVALS)}", req_id)
    return interval


def parse_request(data: str | bytes) -> Request:
    """Parse one client text frame."""
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise ProtocolError("bad_request", "invalid JSON") from e
    if not isinstance(msg, dict):
        raise ProtocolError("bad_request", "a message must be a JSON object")
    req_id = msg.get("id")
    if req_id is not None and not isinstance(req_id, int | str):
        raise ProtocolError("bad_request", "id must be an integer or a string")
    op = msg.get("op")
    if not isinstance(op, str):
        raise ProtocolError("bad_request", "missing op", req_id)
    if op not in OPS:
        raise ProtocolError("unknown_op", f"unknown op {op[:40]!r}", req_id)
    if op == "ping":
        return Request("ping", req_id)
    if op == "auth":
        token = msg.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("bad_request", "auth needs a token", req_id)
        return Request("auth", req_id, token=token)
    if op == "cancel_replay":
        return Request("cancel_replay", req_id)
    if op == "resync":
        return Request("resync", req_id, "book", _symbols(msg.get("symbols"), "book", req_id))
    channel = msg.get("channel")
    if channel not in CHANNELS:
        raise ProtocolError("unknown_channel", f"unknown channel {str(channel)[:40]!r}", req_id)
    symbols = _symbols(msg.get("symbols"), channel, req_id)
    depth = msg.get("depth", 20)
    if isinstance(depth, bool) or depth not in VALID_DEPTHS:
        raise ProtocolError("bad_request", f"depth must be one of {VALID_DEPTHS}", req_id)
    if op != "replay":
        speed = msg.get("speed", "raw")
        if speed not in SPEEDS:
            raise ProtocolError("bad_request", f"speed must be one of {SPEEDS}", req_id)
        since = _since(msg.get("since"), channel, symbols, req_id) if op == "subscribe" else None
        return Request(
            op,
            req_id,
            channel,
            symbols,
            depth,
            speed,
            interval=_interval(msg, op, req_id),
            since=since,
        )
    if channel not in ("book", "trades"):
        raise ProtocolError("bad_request", "replay supports channels book and trades", req_id)
    from_ns = parse_time(msg.get("from"), "from", req_id)
    to_raw = msg.get("to", "live")
    to_ns = None if to_raw == "live" else parse_time(to_raw, "to", req_id)
    if to_ns is not None and to_ns <= from_ns:
        raise ProtocolError("bad_request", "to must be after from", req_id)
    rspeed = msg.get("speed", 1)
    if isinstance(rspeed, bool) or not isinstance(rspeed, int | float) or not 0 <= rspeed <= 1000:
        raise ProtocolError("bad_request", "replay speed must be a number 0..1000", req_id)
    return Request(
        "replay", req_id, channel, symbols, depth, "raw", "", from_ns, to_ns, float(rspeed)
    )
