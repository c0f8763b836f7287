"""A whole gateway on the in-memory broker: readiness, time travel over WebSocket, shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import orjson
import pytest
from mdgw_client import MarketDataClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateway.app import Gateway, start_gateway
from mdgw.kafka.headers import BOOK_OFFSET, int_header
from mdgw.kafka.memory import MemoryBroker
from schemas import codec
from tests.unit.gateway.memgw import (
    CONFIG,
    KAFKA,
    STREAM,
    History,
    events_until,
    eventually,
    memory_gateway,
    url,
)
from tests.unit.kafka.memkafka import Clock, book, broker_for, feed


@pytest.fixture
async def gw() -> AsyncIterator[tuple[Gateway, MemoryBroker, History]]:
    async with memory_gateway() as (rt, broker, states, _clock):
        yield rt, broker, states


async def test_ready_once_the_tail_is_applied(gw) -> None:
    rt, _broker, states = gw
    live = rt.market.book(STREAM)
    assert live is not None and live.sequence == states[-1][1].sequence
    health = rt.server.health()
    assert health["ready"] and health["streams"] == 1 and health["dlq"] == 0


async def test_replay_of_a_window_ends_on_the_book_at_its_end(gw) -> None:
    rt, _broker, states = gw
    start, end = states[10][0], states[30][0]
    async with MarketDataClient(url(rt), fmt="json") as c:
        rid = await c.replay("book", [STREAM], start, end, depth=0, speed=0)
        seen = await events_until(c, "replay_complete")
        books = [ev for ev in seen if ev.kind == "book"]
        assert books and all(ev.data.get("replay") is True for ev in books)
        got = c.books[f"replay:{rid}:{STREAM}"]
        want = states[30][1]
        assert got.sequence == want.sequence
        assert got.top_bids() == [tuple(x) for x in want.bids]
        assert c.checksum_failures == 0 and c.sequence_breaks == 0


async def test_replay_to_live_hands_over_without_a_gap(gw) -> None:
    rt, broker, states = gw
    async with MarketDataClient(url(rt), fmt="json") as c:
        await c.replay("book", [STREAM], states[20][0], "live", depth=0, speed=0)
        seen = await events_until(c, "replay_complete")
        assert seen[-1].data["live"] is True
        part = broker.records(KAFKA.book_topic)[0].partition
        broker.send(KAFKA.book_topic, STREAM, codec.encode(book(42)), partition=part)
        await events_until(c, "book")
        local = c.book(STREAM)
        assert local is not None and local.sequence == 42
        assert c.checksum_failures == 0 and c.sequence_breaks == 0


async def test_replay_to_live_says_complete_before_any_live_message(gw, monkeypatch) -> None:
    """The client moves its replayed book to the live name on replay_complete: the live
    view is joined only after it is written (a live delta in between found no book to
    chain on, and the next one broke the chain: a CI failure of test_time_travel)."""
    from gateway.hub import Hub
    from gateway.session import Session

    rt, _broker, states = gw
    order: list[str] = []
    add_view, send_control = Hub.add_view, Session.send_control

    def spy_add_view(self: Hub, session: Session, key, *, snapshot: bool = True) -> bool:
        order.append(f"join {key.name}")
        return add_view(self, session, key, snapshot=snapshot)

    def spy_send_control(self: Session, kind: str, **fields: object) -> None:
        order.append(kind)
        send_control(self, kind, **fields)

    monkeypatch.setattr(Hub, "add_view", spy_add_view)
    monkeypatch.setattr(Session, "send_control", spy_send_control)
    async with MarketDataClient(url(rt), fmt="json") as c:
        await c.replay("book", [STREAM], states[20][0], "live", depth=0, speed=0)
        await events_until(c, "replay_complete")
    assert f"join {STREAM}" in order
    assert order.index("replay_complete") < order.index(f"join {STREAM}"), order


async def test_replay_before_retention_is_history_unavailable(gw) -> None:
    rt, broker, states = gw
    part = broker.records(KAFKA.book_topic)[0].partition
    broker.truncate(KAFKA.book_topic, part, 25)
    broker.truncate(KAFKA.checkpoints_topic, part, 10**6)
    async with connect(url(rt) + "?format=json") as ws:
        req = {"op": "replay", "id": "old", "channel": "book", "symbols": [STREAM],
               "from": states[3][0], "to": states[10][0]}  # fmt: skip
        await ws.send(orjson.dumps(req).decode())
        while (msg := orjson.loads(await asyncio.wait_for(ws.recv(), 10)))["type"] != "error":
            pass
    assert msg["id"] == "old" and msg["code"] == "history_unavailable"
    assert "retained" in msg["message"]


async def test_shutdown_closes_clients_and_writes_the_last_snapshots(gw) -> None:
    rt, broker, _states = gw
    before = len(broker.records(KAFKA.snapshots_topic))
    async with connect(url(rt)) as ws:
        await rt.stop(timeout=2)
        with pytest.raises(ConnectionClosed) as e:
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1001
    snaps = broker.records(KAFKA.snapshots_topic)
    assert len(snaps) == before + 1
    book_records = broker.records(KAFKA.book_topic)
    assert int_header(snaps[-1].headers, BOOK_OFFSET) == book_records[-1].offset + 1
    assert rt.consumer._source.closed  # type: ignore[attr-defined]


async def test_sharded_mode_loads_the_partitions_it_is_given() -> None:
    clock = Clock()
    broker = broker_for(KAFKA, clock)
    states = feed(broker, KAFKA, clock, 15)
    config = dataclasses.replace(
        CONFIG, gateway=dataclasses.replace(CONFIG.gateway, mode="sharded")
    )
    rt = await start_gateway(config, sources=broker, sink=broker)
    try:
        await eventually(lambda: rt.materializer.owned_partitions == {0, 1, 2})
        await eventually(lambda: (b := rt.market.book(STREAM)) is not None and b.sequence == 16)
        assert rt.market.book(STREAM).snapshot(0).bids == states[-1][1].bids  # type: ignore[union-attr]
        assert rt.ready and rt.gc_policy.installed  # the collector policy, as in replica mode
    finally:
        await rt.stop(timeout=2)
    assert not rt.gc_policy.installed


async def test_broker_loss_marks_views_stale_and_recovery_resends_snapshots(gw) -> None:
    rt, broker, states = gw
    async with MarketDataClient(url(rt), fmt="json") as c:
        await c.subscribe("book", [STREAM], depth=10)
        await events_until(c, "book")
        broker.set_down(True)
        seen = await events_until(c, "status")
        assert seen[-1].data["status"] == "stale" and "kafka" in seen[-1].data["reason"]
        assert rt.consumer.broker_down and not rt.consumer.probe(0.1)
        broker.set_down(False)
        seen = await events_until(c, "book")
        local = c.book(STREAM)
        assert local is not None and local.valid and local.sequence == states[-1][1].sequence
        assert not rt.consumer.broker_down
