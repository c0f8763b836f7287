"""BBO encoders (docs/protocol.md §4.8): the JSON shape and its protobuf twin."""

from __future__ import annotations

import orjson

from core.bbo import Bbo
from core.types import Exchange
from schemas import market_data_pb2 as pb
from schemas import wire


def test_stream_bbo_json() -> None:
    b = Bbo(Exchange.BINANCE, "BTC-USDT", 1, 9, 8, (97000.5, 1.2), (97001.0, 0.4), 2, 3)
    assert orjson.loads(wire.bbo_json(b)) == {
        "type": "bbo",
        "exchange": "BINANCE",
        "symbol": "BTC-USDT",
        "timestamp": 1,
        "sequence": 9,
        "prev_sequence": 8,
        "bid": [97000.5, 1.2],
        "ask": [97001.0, 0.4],
        "ingest_ts": 2,
        "gateway_ts": 3,
    }


def test_cross_venue_bbo_json_with_an_empty_side() -> None:
    b = Bbo(Exchange.UNKNOWN, "BTC-USD", 1, 3, 2, (97000.5, 1.2, "COINBASE"), None, 2, 3)
    d = orjson.loads(wire.bbo_json(b))
    assert "exchange" not in d
    assert d["bid"] == [97000.5, 1.2, "COINBASE"] and d["ask"] is None
    assert (d["symbol"], d["sequence"], d["prev_sequence"]) == ("BTC-USD", 3, 2)


def test_bbo_protobuf_is_a_depth_1_snapshot() -> None:
    b = Bbo(Exchange.KRAKEN, "BTC-USD", 1, 9, 8, (10.0, 1.0), (11.0, 2.0), 2, 3)
    m = pb.MarketDataMessage.FromString(wire.bbo_pb(b)).order_book_update
    assert (m.exchange, m.symbol, m.depth, m.is_snapshot) == (3, "BTC-USD", 1, True)
    assert (m.sequence_number, m.prev_sequence_number, m.ingest_ns, m.gateway_ns) == (9, 8, 2, 3)
    assert [(lv.price, lv.quantity) for lv in m.bids] == [(10.0, 1.0)]
    assert [(lv.price, lv.quantity) for lv in m.asks] == [(11.0, 2.0)]
    assert m.checksum == 0 and not m.bids[0].venues


def test_cross_venue_bbo_protobuf_names_the_venue() -> None:
    b = Bbo(Exchange.UNKNOWN, "BTC-USD", 1, 3, 2, (10.0, 1.0, "COINBASE"), None, 2, 3)
    m = pb.MarketDataMessage.FromString(wire.bbo_pb(b)).order_book_update
    assert m.exchange == 0 and not m.asks
    (venue,) = m.bids[0].venues
    assert (venue.exchange, venue.quantity) == (2, 1.0)
