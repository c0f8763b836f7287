"""The Python client's resume after a reconnect (docs/protocol.md §4.10) and its bbo
handling (§4.8), over a fake connection."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from mdgw_client import client as client_module
from mdgw_client.checksum import checksum
from mdgw_client.client import MarketDataClient
from mdgw_client.decode import decode_frame

from core.bbo import Bbo
from core.types import Exchange
from schemas import wire

STREAM = "KRAKEN:BTC-USD"


class FakeWS:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(orjson.loads(text))


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> list[FakeWS]:
    made: list[FakeWS] = []

    async def fake_connect(*_a: object, **_k: object) -> FakeWS:
        made.append(FakeWS())
        return made[-1]

    monkeypatch.setattr(client_module, "connect", fake_connect)
    return made


def snap(seq: int) -> dict[str, Any]:
    return {
        "type": "order_book_snapshot",
        "exchange": "KRAKEN",
        "symbol": "BTC-USD",
        "sequence": seq,
        "bids": [[100.0, 1.0]],
        "asks": [[101.0, 1.0]],
        "checksum": checksum([(101.0, 1.0)], [(100.0, 1.0)]),
    }


def upd(seq: int, bid: float) -> dict[str, Any]:
    return {
        "type": "order_book_update",
        "exchange": "KRAKEN",
        "symbol": "BTC-USD",
        "sequence": seq,
        "prev_sequence": seq - 1,
        "bids": [[bid, 2.0]],
        "asks": [],
        "checksum": checksum([(101.0, 1.0)], sorted([(100.0, 1.0), (bid, 2.0)], reverse=True)),
    }


async def test_a_whole_book_resumes_after_a_reconnect(sockets: list[FakeWS]) -> None:
    c = MarketDataClient("ws://gw/ws")
    await c.connect()
    await c.subscribe("book", [STREAM], depth=0)
    s = snap(10)
    assert (await c._handle(s, 0)).kind == "book"  # type: ignore[union-attr]
    await c.connect()  # the connection dropped and came back
    assert sockets[-1].sent[0]["since"] == {STREAM: 10}
    book = c.book(STREAM)
    assert book is not None and not book.valid
    assert await c._handle(upd(11, 99.0), 0) is None  # nothing applied before the answer
    await c.connect()  # failed again before the answer: still asks for 10
    assert sockets[-1].sent[0]["since"] == {STREAM: 10}
    reply = {"type": "subscribed", "channel": "book", "symbols": [STREAM], "resumed": True}
    await c._handle(reply, 0)
    assert book.valid and c.resumed == 1
    ev = await c._handle(upd(11, 99.0), 0)
    assert ev is not None and ev.kind == "book" and book.sequence == 11
    assert c.sequence_breaks == 0 and c.checksum_failures == 0


async def test_a_refused_resume_waits_for_the_snapshot(sockets: list[FakeWS]) -> None:
    c = MarketDataClient("ws://gw/ws")
    await c.connect()
    await c.subscribe("book", [STREAM], depth=0)
    s = snap(10)
    await c._handle(s, 0)
    await c.connect()
    reply = {"type": "subscribed", "channel": "book", "symbols": [STREAM], "resumed": False}
    await c._handle(reply, 0)
    book = c.book(STREAM)
    assert book is not None and not book.valid and c.not_resumed == 1
    await c._handle(s, 0)
    assert book.valid
    await c._handle(
        {"type": "status", "exchange": "KRAKEN", "symbol": "BTC-USD", "status": "stale"}, 0
    )
    await c.connect()
    assert "since" not in sockets[-1].sent[0]  # a stale book starts from a snapshot


async def test_bbo_chain_and_protobuf(sockets: list[FakeWS]) -> None:
    c = MarketDataClient("ws://gw/ws", fmt="protobuf")
    await c.connect()
    await c.subscribe("bbo", [STREAM, "BTC-USD"])
    assert sockets[-1].sent[0]["channel"] == "bbo" and "depth" not in sockets[-1].sent[0]
    frames = [
        wire.bbo_pb(Bbo(Exchange.KRAKEN, "BTC-USD", 1, 5, 4, (100.0, 1.0), (101.0, 2.0), 2, 3)),
        wire.bbo_pb(Bbo(Exchange.UNKNOWN, "BTC-USD", 1, 7, 6, (100.5, 1.0, "COINBASE"), None)),
        wire.bbo_pb(Bbo(Exchange.KRAKEN, "BTC-USD", 1, 6, 5, (100.0, 1.5), (101.0, 2.0), 2, 3)),
        wire.bbo_pb(Bbo(Exchange.KRAKEN, "BTC-USD", 1, 9, 8, (100.0, 1.5), None, 2, 3)),
    ]
    for f in frames:
        for m in decode_frame(f, protobuf=True, batch=False):
            assert (await c._handle(m, 0)).kind == "bbo"  # type: ignore[union-attr]
    assert c.bbo("BTC-USD") == {
        "type": "bbo",
        "symbol": "BTC-USD",
        "timestamp": 1,
        "sequence": 7,
        "prev_sequence": 6,
        "bid": [100.5, 1.0, "COINBASE"],
        "ask": None,
        "ingest_ts": 0,
        "gateway_ts": 0,
    }
    assert c.bbo(STREAM)["ask"] is None  # type: ignore[index]
    assert c.sequence_breaks == 1  # 6 -> 9 skipped 7 and 8
    await c.connect()
    for m in decode_frame(frames[0], protobuf=True, batch=False):
        await c._handle(m, 0)  # a new connection: a new chain
    assert c.sequence_breaks == 1


async def test_behind_marks_the_book_until_caught_up_or_a_snapshot(sockets: list[FakeWS]) -> None:
    c = MarketDataClient("ws://gw/ws")
    await c.connect()
    await c.subscribe("book", [STREAM], depth=0)
    await c._handle(snap(10), 0)
    book = c.book(STREAM)
    assert book is not None and not book.behind
    told = {"type": "status", "exchange": "KRAKEN", "symbol": "BTC-USD", "reason": "lag"}
    ev = await c._handle({**told, "status": "behind", "lag_ms": 612}, 0)
    assert ev is not None and ev.kind == "status" and book.behind and book.valid
    await c._handle({**told, "status": "caught_up"}, 0)
    assert not book.behind and book.valid  # whole: nothing was lost
    await c._handle({**told, "status": "behind"}, 0)
    await c._handle({**told, "status": "resync"}, 0)
    assert book.behind and not book.valid
    await c._handle(snap(20), 0)
    assert not book.behind and book.valid
    for odd in ({"status": "behind"}, {**told, "symbol": "NOPE", "status": "behind"}):
        ev = await c._handle({"type": "status", **odd}, 0)  # names no book: passed on as is
        assert ev is not None and ev.kind == "status" and not book.behind
