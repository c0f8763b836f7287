"""bench.kafka_floor: a record's hop, and records it cannot time (counted, never fatal)."""

from __future__ import annotations

import dataclasses

import pytest

from bench.kafka_floor import hop_ms
from core.types import BookUpdate, Exchange, Trade
from schemas import codec


def book(ingest_ns: int) -> bytes:
    u = BookUpdate(Exchange.KRAKEN, "BTC-USD", 123, 7, [(1.0, 2.0)], [], False, 6, 77, 20, 5, 6)
    return codec.encode(dataclasses.replace(u, ingest_ns=ingest_ns))


def test_the_hop_is_now_minus_the_producers_stamp_in_ms() -> None:
    assert hop_ms(book(1_000_000_000), 1_002_500_000) == pytest.approx(2.5)


@pytest.mark.parametrize(
    "value",
    [None, b"", b"\xff\x00 not protobuf", b"\x00" * 40],
    ids=["tombstone", "empty", "garbage", "zeros"],
)
def test_a_record_it_cannot_decode_is_no_sample(value: bytes | None) -> None:
    assert hop_ms(value, 10**18) is None


def test_a_message_without_a_stamp_is_no_sample() -> None:
    assert hop_ms(book(0), 10**18) is None
    trade = Trade(Exchange.KRAKEN, "BTC-USD", 1, "t1", 1.0, 1.0, "buy")
    assert hop_ms(codec.encode(trade), 10**18) is None
