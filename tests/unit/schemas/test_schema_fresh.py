"""The committed generated code matches schemas/market_data.proto; seed numbers never move."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from schemas import market_data_pb2 as pb

ROOT = Path(__file__).resolve().parents[3]


def compiled_descriptor() -> descriptor_pb2.FileDescriptorProto:
    grpc_tools = pytest.importorskip("grpc_tools.protoc", reason="grpcio-tools (dev extra)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        rc = grpc_tools.main(
            ["protoc", f"-I{ROOT / 'schemas'}", f"--descriptor_set_out={out}", "market_data.proto"]
        )
        assert rc == 0
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return _without_json_names(fds.file[0])


def _without_json_names(
    fd: descriptor_pb2.FileDescriptorProto,
) -> descriptor_pb2.FileDescriptorProto:
    """protoc adds json_name to descriptor sets but not to generated code: ignore it."""

    def strip(messages: object) -> None:
        for m in messages:  # type: ignore[attr-defined]
            for f in m.field:
                f.ClearField("json_name")
            strip(m.nested_type)

    strip(fd.message_type)
    return fd


def test_generated_code_is_fresh() -> None:
    committed = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(committed)
    assert compiled_descriptor() == _without_json_names(committed), (
        "run scripts/gen-proto and commit the result"
    )


def _numbers(message: object) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]


def test_seed_field_numbers_are_unchanged() -> None:
    book = _numbers(pb.OrderBookUpdate)
    assert {
        k: book[k]
        for k in ("exchange", "symbol", "timestamp_ns", "sequence_number", "bids", "asks")
    } == {"exchange": 1, "symbol": 2, "timestamp_ns": 3, "sequence_number": 4, "bids": 5, "asks": 6}
    assert {
        k: book[k]
        for k in (
            "is_snapshot",
            "prev_sequence_number",
            "checksum",
            "depth",
            "ingest_ns",
            "gateway_ns",
        )
    } == {
        "is_snapshot": 7,
        "prev_sequence_number": 8,
        "checksum": 9,
        "depth": 10,
        "ingest_ns": 11,
        "gateway_ns": 12,
    }
    assert _numbers(pb.OrderBookUpdate.PriceLevel) == {
        "price": 1,
        "quantity": 2,
        "order_count": 3,
        "venues": 4,
    }
    trade = _numbers(pb.Trade)
    assert {
        k: trade[k]
        for k in (
            "exchange",
            "symbol",
            "timestamp_ns",
            "trade_id",
            "price",
            "quantity",
            "side",
            "sequence_number",
        )
    } == {
        "exchange": 1,
        "symbol": 2,
        "timestamp_ns": 3,
        "trade_id": 4,
        "price": 5,
        "quantity": 6,
        "side": 7,
        "sequence_number": 8,
    }
    assert _numbers(pb.MarketDataMessage) == {
        "order_book_update": 1,
        "trade": 2,
        "statistics": 3,
        "heartbeat": 4,
        "candle": 5,  # an extension: the seed's four keep their numbers
    }
    assert _numbers(pb.MarketDataBatch) == {"messages": 1}
    assert dict(pb.OrderBookUpdate.Exchange.items()) == {
        "UNKNOWN": 0,
        "BINANCE": 1,
        "COINBASE": 2,
        "KRAKEN": 3,
    }
    stats = _numbers(pb.Statistics)
    assert stats["mid"] == 16 and stats["trade_count"] == 12 and stats["window_ns"] == 4
