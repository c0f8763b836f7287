"""Market-data routes of docs/protocol.md §6: order books, aggregated books, trades, stats, symbols.

Thin handlers: parse names (:mod:`api.symbols`), read the Market (injected, and only
once it is loaded: see :func:`api.routes.deps.provide_market`), shape the answer
(:mod:`api.present`). Every answer carries ``Cache-Control: no-cache`` (set on the
router) and the book routes an ``ETag``, so a poller revalidates with
``If-None-Match`` and gets a body-less 304 while the book has not moved.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from litestar import MediaType, Response, get
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import Example
from litestar.params import HeaderParameter, Parameter, PathParameter

from api import present
from api.errors import BadParameter, SymbolNotFound, Unavailable
from api.models import (
    AggregatedBookBody,
    ErrorBody,
    OrderBookBody,
    StatisticsBody,
    SymbolItem,
    TradesBody,
)
from api.state import StateStore
from api.symbols import VENUE_LIST_PATTERN, VENUES, one_venue, target, venues
from core.book import OrderBook
from core.market import Market
from gateway.protocol import ProtocolError, parse_time
from mdgw.history import HistoryError

Symbol = Annotated[
    str,
    PathParameter(description="EXCHANGE:SYMBOL (e.g. BINANCE:BTC-USDT), or SYMBOL (e.g. BTC-USD)"),
]
Depth = Annotated[int, Parameter(ge=1, le=1000, description="Levels per side, 1..1000")]
Limit = Annotated[int, Parameter(ge=1, le=1000, description="Trades, 1..1000")]
Exchange = Annotated[
    str | None,
    Parameter(
        description="Venue when {symbol} has no EXCHANGE: prefix (case-insensitive)",
        required=False,
        schema_extra={"enum": list(VENUES)},
    ),
]
Exchanges = Annotated[
    str | None,
    Parameter(
        description="Comma-separated venues to merge (default: every venue listing the symbol)",
        required=False,
        schema_extra={"pattern": VENUE_LIST_PATTERN},
    ),
]
IfNoneMatch = Annotated[
    str | None,
    HeaderParameter(name="If-None-Match", description="ETag of an earlier answer", required=False),
]


def _error(description: str, message: str) -> ResponseSpec:
    return ResponseSpec(
        ErrorBody,
        description=description,
        generate_examples=False,
        examples=[Example(summary=description, value={"error": message})],
    )


BAD_REQUEST = _error("Invalid parameter", "depth must be an integer from 1 to 1000")
UNAUTHORIZED = _error("Missing or invalid X-API-Key", "Missing API key")
NOT_FOUND = _error("Unknown symbol", "Symbol not found")
RATE_LIMITED = _error("Rate limit exceeded (see Retry-After)", "Too many requests")
NOT_READY = _error("Books not loaded yet or Kafka unreachable", "Not ready")
COMMON: dict[int, ResponseSpec] = {401: UNAUTHORIZED, 429: RATE_LIMITED, 503: NOT_READY}
LOOKUP: dict[int, ResponseSpec] = {400: BAD_REQUEST, 404: NOT_FOUND, **COMMON}
NOT_MODIFIED = ResponseSpec(None, description="Not modified since the ETag sent")
ETAG = [
    ResponseHeader(
        name="ETag",
        description="Changes with the book's sequence; send it back in If-None-Match",
        documentation_only=True,
    )
]


At = Annotated[
    str | None,
    Parameter(
        description="Time travel: the book as it was at this instant (millisecond "
        "resolution), ISO-8601 (`2026-11-25T10:00:00Z`) or integer nanoseconds since the epoch",
        required=False,
        max_length=40,
    ),
]


async def _book_at(store: StateStore, stream: str, at: str) -> OrderBook:
    try:
        at_ns = parse_time(at, "at", None)
    except ProtocolError as e:
        raise BadParameter(detail=e.message) from e
    if at_ns > time.time_ns():
        raise BadParameter(detail="at must not be in the future")
    try:
        return await store.book_at(stream, at_ns)
    except HistoryError as e:
        if e.code == "unknown_symbol":
            raise SymbolNotFound() from e
        if e.code == "kafka":  # the details are in the log (mdgw.history)
            raise Unavailable("History temporarily unavailable") from e
        if e.code == "busy":
            raise Unavailable("Too many history reads at once: retry after Retry-After") from e
        raise BadParameter(detail=str(e)) from e


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _not_modified(etag: str) -> Response[Any]:
    return Response(content=b"", status_code=304, headers={"ETag": etag})


@get(
    "/orderbook/{symbol:str}",
    summary="Order book of one venue",
    description="Book of `EXCHANGE:SYMBOL` (or `SYMBOL` with `exchange=`) cut to `depth` "
    "levels per side. `checksum` is docs/protocol.md §5 over the levels of this answer.",
    responses={**LOOKUP, 304: NOT_MODIFIED},
    response_headers=ETAG,
    media_type=MediaType.JSON,
)
async def orderbook(
    market: NamedDependency[Market],
    store: NamedDependency[StateStore],
    symbol: Symbol,
    depth: Depth = 20,
    exchange: Exchange = None,
    if_none_match: IfNoneMatch = None,
    at: At = None,
) -> Response[OrderBookBody]:
    t = target(symbol, exchange)
    if not t.exchange:
        t = one_venue(t, [s.partition(":")[0] for s in present.streams_of(market, t.symbol)])
    book = market.book(t.stream)
    if book is None:
        raise SymbolNotFound()
    if at is not None:
        book = await _book_at(store, t.stream, at)
    etag = present.book_etag(book, depth)
    if _matches(if_none_match, etag):
        return _not_modified(etag)
    # Encoded once, straight to bytes (the hot route); the return annotation still
    # gives OpenAPI the shape of the body.
    body: Any = present.orderbook_json(book, depth)
    return Response(
        content=body,
        headers={"ETag": etag},
        media_type=MediaType.JSON,
    )


@get(
    "/orderbook/aggregated/{symbol:str}",
    summary="Order book of one symbol over every venue",
    description="Levels are `[price, total, {venue: quantity}]`; `exchanges=A,B` merges only "
    "those venues (totals re-summed). Only live venue books are merged.",
    responses={**LOOKUP, 304: NOT_MODIFIED},
    response_headers=ETAG,
)
async def aggregated_orderbook(
    market: NamedDependency[Market],
    symbol: Symbol,
    depth: Depth = 20,
    exchanges: Exchanges = None,
    if_none_match: IfNoneMatch = None,
) -> Response[AggregatedBookBody]:
    only = venues(exchanges)
    t = target(symbol, None)
    agg = None if t.exchange else market.aggregated(t.symbol)  # one venue is no aggregate
    if agg is None:
        raise SymbolNotFound()
    etag = present.aggregated_etag(agg, depth, only)
    if _matches(if_none_match, etag):
        return _not_modified(etag)
    return Response(present.aggregated(agg, depth, only), headers={"ETag": etag})


@get(
    "/trades/{symbol:str}",
    summary="Last trades, newest first",
    description="`EXCHANGE:SYMBOL` (or `SYMBOL` with `exchange=`) for one venue's tape; "
    "`SYMBOL` alone merges every venue's tape by event time.",
    responses=LOOKUP,
)
async def trades(
    market: NamedDependency[Market], symbol: Symbol, limit: Limit = 100, exchange: Exchange = None
) -> TradesBody:
    t = target(symbol, exchange)
    body = present.trades(market, t.symbol, t.exchange, limit)
    if body is None:
        raise SymbolNotFound()
    return body


@get(
    "/stats/{symbol:str}",
    summary="Rolling 24 h statistics",
    description="One venue's (`EXCHANGE:SYMBOL` or `exchange=`), or the symbol's over every "
    'venue (`SYMBOL` alone; `exchange` is then "").',
    responses=LOOKUP,
)
async def stats(
    market: NamedDependency[Market], symbol: Symbol, exchange: Exchange = None
) -> StatisticsBody:
    t = target(symbol, exchange)
    now = present.now_ns()
    s = market.stats(t.stream, now) if t.exchange else market.symbol_stats(t.symbol, now)
    if s is None:
        raise SymbolNotFound()
    return present.statistics(s)


@get("/symbols", summary="Every stream and its state", responses=COMMON)
async def symbols(market: NamedDependency[Market]) -> list[SymbolItem]:
    books = (market.book(s) for s in market.streams())
    return [present.symbol_item(b) for b in books if b is not None]


ROUTES = [orderbook, aggregated_orderbook, trades, stats, symbols]
