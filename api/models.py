"""Response shapes of the REST API (docs/protocol.md §6) as msgspec Structs.

They are what the OpenAPI document at ``/schema`` describes, with examples, and
what handlers return (Litestar encodes Structs with msgspec). Field names are the
contract's; fields beyond it (``status``, ``sequence`` of aggregated books, ...)
are extensions the contract allows.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

PriceLevel = tuple[float, float]
"""``[price, quantity]``."""
VenueLevel = tuple[float, float, dict[str, float]]
"""``[price, total quantity, {venue: quantity}]``."""

_EXCHANGE = Meta(description="Venue: BINANCE, COINBASE or KRAKEN", examples=["BINANCE"])
_SYMBOL = Meta(description="Canonical symbol BASE-QUOTE", examples=["BTC-USDT"])
_TS = Meta(description="Exchange event time, ns since the epoch", examples=[1764000000000000000])
_STATUS = Meta(description="live, or stale (sequence gap or no snapshot yet)", examples=["live"])


class ErrorBody(msgspec.Struct):
    """Every error answer."""

    error: Annotated[str, Meta(examples=["Symbol not found"])]


class OrderBookBody(msgspec.Struct):
    """One venue's book cut to the requested depth."""

    exchange: Annotated[str, _EXCHANGE]
    symbol: Annotated[str, _SYMBOL]
    timestamp: Annotated[int, _TS]
    sequence: Annotated[int, Meta(description="Sequence of the last record applied")]
    checksum: Annotated[
        int, Meta(description="docs/protocol.md §5 CRC-32 over the top 10 levels of this answer")
    ]
    bids: Annotated[
        list[PriceLevel],
        Meta(description="[price, quantity], best (highest) first", examples=[[[97000.5, 1.2]]]),
    ]
    asks: Annotated[
        list[PriceLevel],
        Meta(description="[price, quantity], best (lowest) first", examples=[[[97001.0, 0.4]]]),
    ]
    status: Annotated[str, _STATUS]


class AggregatedBookBody(msgspec.Struct):
    """One canonical symbol consolidated over venues."""

    symbol: Annotated[str, Meta(examples=["BTC-USD"])]
    timestamp: Annotated[int, _TS]
    exchanges: Annotated[
        list[str], Meta(description="Venues merged in", examples=[["COINBASE", "KRAKEN"]])
    ]
    bids: Annotated[
        list[VenueLevel],
        Meta(
            description="[price, total, {venue: quantity}], best first",
            examples=[[[97000.5, 1.5, {"COINBASE": 1.0, "KRAKEN": 0.5}]]],
        ),
    ]
    asks: Annotated[
        list[VenueLevel],
        Meta(
            description="[price, total, {venue: quantity}], best first",
            examples=[[[97001.0, 0.4, {"KRAKEN": 0.4}]]],
        ),
    ]
    sequence: Annotated[int, Meta(description="The aggregated book's own sequence")]
    checksum: Annotated[int, Meta(description="docs/protocol.md §5 over the totals of this answer")]


class TradeItem(msgspec.Struct):
    """One trade print."""

    exchange: Annotated[str, _EXCHANGE]
    trade_id: Annotated[str, Meta(examples=["t-1"])]
    price: Annotated[float, Meta(examples=[97000.1])]
    quantity: Annotated[float, Meta(examples=[0.01])]
    side: Annotated[str, Meta(description='Taker side: "buy", "sell" or ""', examples=["buy"])]
    timestamp: Annotated[int, _TS]


class TradesBody(msgspec.Struct):
    """The last trades of a stream (or of a symbol over every venue), newest first."""

    symbol: Annotated[str, _SYMBOL]
    trades: list[TradeItem]
    exchange: Annotated[
        str, Meta(description='The venue asked for; "" for every venue', examples=["BINANCE"])
    ]


class StatisticsBody(msgspec.Struct):
    """Rolling-window statistics: the fields of ``Statistics`` (docs/protocol.md §3.2)."""

    exchange: Annotated[str, Meta(description='Venue; "" for the cross-venue view')]
    symbol: Annotated[str, _SYMBOL]
    timestamp_ns: Annotated[int, Meta(description="When the statistics were computed")]
    window_ns: Annotated[int, Meta(examples=[86_400_000_000_000])]
    open: float
    high: float
    low: float
    last: float
    volume: float
    quote_volume: float
    vwap: float
    trade_count: int
    best_bid: float
    best_ask: float
    spread: float
    mid: float


class SymbolItem(msgspec.Struct):
    """One stream."""

    exchange: Annotated[str, _EXCHANGE]
    symbol: Annotated[str, _SYMBOL]
    sequence: int
    timestamp: Annotated[int, _TS]
    status: Annotated[str, _STATUS]


class FeedItem(msgspec.Struct):
    """Health of one stream."""

    stream: Annotated[str, Meta(examples=["BINANCE:BTC-USDT"])]
    exchange: Annotated[str, _EXCHANGE]
    symbol: Annotated[str, _SYMBOL]
    sequence: Annotated[int, Meta(description="Last sequence applied")]
    age_ms: Annotated[
        float | None, Meta(description="Milliseconds since the last book update; null if none")
    ]
    status: Annotated[str, _STATUS]
    stale_reason: Annotated[str, Meta(examples=["sequence gap"])]
    updates: int
    snapshots: int
    gaps: Annotated[int, Meta(description="Sequence gaps seen")]
    checksum_failures: int
    trades: int
    lag: Annotated[
        int | None,
        Meta(
            description="Records behind the high watermark of its book partition; null if unknown"
        ),
    ]


class FeedsBody(msgspec.Struct):
    feeds: list[FeedItem]
    lag_total: Annotated[int, Meta(description="Records behind, all partitions")]


class HealthBody(msgspec.Struct):
    status: Annotated[str, Meta(examples=["healthy"])]


class ReadyBody(msgspec.Struct):
    status: Annotated[str, Meta(examples=["ready"])]
    streams: int
    bootstrap_seconds: Annotated[float | None, Meta(description="Snapshot load time")]


class SystemMetricsBody(msgspec.Struct):
    """Process and pipeline figures of this API process."""

    uptime_s: float
    ready: bool
    streams: int
    stale_streams: int
    symbols: int
    records_consumed: int
    records_applied: int
    dlq: int
    gaps: int
    rereads: int
    dlq_by_reason: dict[str, int]
    lag_total: int
    kafka_connected: bool
    kafka_errors: int
    bootstrap_seconds: float | None
    snapshots_loaded: int
    rss_bytes: int
    cpu_seconds: float
    threads: int


class CandleItem(msgspec.Struct):
    """One OHLCV candle: the trades whose timestamp is in ``[open_time, close_time]``."""

    exchange: Annotated[str, _EXCHANGE]
    symbol: Annotated[str, _SYMBOL]
    interval: Annotated[str, Meta(examples=["1m"])]
    open_time: Annotated[int, Meta(description="First ns of the interval (epoch-aligned)")]
    close_time: Annotated[int, Meta(description="Last ns of the interval")]
    open: float
    high: float
    low: float
    close: float
    volume: Annotated[float, Meta(description="Sum of the trades' quantities")]
    quote_volume: Annotated[float, Meta(description="Sum of price x quantity")]
    trades: Annotated[int, Meta(description="Number of trades")]
    vwap: Annotated[float, Meta(description="quote_volume / volume")]
    closed: Annotated[bool, Meta(description="False for the interval still open")]


class CandlesBody(msgspec.Struct):
    """Candles of one stream, oldest first; intervals without trades are absent."""

    exchange: Annotated[str, _EXCHANGE]
    symbol: Annotated[str, _SYMBOL]
    interval: Annotated[str, Meta(examples=["1m"])]
    candles: list[CandleItem]


_US = Meta(description="Microseconds since the epoch", examples=[1764000000000000])


class TraceSummary(msgspec.Struct):
    """One recent trace (docs/protocol.md §6.3)."""

    trace_id: Annotated[str, Meta(examples=["4bf92f3577b34da6a3ce929d0e0e4736"])]
    start_us: Annotated[int, _US]
    duration_us: int
    spans: int
    services: list[str]
    root: Annotated[str, Meta(examples=["mdgw-producer: send marketdata.book"])]
    complete: Annotated[
        bool,
        Meta(description="The trace's origin is in it: its root span has no parent"),
    ]
    stream: Annotated[str, Meta(description="Kafka key of the record traced, if any")]


class TraceListBody(msgspec.Struct):
    service: Annotated[str, Meta(examples=["mdgw-gateway"])]
    traces: list[TraceSummary]


class TraceSpan(msgspec.Struct):
    """One span of a waterfall."""

    span_id: str
    parent_id: Annotated[str, Meta(description="Parent span in this trace; empty for a root")]
    service: Annotated[str, Meta(examples=["mdgw-gateway"])]
    operation: Annotated[str, Meta(examples=["broadcast"])]
    kind: Annotated[str, Meta(examples=["producer", "consumer", "internal"])]
    start_us: Annotated[int, _US]
    duration_us: int
    attributes: dict[str, str | int | float | bool]


class TraceWaterfallBody(msgspec.Struct):
    """One trace, spans sorted by start (docs/protocol.md §6.3)."""

    trace_id: str
    start_us: Annotated[int, _US]
    duration_us: int
    services: list[str]
    truncated: Annotated[bool, Meta(description="More spans than shown")]
    spans: list[TraceSpan]
