"""The materializer's statistics checkpoints: rounds per trades partition, their order,
and a restart that restores them and skips the trades they already hold."""

from __future__ import annotations

import dataclasses

from core.market import Market
from core.stats import SECOND_NS
from core.types import Exchange, Trade
from mdgw.config import KafkaConfig
from mdgw.kafka.headers import Headers
from mdgw.kafka.sink import MemorySink
from mdgw.kafka.source import Record
from mdgw.materializer import Materializer
from schemas import codec
from schemas.stats_codec import StatsRecord, decode_stats

T0 = 1_764_000_000 * SECOND_NS
CFG = KafkaConfig()


class PartitionSink(MemorySink):
    """MemorySink that also keeps the explicit partition of each record."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: list[int | None] = []

    def send(
        self,
        topic: str,
        key: str,
        value: bytes,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        super().send(topic, key, value, headers)
        self.partitions.append(partition)


def rec(exchange: Exchange, symbol: str, partition: int, offset: int, price: float) -> Record:
    t = Trade(exchange, symbol, T0 + offset * SECOND_NS, str(offset), price, 1.5, "sell", 0)
    value = codec.encode(t)
    return Record(CFG.trades_topic, partition, offset, t.stream.encode(), value, None, 0, 0)


def materializer(clock: list[int]) -> tuple[Materializer, PartitionSink]:
    sink = PartitionSink()
    mat = Materializer(
        Market(), CFG, snapshot_sink=sink, checkpoint_every_ms=1000, clock=lambda: clock[0]
    )
    mat.enable_stats_checkpoints(4)
    return mat, sink


def written(sink: PartitionSink) -> list[tuple[str, int | None, StatsRecord]]:
    out = []
    for (topic, key, value, _h), part in zip(sink.records, sink.partitions, strict=True):
        if topic == CFG.stats_topic:
            assert value is not None
            out.append((str(key), part, decode_stats(value)))
    return out


TAPE = [
    rec(Exchange.KRAKEN, "BTC-USD", 5, 0, 100.0),
    rec(Exchange.BINANCE, "BTC-USDT", 5, 1, 101.0),
    rec(Exchange.KRAKEN, "BTC-USD", 5, 2, 99.0),
    rec(Exchange.KRAKEN, "ETH-USD", 2, 0, 3000.0),
]


def test_rounds_are_written_per_partition_at_the_checkpoint_interval() -> None:
    clock = [T0]
    mat, sink = materializer(clock)
    mat.handle(TAPE[:2])
    assert written(sink) == []  # not due yet
    clock[0] += SECOND_NS
    mat.handle(TAPE[2:3])
    got = written(sink)
    assert [(k, p, r.trades_partition, r.trades_offset) for k, p, r in got] == [
        ("BINANCE:BTC-USDT", 1, 5, 3),
        ("KRAKEN:BTC-USD", 1, 5, 3),
    ]
    assert got[1][2].checkpoint.buckets[0][1].count == 2
    mat.handle(TAPE[3:])  # another partition: due as well (its clock starts with the writer)
    assert [(k, p, r.trades_offset) for k, p, r in written(sink)[2:]] == [("KRAKEN:ETH-USD", 2, 1)]
    clock[0] += SECOND_NS // 2
    mat.handle([rec(Exchange.COINBASE, "BTC-USD", 5, 3, 98.0)])  # partition 5 not due again
    assert len(written(sink)) == 3
    mat.flush_snapshots()  # shutdown: every partition with news
    got = written(sink)[3:]
    assert [(k, r.trades_offset) for k, _p, r in got] == [
        ("COINBASE:BTC-USD", 4),  # new on the topic: first in its round
        ("BINANCE:BTC-USDT", 4),
        ("KRAKEN:BTC-USD", 4),
    ]
    mat.flush_snapshots()
    assert len(written(sink)) == 6  # nothing new: nothing written


def test_a_restart_restores_and_skips_what_the_checkpoints_hold() -> None:
    clock = [T0]
    mat, sink = materializer(clock)
    mat.handle(TAPE)
    mat.flush_snapshots()
    tail = [
        rec(Exchange.KRAKEN, "BTC-USD", 5, 3, 105.0),
        rec(Exchange.KRAKEN, "ETH-USD", 2, 1, 1.0),
    ]
    mat.handle(tail)
    now = T0 + 10 * SECOND_NS

    fresh = Materializer(Market(), CFG, clock=lambda: clock[0])
    records = {k: r for k, _p, r in written(sink)}
    resume = fresh.load_stats(records)
    assert resume.starts == {5: 3, 2: 1} and not resume.full
    # a consumer starting earlier than a stream's checkpoint must not count twice
    fresh.handle(TAPE + tail)
    assert fresh.counters.rereads == len(TAPE)
    for stream in mat.market.streams():
        assert fresh.market.stats(stream, now) == mat.market.stats(stream, now)
        assert fresh.market.trades(stream) == mat.market.trades(stream)
    assert fresh.trade_partitions == mat.trade_partitions


def test_load_only_the_partitions_asked_for() -> None:
    clock = [T0]
    mat, sink = materializer(clock)
    mat.handle(TAPE)
    mat.flush_snapshots()
    fresh = Materializer(Market(), CFG)
    resume = fresh.load_stats({k: r for k, _p, r in written(sink)}, partitions={2})
    assert resume.starts == {2: 1} and fresh.market.streams() == ["KRAKEN:ETH-USD"]


def test_an_unusable_checkpoint_reads_its_partition_in_full() -> None:
    clock = [T0]
    mat, sink = materializer(clock)
    mat.handle(TAPE)
    mat.flush_snapshots()
    records = {k: r for k, _p, r in written(sink)}
    records["KRAKEN:BTC-USD"].checkpoint.bucket_ns = 2 * SECOND_NS  # another process's size
    fresh = Materializer(Market(), CFG)
    resume = fresh.load_stats(records)
    assert resume.full == {5} and "KRAKEN:BTC-USD" not in resume.covered
    assert resume.covered["BINANCE:BTC-USDT"] == (5, 3)


def test_readers_never_write() -> None:
    mat = Materializer(Market(), CFG)  # the API: no snapshot sink
    mat.enable_stats_checkpoints(4)
    assert mat.stats_writer is None
    mat.handle(TAPE)
    mat.flush_snapshots()


def test_one_round_per_batch_so_rounds_spread_out() -> None:
    clock = [T0]
    mat, sink = materializer(clock)
    clock[0] += SECOND_NS
    mat.handle(TAPE)  # both partitions due at once: only one round now
    assert [r.trades_partition for _k, _p, r in written(sink)] == [2]
    mat.handle([rec(Exchange.KRAKEN, "BTC-USD", 5, 3, 100.0)])  # the other one next
    assert [(r.trades_partition, r.trades_offset) for _k, _p, r in written(sink)][1:] == [
        (5, 4),
        (5, 4),
    ]


def test_restore_respects_max_streams() -> None:
    clock = [T0]
    mat, sink = materializer(clock)
    mat.handle(TAPE)
    mat.flush_snapshots()
    capped = Materializer(Market(), dataclasses.replace(CFG, max_streams=2))
    resume = capped.load_stats({k: r for k, _p, r in written(sink)})
    assert len(capped.market.streams()) == 2 and len(resume.covered) == 2
