"""Sharded mode's rebalance callbacks (gateway/sharding.py) on the memory broker.

Two owners in one test, as two gateways of one group would be: owner A is given the
partitions (by its source's ``subscribe``, inside ``consume`` on a thread, as the
consumer thread runs it), reads the history, then gives them up (``on_revoke``; the
memory broker's group of one never revokes, so the test calls it from a thread like
the consumer would). Owner B is then given them and must start exactly where A
stopped: the book from A's last snapshot, the trades after A's statistics
checkpoint, nothing read twice.
"""

from __future__ import annotations

import asyncio
import time

import orjson

from core.market import Market
from gateway.hub import Hub
from gateway.session import Session
from gateway.sharding import Shards
from gateway.subscriptions import ViewKey
from mdgw.kafka.headers import BOOK_OFFSET, BOOK_PARTITION, int_header
from mdgw.kafka.memory import MemoryBroker, MemorySource
from mdgw.kafka.source import Record
from mdgw.materializer import Materializer
from schemas import codec
from tests.unit.gateway.fakes import FakeConn, frames_of
from tests.unit.gateway.memgw import KAFKA, STREAM
from tests.unit.kafka.memkafka import Clock, book, broker_for, feed, publisher, trade

TOPICS = [KAFKA.book_topic, KAFKA.trades_topic]


class Owner:
    """One gateway's share of a sharded group: its market, hub, materializer and Shards."""

    def __init__(self, broker: MemoryBroker, clock: Clock, name: str) -> None:
        self.market = Market()
        self.hub = Hub(self.market, high_water=1 << 20)
        self.mat = Materializer(
            self.market,
            KAFKA,
            dlq=broker,
            on_book=self.hub.on_book,
            on_trade=self.hub.on_trade,
            snapshot_sink=broker,
            checkpoint_every_ms=60_000,
            clock=clock.ns,
        )
        self.shards = Shards(KAFKA, self.mat, self.hub, asyncio.get_running_loop(), broker)
        self.source: MemorySource = broker(name)
        self.source.subscribe(TOPICS, self.shards.on_assign, self.shards.on_revoke)

    async def poll(self) -> list[Record]:
        """One consume on a thread (the first one runs the assignment), applied on the loop."""
        records = await asyncio.to_thread(self.source.consume, 10_000, 0.05)
        self.mat.handle(records)
        return records

    async def revoke(self) -> None:
        parts = [(t, p) for t in TOPICS for p in range(KAFKA.partitions)]
        await asyncio.to_thread(self.shards.on_revoke, self.source, parts)


def subscriber(hub: Hub) -> tuple[Session, FakeConn]:
    conn = FakeConn()
    session = Session(conn, binary=False, batch=False)  # type: ignore[arg-type]
    hub.add_session(session)
    assert hub.add_view(session, ViewKey(False, STREAM, 10, False))
    return session, conn


def controls(conn: FakeConn) -> list[dict[str, object]]:
    msgs = [orjson.loads(payload) for _op, payload in frames_of(conn)]
    return [m for m in msgs if m["type"] not in ("order_book_snapshot", "order_book_update")]


async def test_revoked_partitions_are_handed_over_through_snapshots_and_checkpoints() -> None:
    clock = Clock(time.time_ns() - 60_000_000_000)  # a minute ago: inside the trades window
    broker = broker_for(KAFKA, clock)
    states = feed(broker, KAFKA, clock, 10)
    pub = publisher(broker, KAFKA, clock)
    for seq in range(1, 6):
        clock.advance(100)
        pub.publish(trade(seq))
    book_records = broker.records(KAFKA.book_topic)
    trade_records = broker.records(KAFKA.trades_topic)
    part = book_records[0].partition

    a = Owner(broker, clock, "a")
    await a.poll()
    assert a.shards.assignments == 1 and a.mat.owned_partitions == {0, 1, 2}
    live = a.market.book(STREAM)
    assert live is not None and live.sequence == states[-1][1].sequence
    session, conn = subscriber(a.hub)

    snapshots_before = len(broker.records(KAFKA.snapshots_topic))
    await a.revoke()
    # A wrote where the next owner starts: its book, at the offset after its last record
    snaps = broker.records(KAFKA.snapshots_topic)[snapshots_before:]
    assert [s.key for s in snaps] == [STREAM.encode()]
    assert int_header(snaps[0].headers, BOOK_PARTITION) == part
    assert int_header(snaps[0].headers, BOOK_OFFSET) == book_records[-1].offset + 1
    assert codec.decode(snaps[0].value).sequence == states[-1][1].sequence  # type: ignore[union-attr]
    checkpoints = [r for r in broker.records(KAFKA.stats_topic) if r.key == STREAM.encode()]
    assert checkpoints, "the trades state is checkpointed for the next owner"
    # ... and let go of it: the book, its position, its subscribers, its partitions
    assert a.market.book(STREAM) is None and a.mat.positions == {}
    assert a.mat.owned_partitions == set() and a.shards.owned == set()
    stale = [m for m in controls(conn) if m["type"] == "status"]
    assert stale == [
        {
            "type": "status",
            "exchange": "BINANCE",
            "symbol": "BTC-USDT",
            "status": "stale",
            "reason": "partition moved to another gateway",
        }
    ]
    del session

    # the next delta and trade arrive after the hand-over
    broker.send(KAFKA.book_topic, STREAM, codec.encode(book(len(states) + 1)), partition=part)
    clock.advance(100)
    pub.publish(trade(6))
    assert await a.poll() == []  # A reads nothing any more

    b = Owner(broker, clock, "b")
    read = await b.poll()
    # B read only what came after A's snapshot and A's checkpoint: nothing twice
    assert [(r.topic, r.offset) for r in read] == [
        (KAFKA.book_topic, book_records[-1].offset + 1),
        (KAFKA.trades_topic, trade_records[-1].offset + 1),
    ]
    got = b.market.book(STREAM)
    assert got is not None and not got.stale and got.sequence == len(states) + 1
    assert [t.trade_id for t in b.market.trades(STREAM)][:1] == ["t6"]
    assert b.mat.owned_partitions == {0, 1, 2}


async def test_an_owner_without_checkpoints_reads_the_trades_window() -> None:
    clock = Clock(time.time_ns() - 60_000_000_000)
    broker = broker_for(KAFKA, clock)
    feed(broker, KAFKA, clock, 3)
    pub = publisher(broker, KAFKA, clock)
    old = Clock(time.time_ns() - 2 * 86_400_000_000_000)  # two days ago: out of the window
    broker.send(
        KAFKA.trades_topic,
        STREAM,
        codec.encode(trade(1)),
        timestamp_ms=old.ms(),
    )
    for seq in range(2, 4):
        clock.advance(100)
        pub.publish(trade(seq))
    owner = Owner(broker, clock, "solo")
    read = await owner.poll()
    trades = [r for r in read if r.topic == KAFKA.trades_topic]
    assert [r.offset for r in trades] == [1, 2]  # from the window's start, not offset 0
    assert [t.trade_id for t in owner.market.trades(STREAM)] == ["t3", "t2"]
