"""Time travel: replay a past window over WebSocket and compare with what a live client saw.

The gateway runs in-process (``tests/integration/helpers.py``); Kafka is real.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import orjson
import pytest
from mdgw_client import MarketDataClient
from websockets.asyncio.client import connect

from tests.integration.helpers import gateway_with_feed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

STREAM = "BINANCE:BTC-USDT"


def travel_config(config):
    gw = dataclasses.replace(config.gateway, checkpoint_every_ms=1000, snapshot_every_ms=1000)
    return dataclasses.replace(config, gateway=gw)


async def record_live(
    client: MarketDataClient, seconds: float, seen: dict[int, tuple]
) -> list[tuple[int, int]]:
    """Book state per sequence as the live client had it; returns (ingest_ns, seq) stamps."""
    stamps: list[tuple[int, int]] = []

    async def run() -> None:
        async for ev in client.events():
            if ev.kind == "book" and ev.key == STREAM:
                book = client.book(STREAM)
                seen[book.sequence] = (book.top_bids(), book.top_asks())
                stamps.append((ev.data["ingest_ts"], book.sequence))

    try:
        await asyncio.wait_for(run(), seconds)
    except TimeoutError:
        pass
    return stamps


async def test_replayed_window_equals_what_a_live_client_saw(config) -> None:
    async with gateway_with_feed(travel_config(config), rate=300) as (_rt, url, _sim):
        live = MarketDataClient(url, fmt="json")
        await live.connect()
        await live.subscribe("book", [STREAM], depth=20)
        seen: dict[int, tuple] = {}
        stamps = await record_live(live, 9.0, seen)
        assert live.checksum_failures == 0 and live.sequence_breaks == 0
        start = stamps[len(stamps) // 3][0]
        end = stamps[2 * len(stamps) // 3][0]

        c = MarketDataClient(url, fmt="protobuf")
        await c.connect()
        t0 = time.monotonic()
        rid = await c.replay("book", [STREAM], start, end, depth=20, speed=0)
        first_at: float | None = None
        replayed: list[tuple[int, str, tuple]] = []  # (sequence, type, levels) per message
        complete = False

        async def run() -> None:
            nonlocal first_at, complete
            async for ev in c.events():
                if ev.kind == "book" and ev.key.startswith(f"replay:{rid}:"):
                    first_at = first_at or time.monotonic()
                    assert ev.data.get("replay") is True
                    book = c.books[ev.key]
                    levels = (book.top_bids(), book.top_asks())
                    replayed.append((book.sequence, ev.data["type"], levels))
                elif ev.kind == "replay_complete":
                    complete = True
                    return

        await asyncio.wait_for(run(), 30)
        assert complete
        assert c.checksum_failures == 0 and c.sequence_breaks == 0
        # The replay opens with the book as it was at `start` (a snapshot: the live
        # client's state at that message), then one update per message the live client
        # got in (start, end]: the same sequences in the same order, every state equal.
        window = [s for ts, s in stamps if start < ts <= end]
        (first_seq, first_type, first_levels), *updates = replayed
        assert first_type.endswith("_snapshot") and first_levels == seen[first_seq]
        assert [seq for seq, _, _ in updates] == window
        for seq, kind, levels in updates:
            assert kind.endswith("_update"), (seq, kind)
            assert levels == seen[seq], seq
        print(
            f"replay: first message after {((first_at or t0) - t0) * 1000:.1f} ms, "
            f"{len(replayed)} states compared, all of the window's {len(window)}"
        )
        await c.close()
        await live.close()


async def test_replay_to_live_joins_without_gap(config) -> None:
    async with gateway_with_feed(travel_config(config), rate=300) as (rt, url, _sim):
        await asyncio.sleep(4)
        c = MarketDataClient(url, fmt="json")
        await c.connect()
        start = time.time_ns() - 2_500_000_000
        await c.replay("book", [STREAM], start, "live", depth=20, speed=0)
        await c.replay("trades", [STREAM], start, "live")
        kinds: dict[str, int] = {}
        live_after = 0

        async def run() -> None:
            nonlocal live_after
            async for ev in c.events():
                kinds[ev.kind] = kinds.get(ev.kind, 0) + 1
                if ev.kind == "book" and ev.key == STREAM:
                    live_after += 1

        try:
            await asyncio.wait_for(run(), 6)
        except TimeoutError:
            pass
        assert kinds.get("replay_complete") == 2, kinds
        assert live_after > 10, kinds
        assert c.sequence_breaks == 0 and c.checksum_failures == 0
        book = c.book(STREAM)
        assert book is not None and book.valid
        await asyncio.sleep(0.5)
        server = rt.market.book(STREAM)
        assert book.sequence <= server.sequence
        await c.close()


async def test_cancel_limits_and_retention_errors(config) -> None:
    async with gateway_with_feed(travel_config(config), rate=200) as (_rt, url, _sim):
        await asyncio.sleep(3)
        async with connect(url + "?format=json") as ws:

            async def reply(predicate) -> dict:
                while True:
                    msg = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
                    if predicate(msg):
                        return msg

            start = time.time_ns() - 2_000_000_000
            await ws.send(
                orjson.dumps(
                    {
                        "op": "replay",
                        "id": "slow",
                        "channel": "book",
                        "symbols": [STREAM],
                        "from": start,
                        "to": "live",
                        "speed": 0.01,
                    }
                ).decode()
            )
            await reply(lambda m: m.get("type") == "replay_started")
            await ws.send(orjson.dumps({"op": "cancel_replay", "id": "slow"}).decode())
            cancelled = await reply(lambda m: m.get("type") == "replay_cancelled")
            assert cancelled["id"] == "slow"
            # before retention: nothing was retained an hour ago on these fresh topics
            hour_ago = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
            await ws.send(
                orjson.dumps(
                    {
                        "op": "replay",
                        "id": "old",
                        "channel": "book",
                        "symbols": [STREAM],
                        "from": hour_ago,
                        "to": time.time_ns() - 3_000_000_000_000,
                    }
                ).decode()
            )
            err = await reply(lambda m: m.get("type") == "error")
            assert err["id"] == "old" and err["code"] == "history_unavailable"
            assert "retained" in err["message"]
            # bad windows are refused up front
            await ws.send(
                orjson.dumps(
                    {
                        "op": "replay",
                        "id": 9,
                        "channel": "book",
                        "symbols": [STREAM],
                        "from": "yesterday",
                    }
                ).decode()
            )
            err = await reply(lambda m: m.get("type") == "error")
            assert err["code"] == "bad_request"
            # per-connection limit (4) and the start rate limit
            codes = []
            for i in range(6):
                await ws.send(
                    orjson.dumps(
                        {
                            "op": "replay",
                            "id": f"r{i}",
                            "channel": "book",
                            "symbols": [STREAM],
                            "from": start,
                            "to": "live",
                            "speed": 0.01,
                        }
                    ).decode()
                )
                codes.append(await reply(lambda m: m.get("type") in ("replay_started", "error")))
            assert any(m.get("code") == "rate_limited" for m in codes)


async def test_rest_book_at_instant_equals_the_live_clients_book(config) -> None:
    import httpx

    from api.main import start_api

    cfg = travel_config(config)
    async with gateway_with_feed(cfg, rate=300) as (_rt, url, _sim):
        api = await start_api(cfg)
        try:
            live = MarketDataClient(url, fmt="json")
            await live.connect()
            await live.subscribe("book", [STREAM], depth=0)
            states: list[tuple[int, int, tuple]] = []

            async def run() -> None:
                async for ev in live.events():
                    if ev.kind == "book" and ev.key == STREAM:
                        b = live.book(STREAM)
                        states.append(
                            (ev.data["ingest_ts"], b.sequence, (b.top_bids(), b.top_asks()))
                        )

            try:
                await asyncio.wait_for(run(), 6)
            except TimeoutError:
                pass
            await live.close()
            async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
                for _ in range(100):
                    if (await http.get("/ready")).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
                # every state of the second half (the first checkpoints exist by then);
                # ?at= has millisecond resolution (answers are cached by the ms): the book
                # as it was at the start of that millisecond, asked in ns and in ISO form
                later = states[len(states) // 2 :]
                for ingest, _, _ in later:
                    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ingest // 10**9))
                    micros = ingest // 1000 % 10**6
                    ms_start = ingest // 10**6 * 10**6
                    before = [st for st in states if st[0] <= ms_start]
                    if not before:
                        continue
                    _, want_seq, (bids, asks) = max(before, key=lambda st: st[1])
                    for at in (str(ingest), f"{iso}.{micros:06d}Z"):
                        r = await http.get(
                            f"/api/v1/orderbook/{STREAM}", params={"depth": 1000, "at": at}
                        )
                        assert r.status_code == 200, r.text
                        body = r.json()
                        assert body["sequence"] == want_seq, at
                        assert [tuple(x) for x in body["bids"]] == bids[:1000], at
                        assert [tuple(x) for x in body["asks"]] == asks[:1000], at
                assert len(later) > 20, len(later)
                iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
                r = await http.get(f"/api/v1/orderbook/{STREAM}", params={"at": iso})
                assert r.status_code == 400 and "retained" in r.json()["error"]
                r = await http.get(f"/api/v1/orderbook/{STREAM}", params={"at": "noon"})
                assert r.status_code == 400
        finally:
            await api.stop()
