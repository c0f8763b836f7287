"""Core objects -> response bodies (pure; handlers stay a few lines).

The order book answer is the hot path: it is encoded straight to JSON bytes with
orjson from the ladder's own ``(price, quantity)`` tuples, with no intermediate
Struct (measured: see the API report / ``bench``); everything else goes through
the Structs of :mod:`api.models` and Litestar's msgspec encoder.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Collection, Iterable
from itertools import islice

import orjson

from api.models import (
    AggregatedBookBody,
    FeedItem,
    StatisticsBody,
    SymbolItem,
    TradeItem,
    TradesBody,
)
from core.aggregate import AggregatedBook
from core.book import OrderBook
from core.checksum import CHECKSUM_LEVELS, book_checksum
from core.market import FeedCounters, Market
from core.types import Statistics, Trade
from schemas.wire import stats_dict


def status(book: OrderBook) -> str:
    return "stale" if book.stale else "live"


def book_etag(book: OrderBook, depth: int) -> str:
    """Strong ETag of a depth-N answer: same stream, sequence, state and depth, same bytes."""
    return f'"{book.stream}-{book.sequence}-{depth}{"-stale" if book.stale else ""}"'


def book_checksum_at(
    book: OrderBook, bids: list[tuple[float, float]], asks: list[tuple[float, float]], depth: int
) -> int:
    """docs/protocol.md §5 over the answer: the book's cached checksum when the cut keeps 10."""
    if depth >= CHECKSUM_LEVELS:
        return book.checksum()
    return book_checksum(asks, bids)


def orderbook_json(book: OrderBook, depth: int) -> bytes:
    """The §6 order book answer as JSON bytes (``OrderBookBody`` fields, in order)."""
    bids, asks = book.bids(depth), book.asks(depth)
    return orjson.dumps(
        {
            "exchange": book.exchange.name,
            "symbol": book.symbol,
            "timestamp": book.timestamp_ns,
            "sequence": book.sequence,
            "checksum": book_checksum_at(book, bids, asks, depth),
            "bids": bids,
            "asks": asks,
            "status": status(book),
        }
    )


def aggregated(agg: AggregatedBook, depth: int, only: Collection[str] | None) -> AggregatedBookBody:
    """The consolidated book, optionally restricted to some venues (totals re-summed)."""
    bids, asks = agg.levels(depth, only)
    totals_b = [(p, q) for p, q, _ in bids]
    totals_a = [(p, q) for p, q, _ in asks]
    merged = sorted(agg.venues if only is None else agg.venues.intersection(only))
    return AggregatedBookBody(
        symbol=agg.symbol,
        timestamp=agg.timestamp_ns,
        exchanges=merged,
        bids=bids,
        asks=asks,
        sequence=agg.sequence,
        checksum=book_checksum(totals_a, totals_b),
    )


def aggregated_etag(agg: AggregatedBook, depth: int, only: Collection[str] | None) -> str:
    venues = "all" if only is None else ",".join(sorted(only))
    return f'"{agg.symbol}-{agg.sequence}-{depth}-{venues}"'


def trade_item(t: Trade) -> TradeItem:
    return TradeItem(t.exchange.name, t.trade_id, t.price, t.quantity, t.side, t.timestamp_ns)


def trades(market: Market, symbol: str, exchange: str, limit: int) -> TradesBody | None:
    """Newest first; every venue's tape merged by event time when ``exchange`` is empty."""
    if exchange:
        stream = f"{exchange}:{symbol}"
        if market.state(stream) is None:
            return None
        tape: Iterable[Trade] = market.trades(stream, limit)
    else:
        tapes = [market.trades(s, limit) for s in streams_of(market, symbol)]
        if not tapes:
            return None
        tape = islice(heapq.merge(*tapes, key=lambda t: t.timestamp_ns, reverse=True), limit)
    return TradesBody(symbol=symbol, exchange=exchange, trades=[trade_item(t) for t in tape])


def streams_of(market: Market, symbol: str) -> list[str]:
    """Every stream of a canonical symbol, sorted."""
    return [s for s in market.streams() if s.partition(":")[2] == symbol]


def statistics(s: Statistics) -> StatisticsBody:
    return StatisticsBody(**stats_dict(s))


def symbol_item(book: OrderBook) -> SymbolItem:
    return SymbolItem(
        exchange=book.exchange.name,
        symbol=book.symbol,
        sequence=book.sequence,
        timestamp=book.timestamp_ns,
        status=status(book),
    )


def feed_item(book: OrderBook, counters: FeedCounters, lag: int | None, now_ns: int) -> FeedItem:
    last = counters.last_update_ns
    return FeedItem(
        stream=book.stream,
        exchange=book.exchange.name,
        symbol=book.symbol,
        sequence=book.sequence,
        age_ms=round((now_ns - last) / 1e6, 3) if last else None,
        status=status(book),
        stale_reason=book.stale_reason,
        updates=counters.updates,
        snapshots=counters.snapshots,
        gaps=counters.gaps,
        checksum_failures=counters.checksum_failures,
        trades=counters.trades,
        lag=lag,
    )


def now_ns() -> int:
    return time.time_ns()
