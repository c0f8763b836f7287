"""Hub fan-out without sockets: a fake connection records what a session writes."""

from __future__ import annotations

from typing import Any

import orjson
from mdgw_client import LocalBook

from core.market import Market
from core.types import BookUpdate, Exchange
from gateway.hub import Hub, ViewKey
from gateway.session import Session
from schemas import codec, wire
from tests.unit.gateway.fakes import FakeConn, frames_of, messages_of


def snapshot(seq: int, bids: list, asks: list) -> BookUpdate:
    return BookUpdate(Exchange.KRAKEN, "BTC-USD", seq, seq, bids, asks, True)


def delta(seq: int, bids: list, asks: list) -> BookUpdate:
    return BookUpdate(Exchange.KRAKEN, "BTC-USD", seq, seq, bids, asks, False, seq - 1)


def messages(session: Session) -> list[dict[str, Any]]:
    return messages_of(session.conn)


def setup(batch: bool = False) -> tuple[Market, Hub, Session]:
    market = Market(verify_checksums=False)
    market.apply_book(snapshot(1, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)]), 0)
    hub = Hub(market, high_water=1000)
    session = Session(FakeConn(), binary=False, batch=batch)
    hub.sessions.add(session)
    return market, hub, session


def feed(market: Market, hub: Hub, update: BookUpdate) -> None:
    event = market.apply_book(update, 0)
    hub.on_book(event.stream, event.result, event.aggregated.symbol if event.aggregated else None)
    hub.flush()


def test_subscriber_gets_snapshot_then_exact_chained_updates() -> None:
    market, hub, s = setup()
    assert hub.add_view(s, ViewKey(False, "KRAKEN:BTC-USD", 10, False))
    feed(market, hub, delta(2, [(100.0, 0.0)], []))
    feed(market, hub, delta(3, [], [(102.0, 3.0)]))
    msgs = messages(s)
    assert [m["type"] for m in msgs] == [
        "order_book_snapshot",
        "order_book_update",
        "order_book_update",
    ]
    book = LocalBook("KRAKEN:BTC-USD", 10)
    book.load(msgs[0]["bids"], msgs[0]["asks"], msgs[0]["sequence"])
    for m in msgs[1:]:
        assert m["prev_sequence"] == book.sequence
        book.apply(m["bids"], m["asks"], m["sequence"])
        assert book.local_checksum() == m["checksum"]
    assert book.top_bids() == market.book("KRAKEN:BTC-USD").bids(10)


def test_encoded_once_for_every_subscriber(monkeypatch: Any) -> None:
    market, hub, s = setup()
    others = [Session(FakeConn(), binary=False, batch=False) for _ in range(3)]
    key = ViewKey(False, "KRAKEN:BTC-USD", 20, False)
    for x in [s, *others]:
        hub.add_view(x, key)
    encoded: list[bytes] = []
    real = wire.book_json

    def counting(msg: Any, aggregated: bool = False) -> bytes:
        encoded.append(real(msg, aggregated=aggregated))
        return encoded[-1]

    monkeypatch.setattr(wire, "book_json", counting)
    feed(market, hub, delta(2, [(100.5, 1.0)], []))
    assert len(encoded) == 1
    assert all(frames_of(x.conn)[-1][1] == encoded[0] for x in [s, *others])
    assert all(x.conn.transport.writes == 2 for x in [s, *others])  # snapshot, then the tick


def test_batching_packs_one_tick_into_one_frame() -> None:
    market, hub, s = setup(batch=True)
    hub.add_view(s, ViewKey(False, "KRAKEN:BTC-USD", 20, False))
    before = len(frames_of(s.conn))
    for seq in (2, 3, 4):
        event = market.apply_book(delta(seq, [(100.0 - seq, 1.0)], []), 0)
        hub.on_book(event.stream, event.result, None)
    hub.flush()
    frames = frames_of(s.conn)[before:]
    assert len(frames) == 1 and len(orjson.loads(frames[0][1])) == 3


def test_gap_sends_stale_then_snapshot_recovers() -> None:
    market, hub, s = setup()
    hub.add_view(s, ViewKey(False, "KRAKEN:BTC-USD", 10, False))
    feed(market, hub, delta(5, [(100.0, 3.0)], []))  # 2..4 missing
    feed(market, hub, snapshot(6, [(98.0, 1.0)], [(99.0, 1.0)]))
    kinds = [(m["type"], m.get("status")) for m in messages(s)]
    assert kinds[-2:] == [("status", "stale"), ("order_book_snapshot", None)]


def test_slow_session_drops_deltas_then_resyncs_then_is_closed() -> None:
    market, hub, s = setup()
    hub.add_view(s, ViewKey(False, "KRAKEN:BTC-USD", 10, False))
    s.conn.transport.buffered = 5000  # past the high-water mark
    feed(market, hub, delta(2, [(100.0, 2.0)], []))
    assert s.behind_since is not None
    feed(market, hub, delta(3, [(100.0, 3.0)], []))
    assert s.dropped == 2  # the held delta 2 and the skipped delta 3
    s.conn.transport.buffered = 0
    closed: list[int] = []
    hub.check_slow(lambda sess, code, reason: closed.append(code))
    tail = messages(s)[-2:]
    assert [m["type"] for m in tail] == ["status", "order_book_snapshot"]
    assert tail[0]["status"] == "resync" and s.resyncs == 1 and not closed
    s.conn.transport.buffered = 5000
    feed(market, hub, delta(4, [(100.0, 4.0)], []))
    s.behind_since -= 60
    hub.check_slow(lambda sess, code, reason: closed.append(code))
    assert closed == [1013] and s not in hub.sessions


def test_plain_and_batching_clients_of_one_view_each_get_their_own_framing() -> None:
    """Plain clients are queued frames framed once for all of them; a batching client
    of the same view is queued bare payloads and gets one batch frame: both parse."""
    market, hub, plain = setup()
    batching = Session(FakeConn(), binary=False, batch=True)
    binary = Session(FakeConn(), binary=True, batch=False)
    key = ViewKey(False, "KRAKEN:BTC-USD", 20, False)
    for x in (plain, batching, binary):
        hub.sessions.add(x)
        hub.add_view(x, key)
    assert plain.framed and binary.framed and not batching.framed
    for seq in (2, 3):
        event = market.apply_book(delta(seq, [(100.0 - seq, 1.0)], []), 0)
        hub.on_book(event.stream, event.result, None)
    hub.flush()
    assert [m["sequence"] for m in messages(plain)[1:]] == [2, 3]
    assert [m["sequence"] for m in messages(batching)[1:]] == [2, 3]
    assert len(frames_of(batching.conn)) == 2  # snapshot, one batch of both deltas
    pb = frames_of(binary.conn)[1:]
    assert [op for op, _ in pb] == [0x2, 0x2]
    assert [codec.decode(p).sequence for _, p in pb] == [2, 3]
