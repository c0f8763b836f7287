"""``kafka_records_consumed_total{topic}`` counts each record under its own topic."""

from __future__ import annotations

from prometheus_client import REGISTRY

from core.market import Market
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import KafkaConfig
from mdgw.kafka.source import Record
from mdgw.materializer import Materializer
from schemas import codec

CFG = KafkaConfig()
STREAM = "KRAKEN:BTC-USD"


def consumed(topic: str) -> float:
    value = REGISTRY.get_sample_value("kafka_records_consumed_total", {"topic": topic})
    return value or 0.0


def record(topic: str, offset: int, message: BookUpdate | Trade) -> Record:
    return Record(topic, 0, offset, STREAM.encode(), codec.encode(message), None, 0, 0)


def test_book_and_trade_records_are_counted_under_their_own_topics() -> None:
    book = BookUpdate(
        Exchange.KRAKEN, "BTC-USD", 1, 10, bids=[(99.0, 1.0)], asks=[(101.0, 1.0)], is_snapshot=True
    )
    trades = [
        Trade(Exchange.KRAKEN, "BTC-USD", 2 + i, f"t-{i}", 100.0, 0.5, "buy", sequence=i + 1)
        for i in range(3)
    ]
    before_book, before_trades = consumed(CFG.book_topic), consumed(CFG.trades_topic)
    mat = Materializer(Market(), CFG, clock=lambda: 1)

    mat.handle(
        [record(CFG.book_topic, 0, book)]
        + [record(CFG.trades_topic, i, t) for i, t in enumerate(trades)]
    )

    assert consumed(CFG.book_topic) - before_book == 1
    assert consumed(CFG.trades_topic) - before_trades == 3
    assert mat.counters.applied == 4


def test_records_not_applied_are_counted_too() -> None:
    """A partition handed to another gateway (sharded) and a topic this process does not
    read: counted as consumed under their own topics, applied nowhere."""
    book = BookUpdate(
        Exchange.KRAKEN, "BTC-USD", 1, 10, bids=[(99.0, 1.0)], asks=[(101.0, 1.0)], is_snapshot=True
    )
    trade = Trade(Exchange.KRAKEN, "BTC-USD", 2, "t-0", 100.0, 0.5, "buy", sequence=1)
    before = {t: consumed(t) for t in (CFG.book_topic, CFG.trades_topic, "elsewhere")}
    market = Market()
    mat = Materializer(market, CFG, clock=lambda: 1)
    mat.owned_partitions = {1}  # the records below are on partition 0

    mat.handle(
        [
            record(CFG.book_topic, 0, book),
            record(CFG.trades_topic, 0, trade),
            record("elsewhere", 0, book),
        ]
    )

    assert {t: consumed(t) - n for t, n in before.items()} == {
        CFG.book_topic: 1,
        CFG.trades_topic: 1,
        "elsewhere": 1,
    }
    assert mat.counters.consumed == 3 and mat.counters.applied == 0
    assert market.book(STREAM) is None and mat.positions == {}
