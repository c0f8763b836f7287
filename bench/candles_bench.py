"""A day of 1 m candles over REST: through the statistics checkpoints vs re-reading trades.

    python -m bench.candles_bench                       # 24 h at 20 trades/s (~1.7 M trades)
    python -m bench.candles_bench --hours 2 --trade-rate 50

1. Fill (once; reused while the topic holds it): ``mdgw simulate --backfill-hours H
   --trade-rate R`` into ``<prefix>.marketdata.*`` (bench/restart_bench.py's helper).
2. A gateway (in process) reads it and writes the statistics checkpoints (a round
   is flushed when it stops).
3. The API's state store starts as ``mdgw api`` does: it restores every stream from
   its checkpoint and reads only the trades after it.
4. With checkpoints: the day of 1 m candles of one stream (1,440 intervals: two
   requests of ``limit`` 1000 and 440) from the statistics held. No Kafka read.
5. Without: the same candles from that stream's trades read from the trades topic
   (what the route does for windows older than the statistics), timed per request.
6. Both answers must be identical, candle for candle.

Writes ``bench/results/candles.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from typing import Any

from api.candles import from_statistics, from_trades, read_trades, window
from api.state import KafkaStateStore
from bench.common import write_result
from bench.restart_bench import fill, prefixed
from core.stats import MINUTE_NS
from gateway.app import start_gateway
from mdgw.config import Config
from mdgw.kafka.admin import create_topics

STREAM = "BINANCE:BTC-USDT"


async def write_checkpoints(cfg: Config) -> dict[str, Any]:
    gw_cfg = dataclasses.replace(
        cfg,
        gateway=dataclasses.replace(
            cfg.gateway, host="127.0.0.1", port=0, group_id=f"{cfg.kafka.client_id}-gw"
        ),
    )
    t0 = time.monotonic()
    rt = await start_gateway(gw_cfg)
    while not rt.server.is_ready():
        await asyncio.sleep(0.2)
    ready = time.monotonic() - t0
    await rt.stop(timeout=30)  # flushes a round of statistics checkpoints
    return {"gateway_ready_s": round(ready, 2)}


async def api_store(cfg: Config) -> tuple[KafkaStateStore, float]:
    api_cfg = dataclasses.replace(
        cfg, api=dataclasses.replace(cfg.api, group_id=f"{cfg.kafka.client_id}-api")
    )
    store = KafkaStateStore(api_cfg)
    t0 = time.monotonic()
    await store.start()
    while store.not_ready_reason() is not None:
        await asyncio.sleep(0.05)
    return store, time.monotonic() - t0


async def run(cfg: Config) -> dict[str, Any]:
    out: dict[str, Any] = await write_checkpoints(cfg)
    store, ready_s = await api_store(cfg)
    try:
        result = store.bootstrap_result
        assert result is not None
        out["api_ready_s"] = round(ready_s, 2)
        out["api_checkpoints_restored"] = result.stats_restored
        out["api_trades_read_at_start"] = result.trades_to_read
        state = store.market.state(STREAM)
        assert state is not None
        # the day that starts where the API's statistics surely hold every trade
        first = store.trades_complete_from_ns // MINUTE_NS + 1
        day = [window("1m", first * MINUTE_NS, None, 1000, 0)]
        day.append(
            window("1m", (first + 1000) * MINUTE_NS, (first + 1440) * MINUTE_NS - 1, 1000, 0)
        )
        # with the checkpoints: the statistics held (what the route does for the last 24 h)
        complete = store.trades_complete_from_ns
        t0 = time.perf_counter()
        held = [from_statistics(state.stats, w, complete) for w in day]
        with_s = time.perf_counter() - t0
        assert all(h is not None for h in held)
        # without: each request reads its window of the stream's trades from Kafka
        partition = store._materializer.trade_partitions[STREAM]
        t0 = time.perf_counter()
        read, records = [], 0
        for w in day:
            trades, n = read_trades(cfg.kafka, STREAM, partition, w.from_ns, w.to_ns)
            records += n
            read.append(from_trades(trades, w, state.stats.bucket_ns))
        without_s = time.perf_counter() - t0
        same = held == read
        n_candles = sum(len(h or []) for h in held)
        out.update(
            stream=STREAM,
            requests=len(day),
            candles=n_candles,
            identical=same,
            with_checkpoints={"seconds": round(with_s, 4), "kafka_records_read": 0},
            without_checkpoints={"seconds": round(without_s, 2), "kafka_records_read": records},
        )
        print(out, flush=True)
        assert same, "the two sources differ"
        return out
    finally:
        await store.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--trade-rate", type=float, default=20.0, help="trades/s, all streams")
    ap.add_argument("--prefix", default="bench-candles")
    args = ap.parse_args()
    cfg = prefixed(args.prefix, "")
    create_topics(cfg.kafka)
    history = fill(cfg, args.hours, args.trade_rate)
    data = asyncio.run(run(cfg))
    path = write_result(
        "candles", {"hours": args.hours, "trade_rate": args.trade_rate, **history, **data}
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
