"""Value types shared by every layer: exchanges, streams, book updates, trades, stats.

Levels are plain ``(price, quantity)`` tuples of floats: cheap to build, compare
and hash, and exactly what the JSON wire shape carries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

Level = tuple[float, float]
"""A price level: (price, quantity). Quantity 0 in a delta removes the level."""


class Exchange(IntEnum):
    """Venues, numbered as in the protobuf enum ``OrderBookUpdate.Exchange``."""

    UNKNOWN = 0
    BINANCE = 1
    COINBASE = 2
    KRAKEN = 3


KNOWN_EXCHANGES: tuple[Exchange, ...] = (Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN)
VALID_DEPTHS: tuple[int, ...] = (10, 20, 50, 100, 500, 1000, 0)
"""Depths a subscriber may ask for; 0 means the full book."""


_NAMES: dict[int, str] = {e.value: e.name for e in Exchange}
"""Enum value -> name: ``Exchange.name`` is a descriptor call, this is a dict lookup
(the stream key is built several times per record on the ingest path)."""


def stream_key(exchange: Exchange, symbol: str) -> str:
    """The stream name ``EXCHANGE:SYMBOL``, also the Kafka record key."""
    return f"{_NAMES[exchange]}:{symbol}"


EXCHANGE_BY_NAME: dict[str, Exchange] = {e.name: e for e in Exchange if e is not Exchange.UNKNOWN}
"""A venue's name -> its enum, UNKNOWN left out (not a venue). Look names up here:
``Exchange.__members__`` builds a mapping per call."""


def parse_stream_key(key: str) -> tuple[Exchange, str]:
    """Split ``EXCHANGE:SYMBOL``; raises ValueError on anything else."""
    name, sep, symbol = key.partition(":")
    exchange = EXCHANGE_BY_NAME.get(name)
    if not sep or not symbol or exchange is None:
        raise ValueError(f"not a stream name (EXCHANGE:SYMBOL): {key!r}")
    return exchange, symbol


@dataclass(slots=True)
class BookUpdate:
    """One order-book record: a delta, or a whole book when ``is_snapshot``."""

    exchange: Exchange
    symbol: str
    timestamp_ns: int
    """Exchange event time."""
    sequence: int
    """Per-stream sequence number, +1 per record."""
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)
    is_snapshot: bool = False
    prev_sequence: int = 0
    checksum: int = 0
    depth: int = 0
    ingest_ns: int = 0
    """When the producer wrote it to Kafka."""
    gateway_ns: int = 0
    bid_venues: list[dict[str, float]] | None = None
    """Aggregated books only: per-venue quantities of each level of ``bids``, same
    order (``{}`` for a removed level); None for a single venue's book."""
    ask_venues: list[dict[str, float]] | None = None
    """Aggregated books only: as ``bid_venues``, for ``asks``."""

    @property
    def stream(self) -> str:
        return stream_key(self.exchange, self.symbol)


@dataclass(slots=True)
class Trade:
    """One trade print."""

    exchange: Exchange
    symbol: str
    timestamp_ns: int
    trade_id: str
    price: float
    quantity: float
    side: str
    """"buy" or "sell" (taker side), "" when the venue does not say."""
    sequence: int = 0
    ingest_ns: int = 0

    @property
    def stream(self) -> str:
        return stream_key(self.exchange, self.symbol)


@dataclass(slots=True)
class Statistics:
    """Rolling-window statistics of one stream (or of a symbol across venues)."""

    exchange: str
    symbol: str
    timestamp_ns: int
    window_ns: int
    open: float = 0.0
    high: float = 0.0
    low: float = 0.0
    last: float = 0.0
    volume: float = 0.0
    quote_volume: float = 0.0
    vwap: float = 0.0
    trade_count: int = 0
    best_bid: float = 0.0
    best_ask: float = 0.0
    spread: float = 0.0
    mid: float = 0.0
