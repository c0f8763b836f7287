"""Candles end to end: simulator -> real Kafka -> gateway -> clients, JSON and protobuf.

For 12 s each client holds books (checked for sequence breaks), the trades of every
stream and their 1 s and 1 m candles. The closed candles must equal a naive
aggregation of the trades the same client received, and the REST route's two
sources (the trades topic, the statistics held in memory) must give the very same
candles.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import pytest
from mdgw_client import MarketDataClient

from api.candles import from_statistics, from_trades, read_trades, window
from core.candles import INTERVALS
from core.stats import MINUTE_NS, SECOND_NS
from tests.integration.helpers import gateway_with_feed

pytestmark = [pytest.mark.kafka]

STREAMS = ["BINANCE:BTC-USDT", "KRAKEN:BTC-USD", "COINBASE:ETH-USD"]


def naive(trades: list[dict[str, Any]], interval: str) -> dict[int, tuple]:
    """Candle open_time -> (open, high, low, close, volume, quote_volume, trades), straight
    from the definition: per part (minute, or second for 1s) in arrival order, parts in
    time order."""
    width = INTERVALS[interval]
    part = MINUTE_NS if width % MINUTE_NS == 0 else SECOND_NS
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in trades:
        groups[t["timestamp"] // width * width].append(t)
    out = {}
    for start, ts in groups.items():
        parts: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for t in ts:
            parts[t["timestamp"] // part].append(t)
        ordered = [parts[p] for p in sorted(parts)]
        first = min(ts, key=lambda t: t["timestamp"])
        last = max(reversed(ts), key=lambda t: t["timestamp"])
        out[start] = (
            first["price"],
            max(t["price"] for t in ts),
            min(t["price"] for t in ts),
            last["price"],
            sum(sum(t["quantity"] for t in p) for p in ordered),
            sum(sum(t["price"] * t["quantity"] for t in p) for p in ordered),
            len(ts),
        )
    return out


def values(c: dict[str, Any]) -> tuple:
    keys = ("open", "high", "low", "close", "volume", "quote_volume", "trades")
    return tuple(c[k] for k in keys)


async def test_candles_equal_the_trades_in_both_formats(config) -> None:
    async with gateway_with_feed(config, rate=600) as (rt, url, sim):
        clients = {}
        for fmt in ("json", "protobuf"):
            c = MarketDataClient(url, fmt=fmt)
            await c.connect()
            await c.subscribe("book", STREAMS, depth=20)
            await c.subscribe("trades", STREAMS)
            for interval in ("1s", "1m"):
                await c.subscribe("candles", STREAMS, interval=interval)
            clients[fmt] = c
        seen: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt in clients}

        async def run(fmt: str, c: MarketDataClient) -> None:
            async for ev in c.events():
                if ev.kind in ("trade", "candle"):
                    seen[fmt].append(ev.data)

        tasks = [asyncio.create_task(run(f, c)) for f, c in clients.items()]
        await asyncio.sleep(12.0)
        sim.stop()
        await asyncio.sleep(4.0)  # the last 1 s intervals close on the timer
        for t in tasks:
            t.cancel()
        for fmt, c in clients.items():
            assert c.sequence_breaks == 0 and c.checksum_failures == 0, fmt
            msgs = seen[fmt]
            for stream in STREAMS:
                ex, sym = stream.split(":")
                mine = [m for m in msgs if m["exchange"] == ex and m["symbol"] == sym]
                trades = [m for m in mine if m["type"] == "trade"]
                assert len(trades) > 20, (fmt, stream)
                since = trades[0]["timestamp"]
                for interval in ("1s", "1m"):
                    candles = [
                        m for m in mine if m["type"] == "candle" and m["interval"] == interval
                    ]
                    assert candles and not candles[0]["closed"], (fmt, stream, interval)
                    want = naive(trades, interval)
                    closed = [m for m in candles if m["closed"]]
                    # every interval that began after this client saw trades is whole here
                    checked = [m for m in closed if m["open_time"] > since]
                    if interval == "1s":
                        assert len(checked) >= 8, (fmt, stream, len(checked))
                    for m in checked:
                        assert values(m) == want[m["open_time"]], (fmt, stream, m)
                    assert len({m["open_time"] for m in closed}) == len(closed)  # once each
                    # each interval with trades was closed once (1 s ones: all are over)
                    if interval == "1s":
                        starts = {s for s in want if s > since}
                        assert starts <= {m["open_time"] for m in closed}, (fmt, stream)
                    # every candle message but the closing ones came with a trade or on subscribe
                    opened = [m for m in candles if not m["closed"]]
                    assert len(opened) == 1 + len(trades), (fmt, stream, interval)
        # the REST route's two sources agree with the channel, to the last bit
        json_msgs = seen["json"]
        for stream in STREAMS:
            ex, sym = stream.split(":")
            closed_1s = {
                m["open_time"]: values(m)
                for m in json_msgs
                if m["type"] == "candle"
                and m["exchange"] == ex
                and m["symbol"] == sym
                and m["closed"]
                and m["interval"] == "1s"
            }
            w = window("1s", min(closed_1s), max(closed_1s), 1000, 0)
            partition = rt.materializer.trade_partitions[stream]
            topic, _read = await asyncio.to_thread(
                read_trades, config.kafka, stream, partition, w.from_ns, w.to_ns
            )
            rest = {i * SECOND_NS: b for i, b in from_trades(topic, w, MINUTE_NS)}
            for start, v in closed_1s.items():
                b = rest[start]
                assert v == (b.open, b.high, b.low, b.close, b.volume, b.quote_volume, b.count)
            state = rt.market.state(stream)
            assert state is not None
            wm = window("1m", min(closed_1s), None, 10, 0)
            mem = from_statistics(state.stats, wm)
            topic_m, _ = await asyncio.to_thread(
                read_trades, config.kafka, stream, partition, wm.from_ns, wm.to_ns
            )
            assert mem is not None and mem == from_trades(topic_m, wm, MINUTE_NS)
        for c in clients.values():
            await c.close()
