"""``GET /api/v1/candles/{symbol}`` (docs/protocol.md §6.2): OHLCV candles of one stream.

Thin: :mod:`api.candles` decides the window and the source (the statistics' buckets
held in memory, else the trades topic); this module parses, answers and tags the
answer with an ``ETag`` of its bytes (``If-None-Match`` gives 304).
"""

from __future__ import annotations

import hashlib
import time
from typing import Annotated, Any

import orjson
from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import Parameter, QueryParameter

from api import candles as source
from api.errors import BadParameter, SymbolNotFound, Unavailable
from api.models import CandlesBody
from api.present import streams_of
from api.routes.market import COMMON as COMMON_ERRORS
from api.routes.market import (
    NOT_MODIFIED,
    Exchange,
    IfNoneMatch,
    Symbol,
    _error,
    _matches,
    _not_modified,
)
from api.state import StateStore
from api.symbols import target
from core.candles import INTERVALS
from core.market import Market
from gateway.protocol import ProtocolError, parse_time
from mdgw.history import HistoryError
from schemas.wire import candle_dict

Interval = Annotated[
    str,
    Parameter(
        description="Candle width; intervals are aligned to the Unix epoch (UTC)",
        schema_extra={"enum": list(INTERVALS)},
    ),
]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="Intervals, 1..1000")]

BAD_REQUEST = _error("Invalid parameter", "interval must be one of 1s 1m 5m 15m 1h 4h 1d")
NOT_FOUND = _error("Unknown stream", "Symbol not found")


def _time(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value, name, None)
    except ProtocolError as e:
        raise BadParameter(detail=e.message) from e


@get(
    "/candles/{symbol:str}",
    summary="OHLCV candles of one stream, oldest first",
    description="Candles of `EXCHANGE:SYMBOL` (or `SYMBOL` with `exchange=`) over at most "
    "`limit` intervals: from `from` on, or the ones ending with the interval holding `to` "
    "(default: now). `from`/`to` are ISO-8601 (`2026-11-25T10:00:00Z`) or ns since the epoch. "
    "Intervals without trades are absent; `closed` is false for the one still open.",
    responses={400: BAD_REQUEST, 404: NOT_FOUND, **COMMON_ERRORS, 304: NOT_MODIFIED},
    media_type=MediaType.JSON,
)
async def candles(
    market: NamedDependency[Market],
    store: NamedDependency[StateStore],
    symbol: Symbol,
    interval: Interval = "1m",
    from_: Annotated[
        str | None,
        QueryParameter(
            name="from",
            required=False,
            max_length=40,
            description="First instant (ISO-8601 or ns)",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Parameter(required=False, max_length=40, description="Last instant (ISO-8601 or ns)"),
    ] = None,
    limit: Limit = 500,
    exchange: Exchange = None,
    if_none_match: IfNoneMatch = None,
) -> Response[CandlesBody]:
    t = target(symbol, exchange)
    if not t.exchange:
        listed_by = [s.partition(":")[0] for s in streams_of(market, t.symbol)]
        if not listed_by:
            raise SymbolNotFound()
        raise BadParameter(
            f"candles are per venue; {t.symbol} is listed by {', '.join(sorted(listed_by))}: "
            "name the venue (EXCHANGE:SYMBOL or ?exchange=)"
        )
    state = market.state(t.stream)
    if state is None:
        raise SymbolNotFound()
    now = time.time_ns()
    try:
        w = source.window(interval, _time(from_, "from"), _time(to, "to"), limit, now)
    except source.CandleRequestError as e:
        raise BadParameter(detail=str(e)) from e
    found = source.from_statistics(state.stats, w, store.trades_complete_from_ns)
    if found is None:
        found = await _from_trades(store, t.stream, w, state.stats.bucket_ns)
    tape = state.trades
    newest = tape[0].timestamp_ns if tape else 0
    clock = newest + max(0, now - state.counters.last_trade_ns) if tape else now
    body = {
        "exchange": t.exchange,
        "symbol": t.symbol,
        "interval": interval,
        "candles": [candle_dict(c) for c in source.present(t.stream, w, found, newest, clock)],
    }
    data = orjson.dumps(body)
    etag = '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'
    if _matches(if_none_match, etag):
        return _not_modified(etag)
    content: Any = data  # bytes; the annotation gives OpenAPI the body's shape
    return Response(content=content, headers={"ETag": etag}, media_type=MediaType.JSON)


async def _from_trades(
    store: StateStore, stream: str, w: source.Window, bucket_ns: int
) -> list[Any]:
    try:
        trades, _read = await store.trades_between(stream, w.from_ns, w.to_ns)
    except HistoryError as e:
        if e.code == "busy":
            raise Unavailable("Too many history reads at once: retry after Retry-After") from e
        if e.code == "unsupported":
            raise BadParameter(detail="that window is older than the statistics held") from e
        raise Unavailable("History temporarily unavailable") from e
    return source.from_trades(trades, w, bucket_ns)


ROUTES = [candles]
