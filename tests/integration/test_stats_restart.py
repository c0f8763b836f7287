"""A restart restores the 24 h statistics from their checkpoints and reads only the
trades after them; the result equals a full recomputation over the trades topic.

History comes from the simulator's backfill (2 h of trades); a real gateway reads it
all (no checkpoint yet) and writes the checkpoints when it stops; more trades arrive
after; then a new gateway and a new API state store start from checkpoint + tail.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from api.state import KafkaStateStore
from core.market import Market
from core.types import Statistics, Trade
from gateway.app import start_gateway
from mdgw.config import Config
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import read_to_end
from producers.backfill import run_backfill
from schemas import codec
from tests.integration.helpers import wait_for

pytestmark = [pytest.mark.kafka]

FIELDS = ("open", "high", "low", "last", "volume", "quote_volume", "vwap", "trade_count")


def figures(s: Statistics | None) -> tuple:
    assert s is not None
    return tuple(getattr(s, f) for f in FIELDS)


def recomputed(config: Config) -> Market:
    """Every trade of the topic folded into a fresh Market: the full recomputation."""
    market = Market()
    for rec in read_to_end(config.kafka, config.kafka.trades_topic):
        trade = codec.decode(rec.value or b"")
        assert isinstance(trade, Trade)
        market.apply_trade(trade, 0)
    return market


def assert_same_stats(got: Market, full: Market) -> None:
    now = time.time_ns()
    assert got.streams() == full.streams() and len(full.streams()) == 9
    for stream in full.streams():
        assert figures(got.stats(stream, now)) == figures(full.stats(stream, now)), stream
        assert got.trades(stream, 1000) == full.trades(stream, 1000), stream
    for symbol in full.symbols():
        assert figures(got.symbol_stats(symbol, now)) == figures(full.symbol_stats(symbol, now))


async def test_restart_from_checkpoints_reads_only_the_tail_and_equals_a_recomputation(
    config: Config,
) -> None:
    k = config.kafka
    sim = dataclasses.replace(config.simulator, trade_ratio=1.0)
    history = run_backfill(sim, KafkaSink(k), k, hours=2.0, trade_rate=2.0)
    assert history.trades > 10_000 and not history.undelivered

    writer = await start_gateway(config)
    await wait_for(writer.server.is_ready, timeout=60)
    assert writer.materializer.counters.applied >= history.trades
    await writer.stop()  # flushes a round of checkpoints
    assert writer.materializer.stats_writer is not None
    assert writer.materializer.stats_writer.records_written >= 9

    tail = run_backfill(  # trades after the checkpoints, sequences above the history's
        dataclasses.replace(sim, seed=5), KafkaSink(k), k, hours=0.02, trade_rate=3.0
    )
    assert 100 < tail.trades < 500
    full = recomputed(config)

    store = KafkaStateStore(config)
    await store.start()
    try:
        await wait_for(lambda: store.not_ready_reason() is None, timeout=60)
        result = store.bootstrap_result
        assert result is not None and result.stats_restored == 9
        assert result.trades_to_read == tail.trades
        assert_same_stats(store.market, full)
    finally:
        await store.stop()

    restarted = await start_gateway(config)
    try:
        await wait_for(restarted.server.is_ready, timeout=60)
        assert restarted.materializer.counters.applied == tail.trades + 9  # + the books
        assert_same_stats(restarted.market, full)
    finally:
        await restarted.stop()


async def test_without_checkpoints_the_whole_window_is_read(config: Config) -> None:
    k = config.kafka
    sim = dataclasses.replace(config.simulator, trade_ratio=1.0)
    history = run_backfill(sim, KafkaSink(k), k, hours=0.5, trade_rate=2.0)
    old = dataclasses.replace(
        config, kafka=dataclasses.replace(k, stats_topic=k.stats_topic + ".x")
    )
    store = KafkaStateStore(old)  # an older deployment: no statistics topic at all
    await store.start()
    try:
        await wait_for(lambda: store.not_ready_reason() is None, timeout=60)
        result = store.bootstrap_result
        assert result is not None and result.stats_restored == 0
        assert result.trades_to_read == history.trades
        assert_same_stats(store.market, recomputed(config))
    finally:
        await store.stop()
