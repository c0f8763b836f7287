"""bench.memory_gateway: the real gateway on the in-memory broker, fed by the simulator in
its process, streams exact books to a client (no Kafka needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from mdgw_client import MarketDataClient

from bench.fanout import free_port

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
