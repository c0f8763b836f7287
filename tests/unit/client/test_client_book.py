"""mdgw_client's book and frame decoding on their own (no server code on the client side)."""

from __future__ import annotations

from mdgw_client import LocalBook, checksum, decode_frame

from core.types import Exchange, Statistics, Trade
from schemas import wire


def test_snapshot_then_update_sets_and_removes_levels() -> None:
    book = LocalBook("BINANCE:BTC-USDT", 0)
    book.load([[100.0, 1.0], [99.0, 2.0]], [[101.0, 0.5]], 7)
    assert book.valid and book.sequence == 7
    book.apply([[100.0, 0.0], [99.5, 3.0]], [[101.0, 0.0], [102.0, 1.0]], 8)
    assert book.top_bids() == [(99.5, 3.0), (99.0, 2.0)]
    assert book.top_asks() == [(102.0, 1.0)]
    assert (book.best_bid(), book.best_ask(), book.sequence) == ((99.5, 3.0), (102.0, 1.0), 8)


def test_removing_an_absent_level_is_harmless() -> None:
    book = LocalBook("s", 0)
    book.load([], [], 1)
    book.apply([[100.0, 0.0]], [[101.0, 0]], 2)
    assert book.top_bids() == [] and book.best_bid() is None and book.best_ask() is None


def test_book_is_cut_to_the_subscribed_depth() -> None:
    book = LocalBook("s", 2)
    book.load([[100.0, 1.0], [99.0, 1.0], [98.0, 1.0]], [[101.0, 1.0], [102.0, 1.0], [103.0, 1]], 1)
    assert book.top_bids() == [(100.0, 1.0), (99.0, 1.0)]
    assert book.top_asks() == [(101.0, 1.0), (102.0, 1.0)]
    book.apply([[100.5, 2.0]], [[100.9, 2.0]], 2)
    assert book.top_bids() == [(100.5, 2.0), (100.0, 1.0)]
    assert book.top_asks() == [(100.9, 2.0), (101.0, 1.0)]
    assert book.top_bids(1) == [(100.5, 2.0)] and book.top_asks(5) == book.top_asks()


def test_aggregated_levels_keep_the_total() -> None:
    book = LocalBook("agg:BTC-USD", 10)
    book.load([[100.0, 1.5, {"COINBASE": 1.0, "KRAKEN": 0.5}]], [[101.0, 0.4, {"KRAKEN": 0.4}]], 3)
    assert book.local_checksum() == checksum([(101.0, 0.4)], [(100.0, 1.5)])


def test_integer_json_numbers_are_levels_too() -> None:
    book = LocalBook("s", 10)
    book.load([[100, 1]], [], 1)
    assert book.top_bids() == [(100.0, 1.0)]
    assert book.local_checksum() == checksum([], [(100.0, 1.0)])


TRADE = Trade(
    exchange=Exchange.KRAKEN,
    symbol="BTC-USD",
    timestamp_ns=5,
    trade_id="t-1",
    price=97000.1,
    quantity=0.01,
    side="buy",
    sequence=9,
    ingest_ns=6,
)


def test_protobuf_and_json_frames_decode_to_the_same_trade() -> None:
    [from_pb] = decode_frame(wire.trade_pb(TRADE, 7), protobuf=True, batch=False)
    [from_json] = decode_frame(wire.trade_json(TRADE, 7), protobuf=False, batch=False)
    assert from_pb == from_json | {"sequence": 9}  # JSON trades may omit the sequence
    assert from_pb["side"] == "buy" and from_pb["gateway_ts"] == 7


def test_batched_frames_and_control_text() -> None:
    frames = [wire.trade_pb(TRADE, 7), wire.heartbeat_pb(11)]
    decoded = decode_frame(wire.batch_pb(frames), protobuf=True, batch=True)
    assert [m["type"] for m in decoded] == ["trade", "heartbeat"]
    assert decoded[1]["timestamp"] == 11
    json_batch = wire.batch_json([wire.trade_json(TRADE, 7), wire.heartbeat_json(11)])
    assert [m["type"] for m in decode_frame(json_batch, protobuf=False, batch=True)] == [
        "trade",
        "heartbeat",
    ]
    # control replies are JSON text even on a protobuf connection
    pong = wire.control("pong", id=3, timestamp=1).decode()
    assert decode_frame(pong, protobuf=True, batch=True) == [
        {"type": "pong", "id": 3, "timestamp": 1}
    ]


def test_statistics_frame() -> None:
    stats = Statistics(exchange="KRAKEN", symbol="BTC-USD", timestamp_ns=1, window_ns=9, last=2.0)
    [d] = decode_frame(wire.stats_pb(stats), protobuf=True, batch=False)
    assert d["type"] == "statistics" and d["last"] == 2.0 and d["symbol"] == "BTC-USD"
