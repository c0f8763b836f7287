"""Test data on the in-memory broker: topics named like the real ones, a settable clock."""

from __future__ import annotations

from core.book import OrderBook
from core.market import Market
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import KafkaConfig
from mdgw.kafka.memory import MemoryBroker, broker_with_topics
from mdgw.materializer import Materializer
from producers.publisher import Publisher

T0 = 1_700_000_000_000_000_000
"""A fixed instant (ns): tests move :class:`Clock` from here."""


class Clock:
    """One time for the producers and the broker, moved by the test."""

    def __init__(self, now_ns: int = T0) -> None:
        self.now_ns = now_ns

    def ns(self) -> int:
        return self.now_ns

    def ms(self) -> int:
        return self.now_ns // 1_000_000

    def advance(self, ms: int) -> int:
        self.now_ns += ms * 1_000_000
        return self.now_ns


def broker_for(cfg: KafkaConfig, clock: Clock | None = None) -> MemoryBroker:
    """A broker holding the project's topics (as ``mdgw topics create`` makes them)."""
    return broker_with_topics(cfg, clock.ms if clock is not None else None)


def publisher(broker: MemoryBroker, cfg: KafkaConfig, clock: Clock) -> Publisher:
    return Publisher(broker, cfg, clock=clock.ns)


def book(seq: int, mid: float = 100.0, *, snapshot: bool = False) -> BookUpdate:
    """BINANCE:BTC-USDT at ``seq``: a full book, or a delta moving the best levels."""
    if snapshot:
        bids = [(mid - 1 - i, 1.0 + i) for i in range(5)]
        asks = [(mid + 1 + i, 1.0 + i) for i in range(5)]
        return BookUpdate(Exchange.BINANCE, "BTC-USDT", T0 + seq, seq, bids, asks, is_snapshot=True)
    bid = (mid - 1 - seq % 5, 1.0 + seq % 7)  # stays below the asks: never crosses
    return BookUpdate(Exchange.BINANCE, "BTC-USDT", T0 + seq, seq, [bid], [])


def trade(seq: int, price: float = 100.0) -> Trade:
    return Trade(Exchange.BINANCE, "BTC-USDT", T0 + seq, f"t{seq}", price, 0.5, "buy", seq)


def feed(
    broker: MemoryBroker, cfg: KafkaConfig, clock: Clock, n: int
) -> list[tuple[int, BookUpdate]]:
    """A snapshot then ``n`` deltas 100 ms apart, checkpointed every second by a writer
    (as a gateway writes them); returns (ingest_ns, the full book then) per record."""
    pub = publisher(broker, cfg, clock)
    writer = Materializer(
        Market(),
        cfg,
        snapshot_sink=broker,
        snapshot_every_ms=1000,
        checkpoint_every_ms=1000,
        clock=clock.ns,
    )
    ref = OrderBook(Exchange.BINANCE, "BTC-USDT")
    states = []
    for seq in range(1, n + 2):
        clock.advance(100)
        msg = book(seq, snapshot=seq == 1)
        pub.publish(msg)
        writer.handle([broker.records(cfg.book_topic)[-1]])  # one stream: one partition
        ref.apply(msg)
        states.append((msg.ingest_ns, ref.snapshot(0)))
    return states
