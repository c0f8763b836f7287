from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class OrderBookUpdate(_message.Message):
    __slots__ = ("exchange", "symbol", "timestamp_ns", "sequence_number", "bids", "asks", "is_snapshot", "prev_sequence_number", "checksum", "depth", "ingest_ns", "gateway_ns", "is_replay", "replay_id")
    class Exchange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN: _ClassVar[OrderBookUpdate.Exchange]
        BINANCE: _ClassVar[OrderBookUpdate.Exchange]
        COINBASE: _ClassVar[OrderBookUpdate.Exchange]
        KRAKEN: _ClassVar[OrderBookUpdate.Exchange]
    UNKNOWN: OrderBookUpdate.Exchange
    BINANCE: OrderBookUpdate.Exchange
    COINBASE: OrderBookUpdate.Exchange
    KRAKEN: OrderBookUpdate.Exchange
    class VenueQuantity(_message.Message):
        __slots__ = ("exchange", "quantity")
        EXCHANGE_FIELD_NUMBER: _ClassVar[int]
        QUANTITY_FIELD_NUMBER: _ClassVar[int]
        exchange: OrderBookUpdate.Exchange
        quantity: float
        def __init__(self, exchange: _Optional[_Union[OrderBookUpdate.Exchange, str]] = ..., quantity: _Optional[float] = ...) -> None: ...
    class PriceLevel(_message.Message):
        __slots__ = ("price", "quantity", "order_count", "venues")
        PRICE_FIELD_NUMBER: _ClassVar[int]
        QUANTITY_FIELD_NUMBER: _ClassVar[int]
        ORDER_COUNT_FIELD_NUMBER: _ClassVar[int]
        VENUES_FIELD_NUMBER: _ClassVar[int]
        price: float
        quantity: float
        order_count: int
        venues: _containers.RepeatedCompositeFieldContainer[OrderBookUpdate.VenueQuantity]
        def __init__(self, price: _Optional[float] = ..., quantity: _Optional[float] = ..., order_count: _Optional[int] = ..., venues: _Optional[_Iterable[_Union[OrderBookUpdate.VenueQuantity, _Mapping]]] = ...) -> None: ...
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BIDS_FIELD_NUMBER: _ClassVar[int]
    ASKS_FIELD_NUMBER: _ClassVar[int]
    IS_SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    PREV_SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CHECKSUM_FIELD_NUMBER: _ClassVar[int]
    DEPTH_FIELD_NUMBER: _ClassVar[int]
    INGEST_NS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_NS_FIELD_NUMBER: _ClassVar[int]
    IS_REPLAY_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ID_FIELD_NUMBER: _ClassVar[int]
    exchange: OrderBookUpdate.Exchange
    symbol: str
    timestamp_ns: int
    sequence_number: int
    bids: _containers.RepeatedCompositeFieldContainer[OrderBookUpdate.PriceLevel]
    asks: _containers.RepeatedCompositeFieldContainer[OrderBookUpdate.PriceLevel]
    is_snapshot: bool
    prev_sequence_number: int
    checksum: int
    depth: int
    ingest_ns: int
    gateway_ns: int
    is_replay: bool
    replay_id: str
    def __init__(self, exchange: _Optional[_Union[OrderBookUpdate.Exchange, str]] = ..., symbol: _Optional[str] = ..., timestamp_ns: _Optional[int] = ..., sequence_number: _Optional[int] = ..., bids: _Optional[_Iterable[_Union[OrderBookUpdate.PriceLevel, _Mapping]]] = ..., asks: _Optional[_Iterable[_Union[OrderBookUpdate.PriceLevel, _Mapping]]] = ..., is_snapshot: _Optional[bool] = ..., prev_sequence_number: _Optional[int] = ..., checksum: _Optional[int] = ..., depth: _Optional[int] = ..., ingest_ns: _Optional[int] = ..., gateway_ns: _Optional[int] = ..., is_replay: _Optional[bool] = ..., replay_id: _Optional[str] = ...) -> None: ...

class Trade(_message.Message):
    __slots__ = ("exchange", "symbol", "timestamp_ns", "trade_id", "price", "quantity", "side", "sequence_number", "ingest_ns", "gateway_ns", "is_replay", "replay_id")
    class Side(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        UNKNOWN_SIDE: _ClassVar[Trade.Side]
        BUY: _ClassVar[Trade.Side]
        SELL: _ClassVar[Trade.Side]
    UNKNOWN_SIDE: Trade.Side
    BUY: Trade.Side
    SELL: Trade.Side
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    TRADE_ID_FIELD_NUMBER: _ClassVar[int]
    PRICE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    SIDE_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    INGEST_NS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_NS_FIELD_NUMBER: _ClassVar[int]
    IS_REPLAY_FIELD_NUMBER: _ClassVar[int]
    REPLAY_ID_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    symbol: str
    timestamp_ns: int
    trade_id: str
    price: float
    quantity: float
    side: Trade.Side
    sequence_number: int
    ingest_ns: int
    gateway_ns: int
    is_replay: bool
    replay_id: str
    def __init__(self, exchange: _Optional[str] = ..., symbol: _Optional[str] = ..., timestamp_ns: _Optional[int] = ..., trade_id: _Optional[str] = ..., price: _Optional[float] = ..., quantity: _Optional[float] = ..., side: _Optional[_Union[Trade.Side, str]] = ..., sequence_number: _Optional[int] = ..., ingest_ns: _Optional[int] = ..., gateway_ns: _Optional[int] = ..., is_replay: _Optional[bool] = ..., replay_id: _Optional[str] = ...) -> None: ...

class Statistics(_message.Message):
    __slots__ = ("exchange", "symbol", "timestamp_ns", "window_ns", "open", "high", "low", "last", "volume", "quote_volume", "vwap", "trade_count", "best_bid", "best_ask", "spread", "mid")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_NS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    VWAP_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    BEST_BID_FIELD_NUMBER: _ClassVar[int]
    BEST_ASK_FIELD_NUMBER: _ClassVar[int]
    SPREAD_FIELD_NUMBER: _ClassVar[int]
    MID_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    symbol: str
    timestamp_ns: int
    window_ns: int
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
    def __init__(self, exchange: _Optional[str] = ..., symbol: _Optional[str] = ..., timestamp_ns: _Optional[int] = ..., window_ns: _Optional[int] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., last: _Optional[float] = ..., volume: _Optional[float] = ..., quote_volume: _Optional[float] = ..., vwap: _Optional[float] = ..., trade_count: _Optional[int] = ..., best_bid: _Optional[float] = ..., best_ask: _Optional[float] = ..., spread: _Optional[float] = ..., mid: _Optional[float] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("timestamp_ns",)
    TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
    timestamp_ns: int
    def __init__(self, timestamp_ns: _Optional[int] = ...) -> None: ...

class Candle(_message.Message):
    __slots__ = ("exchange", "symbol", "interval", "open_time_ns", "close_time_ns", "open", "high", "low", "close", "volume", "quote_volume", "trade_count", "vwap", "closed")
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    OPEN_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    OPEN_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_FIELD_NUMBER: _ClassVar[int]
    QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    TRADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    VWAP_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    exchange: str
    symbol: str
    interval: str
    open_time_ns: int
    close_time_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trade_count: int
    vwap: float
    closed: bool
    def __init__(self, exchange: _Optional[str] = ..., symbol: _Optional[str] = ..., interval: _Optional[str] = ..., open_time_ns: _Optional[int] = ..., close_time_ns: _Optional[int] = ..., open: _Optional[float] = ..., high: _Optional[float] = ..., low: _Optional[float] = ..., close: _Optional[float] = ..., volume: _Optional[float] = ..., quote_volume: _Optional[float] = ..., trade_count: _Optional[int] = ..., vwap: _Optional[float] = ..., closed: _Optional[bool] = ...) -> None: ...

class MarketDataMessage(_message.Message):
    __slots__ = ("order_book_update", "trade", "statistics", "heartbeat", "candle")
    ORDER_BOOK_UPDATE_FIELD_NUMBER: _ClassVar[int]
    TRADE_FIELD_NUMBER: _ClassVar[int]
    STATISTICS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    CANDLE_FIELD_NUMBER: _ClassVar[int]
    order_book_update: OrderBookUpdate
    trade: Trade
    statistics: Statistics
    heartbeat: Heartbeat
    candle: Candle
    def __init__(self, order_book_update: _Optional[_Union[OrderBookUpdate, _Mapping]] = ..., trade: _Optional[_Union[Trade, _Mapping]] = ..., statistics: _Optional[_Union[Statistics, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., candle: _Optional[_Union[Candle, _Mapping]] = ...) -> None: ...

class MarketDataBatch(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[MarketDataMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[MarketDataMessage, _Mapping]]] = ...) -> None: ...

class StatsCheckpoint(_message.Message):
    __slots__ = ("exchange", "symbol", "window_ns", "bucket_ns", "newest_index", "buckets", "recent_trades", "last_trade_sequence", "trades_partition", "trades_offset", "written_ns")
    class Buckets(_message.Message):
        __slots__ = ("index", "first_ns", "open", "last_ns", "close", "high", "low", "volume", "quote_volume", "count")
        INDEX_FIELD_NUMBER: _ClassVar[int]
        FIRST_NS_FIELD_NUMBER: _ClassVar[int]
        OPEN_FIELD_NUMBER: _ClassVar[int]
        LAST_NS_FIELD_NUMBER: _ClassVar[int]
        CLOSE_FIELD_NUMBER: _ClassVar[int]
        HIGH_FIELD_NUMBER: _ClassVar[int]
        LOW_FIELD_NUMBER: _ClassVar[int]
        VOLUME_FIELD_NUMBER: _ClassVar[int]
        QUOTE_VOLUME_FIELD_NUMBER: _ClassVar[int]
        COUNT_FIELD_NUMBER: _ClassVar[int]
        index: _containers.RepeatedScalarFieldContainer[int]
        first_ns: _containers.RepeatedScalarFieldContainer[int]
        open: _containers.RepeatedScalarFieldContainer[float]
        last_ns: _containers.RepeatedScalarFieldContainer[int]
        close: _containers.RepeatedScalarFieldContainer[float]
        high: _containers.RepeatedScalarFieldContainer[float]
        low: _containers.RepeatedScalarFieldContainer[float]
        volume: _containers.RepeatedScalarFieldContainer[float]
        quote_volume: _containers.RepeatedScalarFieldContainer[float]
        count: _containers.RepeatedScalarFieldContainer[int]
        def __init__(self, index: _Optional[_Iterable[int]] = ..., first_ns: _Optional[_Iterable[int]] = ..., open: _Optional[_Iterable[float]] = ..., last_ns: _Optional[_Iterable[int]] = ..., close: _Optional[_Iterable[float]] = ..., high: _Optional[_Iterable[float]] = ..., low: _Optional[_Iterable[float]] = ..., volume: _Optional[_Iterable[float]] = ..., quote_volume: _Optional[_Iterable[float]] = ..., count: _Optional[_Iterable[int]] = ...) -> None: ...
    class Tape(_message.Message):
        __slots__ = ("timestamp_ns", "trade_id", "price", "quantity", "side", "sequence_number", "ingest_ns")
        TIMESTAMP_NS_FIELD_NUMBER: _ClassVar[int]
        TRADE_ID_FIELD_NUMBER: _ClassVar[int]
        PRICE_FIELD_NUMBER: _ClassVar[int]
        QUANTITY_FIELD_NUMBER: _ClassVar[int]
        SIDE_FIELD_NUMBER: _ClassVar[int]
        SEQUENCE_NUMBER_FIELD_NUMBER: _ClassVar[int]
        INGEST_NS_FIELD_NUMBER: _ClassVar[int]
        timestamp_ns: _containers.RepeatedScalarFieldContainer[int]
        trade_id: _containers.RepeatedScalarFieldContainer[str]
        price: _containers.RepeatedScalarFieldContainer[float]
        quantity: _containers.RepeatedScalarFieldContainer[float]
        side: _containers.RepeatedScalarFieldContainer[Trade.Side]
        sequence_number: _containers.RepeatedScalarFieldContainer[int]
        ingest_ns: _containers.RepeatedScalarFieldContainer[int]
        def __init__(self, timestamp_ns: _Optional[_Iterable[int]] = ..., trade_id: _Optional[_Iterable[str]] = ..., price: _Optional[_Iterable[float]] = ..., quantity: _Optional[_Iterable[float]] = ..., side: _Optional[_Iterable[_Union[Trade.Side, str]]] = ..., sequence_number: _Optional[_Iterable[int]] = ..., ingest_ns: _Optional[_Iterable[int]] = ...) -> None: ...
    EXCHANGE_FIELD_NUMBER: _ClassVar[int]
    SYMBOL_FIELD_NUMBER: _ClassVar[int]
    WINDOW_NS_FIELD_NUMBER: _ClassVar[int]
    BUCKET_NS_FIELD_NUMBER: _ClassVar[int]
    NEWEST_INDEX_FIELD_NUMBER: _ClassVar[int]
    BUCKETS_FIELD_NUMBER: _ClassVar[int]
    RECENT_TRADES_FIELD_NUMBER: _ClassVar[int]
    LAST_TRADE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TRADES_PARTITION_FIELD_NUMBER: _ClassVar[int]
    TRADES_OFFSET_FIELD_NUMBER: _ClassVar[int]
    WRITTEN_NS_FIELD_NUMBER: _ClassVar[int]
    exchange: OrderBookUpdate.Exchange
    symbol: str
    window_ns: int
    bucket_ns: int
    newest_index: int
    buckets: StatsCheckpoint.Buckets
    recent_trades: StatsCheckpoint.Tape
    last_trade_sequence: int
    trades_partition: int
    trades_offset: int
    written_ns: int
    def __init__(self, exchange: _Optional[_Union[OrderBookUpdate.Exchange, str]] = ..., symbol: _Optional[str] = ..., window_ns: _Optional[int] = ..., bucket_ns: _Optional[int] = ..., newest_index: _Optional[int] = ..., buckets: _Optional[_Union[StatsCheckpoint.Buckets, _Mapping]] = ..., recent_trades: _Optional[_Union[StatsCheckpoint.Tape, _Mapping]] = ..., last_trade_sequence: _Optional[int] = ..., trades_partition: _Optional[int] = ..., trades_offset: _Optional[int] = ..., written_ns: _Optional[int] = ...) -> None: ...
