"""Test data on the in-memory broker: topics named like the real ones, a settable clock."""

from __future__ import annotations

from core.types import BookUpdate, Exchange, Trade
from mdgw.config import KafkaConfig
from mdgw.kafka.admin import topic_specs
from mdgw.kafka.memory import MemoryBroker
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
    broker = MemoryBroker(clock.ms) if clock is not None else MemoryBroker()
    for spec in topic_specs(cfg):
        broker.create_topic(spec.name, spec.partitions)
    return broker


def publisher(broker: MemoryBroker, cfg: KafkaConfig, clock: Clock) -> Publisher:
    return Publisher(broker, cfg, clock=clock.ns)


def book(seq: int, mid: float = 100.0, *, snapshot: bool = False) -> BookUpdate:
    """BINANCE:BTC-USDT at ``seq``: a full book, or a delta moving the best levels."""
    if snapshot:
        bids = [(mid - 1 - i, 1.0 + i) for i in range(5)]
        asks = [(mid + 1 + i, 1.0 + i) for i in range(5)]
        return BookUpdate(Exchange.BINANCE, "BTC-USDT", T0 + seq, seq, bids, asks, is_snapshot=True)
    return BookUpdate(Exchange.BINANCE, "BTC-USDT", T0 + seq, seq, [(mid - 1, 1.0 + seq % 7)], [])


def trade(seq: int, price: float = 100.0) -> Trade:
    return Trade(Exchange.BINANCE, "BTC-USDT", T0 + seq, f"t{seq}", price, 0.5, "buy", seq)
