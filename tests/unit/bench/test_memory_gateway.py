"""bench.memory_gateway: the real gateway on the in-memory broker, fed by the simulator in
its process, streams exact books to a client (no Kafka needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
from mdgw_client import MarketDataClient

from bench.fanout import free_port
from bench.memory_gateway import parse_rate

STREAM = "BINANCE:BTC-USDT"


async def test_it_streams_exact_books_and_stops_at_eof() -> None:
    port = free_port()
    env = dict(os.environ, MDGW_TELEMETRY_LOG_LEVEL="WARNING", MDGW_TELEMETRY_TRACING="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.memory_gateway", "--port", str(port), "--symbols", "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        assert line.split() == [b"ready", str(port).encode()]
        async with MarketDataClient(f"ws://127.0.0.1:{port}/ws", fmt="json") as c:
            await c.subscribe("book", [STREAM], depth=20)
            # lines that are not rates are reported and skipped; then a feed (a new
            # simulator run, snapshots first)
            proc.stdin.write(b"fast\nnan\n200\n")
            proc.stdin.flush()
            books = 0
            async for ev in c.events():
                books += ev.kind == "book"
                if books >= 30:
                    break
            local = c.book(STREAM)
            assert local is not None and local.sequence > 0
            assert c.checksum_failures == 0 and c.sequence_breaks == 0
        proc.stdin.write(b"0\n")
        proc.stdin.close()  # EOF: the feed and the gateway stop, the process exits
        assert await asyncio.wait_for(asyncio.to_thread(proc.wait), 30) == 0
        err = proc.stderr.read()
        assert b"not a rate, ignored: b'fast\\n'" in err
        assert b"not a rate, ignored: b'nan\\n'" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("line", "rate"),
    [(b"200\n", 200.0), (b" 75.5 \n", 75.5), (b"0\n", 0.0), (b"-1\n", -1.0)],
)
def test_a_rate_line_is_a_number(line: bytes, rate: float) -> None:
    assert parse_rate(line) == rate


@pytest.mark.parametrize("line", [b"fast\n", b"nan\n", b"inf\n", b"1e999\n", b"\xff\n"])
def test_anything_else_is_no_rate(line: bytes) -> None:
    assert parse_rate(line) is None
