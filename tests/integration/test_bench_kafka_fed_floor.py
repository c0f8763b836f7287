"""bench.latency_floor --feed kafka against the real broker: the floor behind Kafka sends
one frame per book record of its streams, stamped with the producer's ingest_ts, and
ignores rate lines (its rate is its producer's)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time

import orjson
import pytest
import websockets

from bench import procs
from bench.fanout import free_port
from core.types import BookUpdate, Exchange
from mdgw.config import KafkaConfig, load_config
from mdgw.kafka.sink import KafkaSink
from schemas import codec

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STREAM = "KRAKEN:BTC-USD"


def record(symbol: str, ingest_ns: int, sequence: int) -> bytes:
    u = BookUpdate(Exchange.KRAKEN, symbol, 1, sequence, [(1.0, 2.0)], [], False, sequence - 1)
    return codec.encode(dataclasses.replace(u, ingest_ns=ingest_ns))


async def test_the_kafka_fed_floor_sends_each_record_with_its_producers_stamp(
    kafka_cfg: KafkaConfig,
) -> None:
    port = free_port()
    env = procs.kafka_env(dataclasses.replace(load_config(env={}), kafka=kafka_cfg))
    argv = [sys.executable, "-m", "bench.latency_floor", "--port", str(port)]
    argv += ["--streams", f"{STREAM},KRAKEN:ETH-USD", "--feed", "kafka"]
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    sink = KafkaSink(kafka_cfg)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        if line.strip() != b"ready":
            proc.wait(30)
            pytest.fail(f"the floor did not start: {line!r} {proc.stderr.read().decode()[-3000:]}")
        proc.stdin.write(b"5000\n")  # a rate line: ignored, nothing is made up
        proc.stdin.flush()
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.send(orjson.dumps({"op": "subscribe", "id": 1, "symbols": [STREAM]}).decode())
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "subscribed" and reply["symbols"] == [STREAM]
            stamps = [time.time_ns() - 1_000_000 * i for i in range(3)]
            for i, stamp in enumerate(stamps):
                sink.send(kafka_cfg.book_topic, STREAM, record("BTC-USD", stamp, i + 2))
            sink.send(kafka_cfg.book_topic, "KRAKEN:ETH-USD", record("ETH-USD", 1, 9))
            sink.send(kafka_cfg.book_topic, STREAM, b"\xff\x00 not protobuf")
            assert sink.flush(30) == 0
            got = []
            while len(got) < len(stamps):
                frame = orjson.loads(await asyncio.wait_for(ws.recv(), 20))
                assert frame["type"] == "order_book_update"
                got.append(frame["ingest_ts"])
            assert sorted(got) == sorted(stamps)
            with pytest.raises(TimeoutError):  # no frame of its own making
                await asyncio.wait_for(ws.recv(), 1.0)
        out, err = await asyncio.to_thread(proc.communicate, b"?\n", 30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    counters = [orjson.loads(x) for x in out.splitlines() if x.strip()][-1]
    assert counters["produced"] == 4 and counters["sent"] == 3  # ETH-USD: no subscriber
    assert counters["unknown"] == 1, err.decode(errors="replace")
