"""Codec: protobuf <-> core types round trips, JSON wire shapes, and refusal of bad input."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.types import BookUpdate, Exchange, Statistics, Trade
from schemas import codec, wire
from schemas import market_data_pb2 as pb
from schemas.errors import DecodeError, SchemaError, ValidationError

prices = st.floats(min_value=1e-8, max_value=1e9, allow_nan=False, allow_infinity=False)
qtys = st.floats(min_value=0.0, max_value=1e9, allow_nan=False, allow_infinity=False)
levels = st.lists(st.tuples(prices, qtys), max_size=20)


@given(levels, levels, st.booleans(), st.integers(0, 2**63), st.sampled_from(list(Exchange)[1:]))
def test_book_round_trip(bids, asks, snap, seq, exchange) -> None:
    u = BookUpdate(exchange, "BTC-USD", 123, seq, bids, asks, snap, max(0, seq - 1), 77, 20, 5, 6)
    assert codec.decode(codec.encode(u)) == u


def test_trade_stats_heartbeat_round_trip() -> None:
    t = Trade(Exchange.KRAKEN, "ETH-USD", 1, "t-1", 3500.5, 0.25, "sell", 9, 11)
    assert codec.decode(codec.encode(t)) == t
    s = Statistics(
        "BINANCE", "BTC-USDT", 1, 86_400 * 10**9, 1, 2, 0.5, 1.5, 10, 15, 1.5, 3, 1.4, 1.6, 0.2, 1.5
    )
    assert codec.decode(codec.encode(s)) == s
    assert codec.decode(codec.encode(codec.Heartbeat(42))) == codec.Heartbeat(42)


def _book_bytes(**fields) -> bytes:
    base = {"exchange": 1, "symbol": "BTC-USDT", "sequence_number": 1}
    base.update(fields)
    levels_ = base.pop("bids", [])
    m = pb.OrderBookUpdate(**base)
    for p, q in levels_:
        m.bids.add(price=p, quantity=q)
    return pb.MarketDataMessage(order_book_update=m).SerializeToString()


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\xff\xff\xff\xff", DecodeError),
        (b"", DecodeError),
        (_book_bytes(exchange=9), ValidationError),
        (_book_bytes(exchange=0), ValidationError),
        (_book_bytes(symbol=""), ValidationError),
        (_book_bytes(symbol="btc-usdt"), ValidationError),
        (_book_bytes(symbol="BTCUSDT"), ValidationError),
        (_book_bytes(bids=[(math.nan, 1.0)]), ValidationError),
        (_book_bytes(bids=[(100.0, -1.0)]), ValidationError),
        (_book_bytes(bids=[(math.inf, 1.0)]), ValidationError),
        (_book_bytes(bids=[(0.0, 1.0)]), ValidationError),
        (
            pb.MarketDataMessage(
                trade=pb.Trade(exchange="NYSE", symbol="BTC-USD", price=1, quantity=1)
            ).SerializeToString(),
            ValidationError,
        ),
        (
            pb.MarketDataMessage(
                trade=pb.Trade(exchange="KRAKEN", symbol="BTC-USD", price=1, quantity=0)
            ).SerializeToString(),
            ValidationError,
        ),
        (b"\x0a" + b"\x80" * 5000, DecodeError),
    ],
)
def test_bad_records_raise_typed_errors(data: bytes, error: type[SchemaError]) -> None:
    with pytest.raises(error):
        codec.decode(data)


def test_oversize_record_is_refused_before_parsing() -> None:
    with pytest.raises(ValidationError, match="exceeds"):
        codec.decode(b"\x00" * (codec.MAX_RECORD_BYTES + 1))


def test_json_shapes_of_the_contract() -> None:
    u = BookUpdate(
        Exchange.BINANCE, "BTC-USDT", 1, 42, [(97000.5, 0.0)], [], False, 41, 9, 10, 3, 4
    )
    d = orjson.loads(wire.book_json(u))
    assert d == {
        "type": "order_book_update",
        "exchange": "BINANCE",
        "symbol": "BTC-USDT",
        "timestamp": 1,
        "sequence": 42,
        "prev_sequence": 41,
        "bids": [[97000.5, 0.0]],
        "asks": [],
        "checksum": 9,
        "ingest_ts": 3,
        "gateway_ts": 4,
    }
    u.is_snapshot = True
    d = orjson.loads(wire.book_json(u))
    assert d["type"] == "order_book_snapshot" and d["depth"] == 10 and "prev_sequence" not in d
    agg = BookUpdate(
        Exchange.UNKNOWN,
        "BTC-USD",
        1,
        7,
        [(1.0, 1.5)],
        [],
        True,
        0,
        5,
        20,
        bid_venues=[{"COINBASE": 1.0, "KRAKEN": 0.5}],
        ask_venues=[],
    )
    d = orjson.loads(wire.book_json(agg, aggregated=True))
    assert d["type"] == "aggregated_book_snapshot" and "exchange" not in d
    assert d["bids"] == [[1.0, 1.5, {"COINBASE": 1.0, "KRAKEN": 0.5}]]
    m = pb.MarketDataMessage.FromString(wire.book_pb(agg, aggregated=True))
    lv = m.order_book_update.bids[0]
    assert m.order_book_update.exchange == 0
    assert [(v.exchange, v.quantity) for v in lv.venues] == [(2, 1.0), (3, 0.5)]
    t = Trade(Exchange.KRAKEN, "BTC-USD", 2, "t-1", 97000.1, 0.01, "buy", 5, 1)
    assert orjson.loads(wire.trade_json(t, 9)) == {
        "type": "trade",
        "exchange": "KRAKEN",
        "symbol": "BTC-USD",
        "timestamp": 2,
        "trade_id": "t-1",
        "price": 97000.1,
        "quantity": 0.01,
        "side": "buy",
        "sequence": 5,
        "ingest_ts": 1,
        "gateway_ts": 9,
    }
    assert orjson.loads(wire.control("pong", id=6, timestamp=1)) == {
        "type": "pong",
        "id": 6,
        "timestamp": 1,
    }


@given(st.lists(st.binary(max_size=200), max_size=20))
def test_protobuf_batch_framing_round_trips(payloads: list[bytes]) -> None:
    frames = [
        pb.MarketDataMessage(heartbeat=pb.Heartbeat(timestamp_ns=len(p))).SerializeToString()
        for p in payloads
    ]
    batch = pb.MarketDataBatch.FromString(wire.batch_pb(frames))
    assert [m.SerializeToString() for m in batch.messages] == frames
    assert orjson.loads(wire.batch_json([b'{"a":1}', b'{"b":2}'])) == [{"a": 1}, {"b": 2}]
