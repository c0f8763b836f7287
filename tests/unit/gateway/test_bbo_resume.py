"""The bbo channel (docs/protocol.md §4.8) and resume (§4.10) through the hub and the
server's control path, without sockets (a fake connection records what is written)."""

from __future__ import annotations

import gc
from typing import Any

import orjson
import pytest
from mdgw_client.book import LocalBook

from core.market import Market
from core.types import BookUpdate, Exchange
from gateway.clock import Clock
from gateway.hub import Hub
from gateway.protocol import ProtocolError
from gateway.server import GatewayServer
from gateway.session import Session
from mdgw.config import GatewayConfig
from schemas import market_data_pb2 as pb
from tests.unit.gateway.fakes import FakeConn, frames_of, messages_of

STREAM = "KRAKEN:BTC-USD"
SEC = 1_000_000_000


class FakeTime:
    def __init__(self) -> None:
        self.ns = 10 * SEC


def book(ex: Exchange, seq: int, bids: list, asks: list, snap: bool = False) -> BookUpdate:
    return BookUpdate(ex, "BTC-USD", seq * 10, seq, bids, asks, snap, seq - 1, ingest_ns=seq * 11)


def setup(**hub_kw: Any) -> tuple[Market, Hub, FakeTime]:
    t = FakeTime()
    market = Market(verify_checksums=False)
    market.apply_book(
        book(Exchange.KRAKEN, 1, [(100.0, 1.0), (99.0, 2.0)], [(101.0, 1.0)], True), 0
    )
    hub = Hub(market, high_water=10**6, clock=Clock(lambda: t.ns, lambda: t.ns), **hub_kw)
    return market, hub, t


def session(hub: Hub, binary: bool = False) -> Session:
    s = Session(FakeConn(), binary=binary, batch=False)
    hub.add_session(s)
    return s


def feed(market: Market, hub: Hub, u: BookUpdate) -> None:
    event = market.apply_book(u, 0)
    hub.on_book(event.stream, event.result, event.aggregated.symbol if event.aggregated else None)
    hub.flush()


def data(s: Session, kind: str = "") -> list[dict[str, Any]]:
    return [m for m in messages_of(s.conn) if not kind or m["type"] == kind]


# ---- bbo ---------------------------------------------------------------------------------


def test_bbo_first_the_current_top_then_one_message_per_change_chained() -> None:
    market, hub, _ = setup()
    s = session(hub)
    assert hub.bbo.subscribe(s, STREAM)
    feed(market, hub, book(Exchange.KRAKEN, 2, [(98.0, 5.0)], []))  # below the top: nothing
    feed(market, hub, book(Exchange.KRAKEN, 3, [(100.0, 1.5)], []))
    feed(market, hub, book(Exchange.KRAKEN, 4, [], [(100.5, 0.2)]))
    msgs = data(s, "bbo")
    assert [(m["bid"], m["ask"]) for m in msgs] == [
        ([100.0, 1.0], [101.0, 1.0]),
        ([100.0, 1.5], [101.0, 1.0]),
        ([100.0, 1.5], [100.5, 0.2]),
    ]
    assert [m["prev_sequence"] for m in msgs[1:]] == [m["sequence"] for m in msgs[:-1]]
    assert msgs[1]["timestamp"] == 30 and msgs[1]["ingest_ts"] == 33
    assert msgs[0]["exchange"] == "KRAKEN" and msgs[1]["gateway_ts"] == 10 * SEC


def test_bbo_across_venues_and_in_protobuf() -> None:
    market, hub, _ = setup()
    market.apply_book(book(Exchange.COINBASE, 1, [(100.0, 3.0)], [(102.0, 1.0)], True), 0)
    s = session(hub)
    p = session(hub, binary=True)
    for x in (s, p):
        assert hub.bbo.subscribe(x, "BTC-USD")
    feed(market, hub, book(Exchange.KRAKEN, 2, [], [(100.9, 4.0)]))
    msgs = data(s, "bbo")
    assert [(m["bid"], m["ask"]) for m in msgs] == [
        ([100.0, 3.0, "COINBASE"], [101.0, 1.0, "KRAKEN"]),
        ([100.0, 3.0, "COINBASE"], [100.9, 4.0, "KRAKEN"]),
    ]
    assert "exchange" not in msgs[0]
    pbs = [pb.MarketDataMessage.FromString(f).order_book_update for _, f in frames_of(p.conn)]
    assert [(u.depth, u.is_snapshot, u.exchange) for u in pbs] == [(1, True, 0)] * 2
    assert pbs[1].asks[0].price == 100.9 and pbs[1].asks[0].venues[0].exchange == 3
    assert pbs[1].prev_sequence_number == pbs[0].sequence_number


def test_bbo_gap_says_stale_and_the_topic_closes_with_its_last_subscriber() -> None:
    market, hub, _ = setup()
    s = session(hub)
    hub.bbo.subscribe(s, STREAM)
    feed(market, hub, book(Exchange.KRAKEN, 5, [(100.5, 1.0)], []))  # gap
    assert data(s)[-1] == {
        "type": "status",
        "exchange": "KRAKEN",
        "symbol": "BTC-USD",
        "status": "stale",
        "reason": "sequence gap",
    }
    feed(market, hub, book(Exchange.KRAKEN, 6, [(100.7, 1.0)], [(101.0, 1.0)], True))
    last = data(s, "bbo")[-1]
    assert last["bid"] == [100.7, 1.0] and last["prev_sequence"] == 1
    hub.remove_session(s)
    assert not hub.bbo.topics


def test_slow_consumer_resync_sends_the_current_top() -> None:
    market, hub, _ = setup()
    s = session(hub)
    hub.bbo.subscribe(s, STREAM)
    hub.fall_behind(s, "lag")
    feed(market, hub, book(Exchange.KRAKEN, 2, [(100.2, 1.0)], []))  # dropped: behind
    hub.resync_behind(s, 1.0)
    tail = data(s)[-2:]
    assert tail[0]["status"] == "resync" and tail[1]["bid"] == [100.2, 1.0]


def test_server_bbo_subscribe_and_unknown_symbols() -> None:
    _, hub, _ = setup()
    server = GatewayServer(GatewayConfig(), hub)
    s = session(hub)
    server.dispatch(
        s, '{"op":"subscribe","id":1,"channel":"bbo","symbols":["BTC-USD",' + '"KRAKEN:BTC-USD"]}'
    )
    assert [m["type"] for m in data(s)] == ["subscribed", "bbo", "bbo"]
    for bad in ("NOPE-X", "BINANCE:BTC-USD", "KRAKEN:"):
        s2 = session(hub)
        req = {"op": "subscribe", "id": 2, "channel": "bbo", "symbols": [bad]}
        with pytest.raises(ProtocolError) as e:
            server.dispatch(s2, orjson.dumps(req).decode())
        assert e.value.code == "unknown_symbol", bad
    server.dispatch(s, '{"op":"unsubscribe","id":3,"channel":"bbo","symbols":["BTC-USD"]}')
    assert list(hub.bbo.topics) == [STREAM]


# ---- resume ------------------------------------------------------------------------------


def local(msgs: list[dict[str, Any]], into: LocalBook | None = None) -> LocalBook:
    b = into or LocalBook(STREAM, 0)
    for m in msgs:
        if m["type"] == "order_book_snapshot":
            b.load(m["bids"], m["asks"], m["sequence"])
        elif m["type"] == "order_book_update":
            assert m["prev_sequence"] == b.sequence
            b.apply(m["bids"], m["asks"], m["sequence"])
            assert b.local_checksum() == m["checksum"]
    return b


def subscribe(server: GatewayServer, s: Session, since: int | None = None) -> None:
    msg: dict[str, Any] = {"op": "subscribe", "id": 1, "channel": "book", "symbols": [STREAM]}
    msg["depth"] = 0
    if since is not None:
        msg["since"] = since
    server.dispatch(s, orjson.dumps(msg).decode())


def test_a_lone_client_resumes_exactly_what_it_missed() -> None:
    market, hub, t = setup()
    server = GatewayServer(GatewayConfig(), hub)
    a = session(hub)
    subscribe(server, a)
    for seq in range(2, 6):
        feed(market, hub, book(Exchange.KRAKEN, seq, [(100.0 + seq / 10, seq)], []))
    mine = local(data(a))
    hub.remove_session(a)  # the connection dropped; the view stays for resume_ms
    for seq in range(6, 9):
        feed(market, hub, book(Exchange.KRAKEN, seq, [], [(101.0 + seq, 1.0)]))
    t.ns += SEC
    b = session(hub)
    subscribe(server, b, since=mine.sequence)
    msgs = data(b)
    assert msgs[0]["resumed"] is True
    assert [m["type"] for m in msgs[1:]] == ["order_book_update"] * 3
    assert msgs[1]["prev_sequence"] == 5
    local(msgs, mine)
    live = market.book(STREAM)
    assert (mine.top_bids(), mine.top_asks()) == (live.bids(), live.asks())
    assert (hub.snapshot_frames.encodings, mine.sequence) == (1, 8)


def test_resume_refused_gets_a_snapshot() -> None:
    market, hub, t = setup(resume_messages=2, resume_ms=5000)
    server = GatewayServer(GatewayConfig(), hub)
    a = session(hub)
    subscribe(server, a)
    for seq in range(2, 6):
        feed(market, hub, book(Exchange.KRAKEN, seq, [(100.0 + seq / 10, seq)], []))
    for since in (2, 77):  # no longer held (2 messages kept); never sent
        b = session(hub)
        subscribe(server, b, since=since)
        msgs = data(b)
        assert msgs[0]["resumed"] is False and msgs[1]["type"] == "order_book_snapshot"
    hub.remove_session(a)
    for b in list(hub.sessions):
        hub.remove_session(b)
    t.ns += 6 * SEC
    hub.tick_conflated()  # idle views go after resume_ms
    assert not hub.views
    c = session(hub)
    subscribe(server, c, since=5)
    assert data(c)[0]["resumed"] is False


def test_no_resume_across_a_stale_gap() -> None:
    market, hub, _ = setup()
    server = GatewayServer(GatewayConfig(), hub)
    a = session(hub)
    subscribe(server, a)
    feed(market, hub, book(Exchange.KRAKEN, 2, [(100.2, 1.0)], []))
    feed(market, hub, book(Exchange.KRAKEN, 9, [(100.3, 1.0)], []))  # gap: stale
    b = session(hub)
    subscribe(server, b, since=2)
    assert data(b)[0]["resumed"] is False
    feed(market, hub, book(Exchange.KRAKEN, 10, [(100.4, 1.0)], [(101.0, 1.0)], True))
    c = session(hub)
    subscribe(server, c, since=2)
    assert data(c)[0]["resumed"] is False  # the chain restarted at 10
    d = session(hub)
    subscribe(server, d, since=10)
    assert data(d)[0]["resumed"] is True and len(data(d)) == 1


def test_conflated_views_resume_their_own_messages_and_protobuf_is_encoded_on_demand() -> None:
    market, hub, _ = setup()
    server = GatewayServer(GatewayConfig(), hub)
    a = session(hub)
    msg = '{"op":"subscribe","id":1,"channel":"book","symbols":["KRAKEN:BTC-USD"],"depth":10,'
    server.dispatch(a, msg + '"speed":"100ms"}')
    feed(market, hub, book(Exchange.KRAKEN, 2, [(100.2, 1.0)], []))
    hub.tick_conflated()
    first = data(a)[-1]["sequence"]
    feed(market, hub, book(Exchange.KRAKEN, 3, [(100.3, 1.0)], []))
    feed(market, hub, book(Exchange.KRAKEN, 4, [(100.4, 1.0)], []))
    hub.tick_conflated()
    p = session(hub, binary=True)
    server.dispatch(p, f'{msg}"speed":"100ms","since":{first}}}')
    frames = frames_of(p.conn)
    assert orjson.loads(frames[0][1])["resumed"] is True
    (u,) = [pb.MarketDataMessage.FromString(f).order_book_update for _, f in frames[1:]]
    assert (u.prev_sequence_number, u.sequence_number, u.depth) == (first, 4, 10)


def test_resume_after_a_slow_consumer_resync_is_exact() -> None:
    market, hub, _ = setup()
    server = GatewayServer(GatewayConfig(), hub)
    a = session(hub)
    subscribe(server, a)
    feed(market, hub, book(Exchange.KRAKEN, 2, [(100.2, 1.0)], []))
    hub.fall_behind(a, "lag")
    feed(market, hub, book(Exchange.KRAKEN, 3, [(100.3, 1.0)], []))  # dropped for a
    hub.resync_behind(a, 1.0)  # status resync + a snapshot at 3
    feed(market, hub, book(Exchange.KRAKEN, 4, [(100.4, 1.0)], []))
    mine = local(data(a))
    assert mine.sequence == 4
    hub.remove_session(a)
    feed(market, hub, book(Exchange.KRAKEN, 5, [], [(100.9, 1.0)]))
    b = session(hub)
    subscribe(server, b, since=mine.sequence)
    msgs = data(b)
    assert msgs[0]["resumed"] is True
    local(msgs, mine)
    live = market.book(STREAM)
    assert (mine.sequence, mine.top_bids(), mine.top_asks()) == (5, live.bids(), live.asks())


def test_history_entries_are_untracked_and_resume_in_the_format_nobody_took_live() -> None:
    """An aggregated view delivered only in JSON keeps each message packed flat
    (``core.packed``: nothing for the garbage collector to walk); a protobuf resume
    encodes it then, byte for byte what a protobuf subscriber got live."""
    market, hub, _ = setup()
    market.apply_book(book(Exchange.COINBASE, 1, [(100.0, 3.0)], [(102.0, 1.0)], True), 0)
    server = GatewayServer(GatewayConfig(), hub)
    sub = '{"op":"subscribe","id":1,"channel":"aggregated_book","symbols":["BTC-USD"],"depth":10'
    j = session(hub)
    server.dispatch(j, sub + "}")
    first = data(j)[-1]["sequence"]
    for seq in range(2, 5):
        feed(market, hub, book(Exchange.KRAKEN, seq, [(100.0, seq)], [(101.0 - seq / 10, 1.0)]))
    (slot,) = [v for k, v in hub.views.items() if k.aggregated]
    entries = list(slot.history.since(first, 10 * SEC) or [])
    assert len(entries) == 3 and all(e[1] is None for e in entries)  # no protobuf yet
    gc.collect(0)
    assert not any(gc.is_tracked(e) for e in entries)
    live = session(hub, binary=True)  # a protobuf subscriber from now on, for comparison
    server.dispatch(live, sub + ',"id":2}')
    feed(market, hub, book(Exchange.KRAKEN, 5, [(100.0, 5.0)], []))
    p = session(hub, binary=True)
    server.dispatch(p, sub + f',"since":{first}}}')
    resumed = [
        pb.MarketDataMessage.FromString(f).order_book_update for _, f in frames_of(p.conn)[1:]
    ]
    assert frames_of(p.conn)[-1][1] == frames_of(live.conn)[-1][1]
    names = {e.value: e.name for e in Exchange}

    def levels(side: Any) -> list[list[Any]]:
        return [[lv.price, lv.quantity, {names[v.exchange]: v.quantity for v in lv.venues}]
                for lv in side]  # fmt: skip

    got = [(u.sequence_number, u.prev_sequence_number, levels(u.bids), levels(u.asks))
           for u in resumed[:3]]  # fmt: skip
    sent = [(m["sequence"], m["prev_sequence"], m["bids"], m["asks"]) for m in data(j)[-4:-1]]
    assert got == sent and len(sent) == 3
