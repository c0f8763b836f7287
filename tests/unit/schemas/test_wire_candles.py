"""Candle messages on the wire: the JSON shape of docs/protocol.md §4.9 and its protobuf twin."""

from __future__ import annotations

import orjson
import pytest

from core.candles import Candle
from schemas import codec, wire
from schemas import market_data_pb2 as pb
from schemas.errors import ValidationError

C = Candle(
    "KRAKEN",
    "BTC-USD",
    "1m",
    1764000000000000000,
    1764000059999999999,
    97000.1,
    97010.0,
    96990.0,
    97005.5,
    1.25,
    121256.9,
    42,
    97005.52,
    False,
)


def test_candle_json_is_the_documented_shape() -> None:
    assert orjson.loads(wire.candle_json(C)) == {
        "type": "candle",
        "exchange": "KRAKEN",
        "symbol": "BTC-USD",
        "interval": "1m",
        "open_time": 1764000000000000000,
        "close_time": 1764000059999999999,
        "open": 97000.1,
        "high": 97010.0,
        "low": 96990.0,
        "close": 97005.5,
        "volume": 1.25,
        "quote_volume": 121256.9,
        "trades": 42,
        "vwap": 97005.52,
        "closed": False,
    }


def test_candle_protobuf_carries_the_same_content() -> None:
    m = pb.MarketDataMessage.FromString(wire.candle_pb(C))
    assert m.WhichOneof("message") == "candle"
    c = m.candle
    got = (c.exchange, c.symbol, c.interval, c.open_time_ns, c.close_time_ns)
    assert got == ("KRAKEN", "BTC-USD", "1m", C.open_time, C.close_time)
    assert (c.open, c.high, c.low, c.close) == (C.open, C.high, C.low, C.close)
    assert (c.volume, c.quote_volume, c.trade_count, c.vwap) == (1.25, 121256.9, 42, 97005.52)
    assert c.closed is False


def test_a_candle_is_not_a_kafka_record() -> None:
    with pytest.raises(ValidationError):
        codec.decode(wire.candle_pb(C))
