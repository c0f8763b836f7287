"""Fault: slow consumers under load (issue "Reliability", 7; docs/protocol.md §4.6).

One client stops reading until the gateway marks it behind, then reads again: it
must get ``status resync`` then a fresh snapshot for every subscription, and stay
exact afterwards. Another never reads: it is closed with 1013. Both show in the
metrics ``slow_consumer_resyncs_total`` and ``slow_consumer_disconnects_total``.
The gateway runs in-process (``tests/integration/helpers.py``); Kafka is real.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from typing import Any

import orjson
import pytest
from mdgw_client import MarketDataClient
from websockets.asyncio.client import connect

from mdgw.config import Config
from tests.faults.procs import await_until, metric_total
from tests.integration.helpers import gateway_with_feed

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(120)]

SYMBOLS = ["BTC-USD", "ETH-USD", "SOL-USD"]


def _tiny_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: tiny window
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_slow_consumer_is_resynced_then_exact_and_stuck_one_closed(config: Config) -> None:
    cfg = dataclasses.replace(
        config,
        gateway=dataclasses.replace(
            config.gateway,
            high_water_bytes=64 * 1024,
            slow_timeout=6.0,
            compression=False,
            # the buffer path is under test: a verifying depth-0 client on a shared box
            # may trail by more than the default 500 ms without being stuck
            max_lag_ms=5_000,
        ),
    )
    # 600 updates/s: after its resync the verifying depth-0 client (12 views, in this
    # process beside the gateway) must be able to keep up on a shared 2-core box
    async with gateway_with_feed(cfg, rate=600) as (rt, url, sim):
        base = f"http://127.0.0.1:{rt.port}"
        resyncs0 = await asyncio.to_thread(metric_total, base, "slow_consumer_resyncs_total")
        closes0 = await asyncio.to_thread(metric_total, base, "slow_consumer_disconnects_total")
        streams = rt.market.streams()
        # every view must have had a snapshot before the clients subscribe: one that was
        # still waiting for its first is sent that snapshot, not a resync
        await await_until(
            lambda: all((b := rt.market.book(s)) is not None and not b.stale for s in streams),
            20,
            what="every book whole before subscribing",
        )

        # the slow-but-recovering client: verifying, but it does not read for a while
        known = set(rt.hub.sessions)
        slow = MarketDataClient(
            url, fmt="json", reconnect=False, sock=_tiny_socket(rt.port), max_queue=4
        )
        await slow.connect()
        assert slow.ws is not None
        slow.ws.transport.pause_reading()
        await slow.subscribe("book", streams, depth=0)
        await slow.subscribe("aggregated_book", SYMBOLS, depth=0)
        await slow.subscribe("trades", streams)
        await asyncio.sleep(0.2)
        (session,) = set(rt.hub.sessions) - known

        # the stuck client: never reads at all
        known = set(rt.hub.sessions)
        stuck = await connect(
            url + "?format=json", sock=_tiny_socket(rt.port), max_size=None, max_queue=1
        )
        stuck.transport.pause_reading()
        sub = {"op": "subscribe", "id": 1, "channel": "book", "symbols": streams, "depth": 0}
        await stuck.send(orjson.dumps(sub).decode())
        await asyncio.sleep(0.2)
        (stuck_session,) = set(rt.hub.sessions) - known

        t0 = time.monotonic()
        await await_until(lambda: session.behind_since is not None, 40, what="slow client behind")
        behind_s = time.monotonic() - t0
        await asyncio.sleep(0.5)  # some of its deltas are dropped now
        dropped = session.dropped
        assert dropped > 0

        # it reads again: every subscription gets `status resync`, then a snapshot
        log: list[tuple[str, str, Any]] = []

        async def consume() -> None:
            async for ev in slow.events():
                if ev.kind in ("book", "status", "break", "checksum_failure"):
                    kind = ev.data.get("status") if ev.kind == "status" else ev.data.get("type")
                    log.append((ev.kind, ev.key, kind))

        task = asyncio.create_task(consume())
        t_resume = time.monotonic()
        slow.ws.transport.resume_reading()
        await await_until(lambda: session.resyncs >= 1, 30, what="slow client resynced")
        resync_s = time.monotonic() - t_resume
        n_views = len(streams) + len(SYMBOLS)
        await await_until(
            lambda: all((b := slow.book(k)) is not None and b.valid for k in slow.books),
            20,
            what="every book of the resynced client valid",
        )
        await asyncio.sleep(3.0)  # and it stays exact under load
        await await_until(
            lambda: stuck_session.closing, 20, what="the stuck client closed as a slow consumer"
        )
        resyncs = await asyncio.to_thread(metric_total, base, "slow_consumer_resyncs_total")
        closes = await asyncio.to_thread(metric_total, base, "slow_consumer_disconnects_total")

        sim.stop()
        await asyncio.sleep(1.0)
        for stream in streams:
            local, server = slow.book(stream), rt.market.book(stream)
            assert local is not None and server is not None
            assert local.sequence == server.sequence, stream
            assert local.top_bids() == server.bids() and local.top_asks() == server.asks()
        for symbol in SYMBOLS:
            local, agg = slow.book(f"agg:{symbol}"), rt.market.aggregated(symbol)
            assert local is not None and agg is not None and local.valid
            assert local.top_bids() == [(p, q) for p, q, *_ in agg.bids(0)], symbol
        task.cancel()
        await slow.close()
        stuck.transport.abort()

        statuses = [(k, key) for kind, key, k in log if kind == "status"]
        print(
            f"\n[slow consumer] behind after {behind_s:.2f}s of not reading ({dropped} "
            f"deltas dropped by then); resynced {resync_s:.2f}s after it read again; "
            f"statuses {len(statuses)} for {n_views} views; metrics resyncs "
            f"+{resyncs - resyncs0:.0f} disconnects +{closes - closes0:.0f}; client breaks "
            f"{slow.sequence_breaks} checksum failures {slow.checksum_failures}"
        )
        assert resyncs - resyncs0 >= 1
        assert closes - closes0 >= 1
        assert stuck_session not in rt.hub.sessions
        assert slow.checksum_failures == 0 and slow.sequence_breaks == 0
        assert session in rt.hub.sessions and not session.closing
        _assert_resync_then_snapshot(log, streams, SYMBOLS)


def _assert_resync_then_snapshot(
    log: list[tuple[str, str, Any]], streams: list[str], symbols: list[str]
) -> None:
    """For every view: told `behind`, then a `resync` status, and after it a snapshot
    before any update."""
    views = [(s, s) for s in streams] + [(s, f":{s}") for s in symbols]
    for key, status_key in views:  # book events carry the subscribed name, statuses EX:SYM
        seen = [(kind, k) for kind, k2, k in log if k2 == (status_key if kind == "status" else key)]
        marks = [i for i, (kind, k) in enumerate(seen) if kind == "status" and k == "resync"]
        assert marks, f"{key}: no `status resync` in {seen[:5]}"
        told = [i for i, (kind, k) in enumerate(seen) if kind == "status" and k == "behind"]
        assert told and told[0] < marks[0], f"{key}: not told `behind` before its resync"
        after = [k for kind, k in seen[marks[-1] + 1 :] if kind == "book"]
        assert after and after[0].endswith("_snapshot"), f"{key}: after resync {after[:3]}"
