"""Faults of our own processes (issue "Reliability", 2, 3, 4, 8): crash, restart, SIGTERM.

Every process is real (``python -m mdgw simulate|gateway|api``) on the shared
broker with the test's own topics; the oracle is a from-scratch rebuild of the
book topic (``tests/faults/books.py``).
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from core.types import BookUpdate
from mdgw.config import KafkaConfig
from mdgw.kafka.headers import BOOK_OFFSET, BOOK_PARTITION, int_header
from mdgw.kafka.source import read_to_end
from schemas import codec
from tests.faults.books import (
    BookState,
    api_books,
    book_records,
    diff,
    gateway_books,
    rebuild,
    sequence_report,
    wait_api_books,
)
from tests.faults.procs import (
    api_ready,
    await_until,
    gateway_health,
    gateway_ready,
    stack,
)
from tests.faults.watch import STREAMS, ClientWatch

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(120)]


def _loaded_snapshots(log: str) -> int:
    found = re.findall(r"bootstrap: (\d+) snapshots \((\d+) streams loaded\)", log)
    return int(found[-1][1]) if found else -1


async def _verified_watches(url: str) -> list[ClientWatch]:
    """Two verifying, reconnecting clients: JSON at full depth, protobuf at depth 20."""
    return [
        await ClientWatch.start(url, STREAMS, depth=0, fmt="json"),
        await ClientWatch.start(url, STREAMS, depth=20, fmt="protobuf", batch=True),
    ]


async def _client_books_match(watches: list[ClientWatch], want: dict[str, BookState]) -> None:
    """Each client's local book reaches the oracle's sequence and equals it at its depth."""

    def matches(b: object, state: BookState) -> bool:
        # A depth-N view's sequence is that of the last change visible at depth N, so it
        # may stay below the book's when the last records touched deeper levels only:
        # a depth-N client has caught up when its levels are the book's top N.
        if b is None or not b.valid:  # type: ignore[attr-defined]
            return False
        if not b.depth:  # type: ignore[attr-defined]
            return b.sequence >= state.sequence  # type: ignore[attr-defined]
        d = b.depth  # type: ignore[attr-defined]
        return (
            b.sequence <= state.sequence  # type: ignore[attr-defined]
            and tuple(b.top_bids()) == state.bids[:d]  # type: ignore[attr-defined]
            and tuple(b.top_asks()) == state.asks[:d]
        )  # type: ignore[attr-defined]

    def caught_up() -> bool:
        return all(matches(w.client.book(s), want[s]) for w in watches for s in STREAMS)

    await await_until(caught_up, 20, what="clients caught up with the oracle")
    for w in watches:
        for s in STREAMS:
            local = w.client.book(s)
            assert local is not None
            depth = local.depth or None
            if depth is None:
                assert local.sequence == want[s].sequence, (s, local.sequence, want[s].sequence)
            else:
                assert local.sequence <= want[s].sequence, (s, local.sequence, want[s].sequence)
            assert tuple(local.top_bids()) == want[s].bids[:depth], s
            assert tuple(local.top_asks()) == want[s].asks[:depth], s


def _assert_clean(watches: list[ClientWatch]) -> None:
    for w in watches:
        assert w.error is None, repr(w.error)
        assert w.client.checksum_failures == 0, w.kinds()
        assert w.client.sequence_breaks == 0, w.kinds()


# ---- 2. gateway kill -9 and restart ---------------------------------------------------


async def test_gateway_kill_9_and_restart(kafka_cfg: KafkaConfig, tmp_path: Path) -> None:
    """State comes back from the compacted snapshots plus the deltas after them; clients
    reconnect and resync with no checksum failure; books equal the rebuild."""
    with stack(kafka_cfg, tmp_path, MDGW_GATEWAY_SNAPSHOT_EVERY_MS="2000") as st:
        sim = st.simulate(rate=300)
        gw = st.gateway()
        await await_until(lambda: gateway_ready(st.gateway_http), 40, what="gateway ready")
        watches = await _verified_watches(st.ws_url)
        await await_until(lambda: all(w.all_valid(STREAMS) for w in watches), 15)
        await asyncio.sleep(4.0)  # a few snapshot rounds land on the compacted topic

        t_kill = time.monotonic()
        gw.kill()
        gw2 = st.gateway()
        await await_until(
            lambda: all(w.resynced_since(t_kill, STREAMS) for w in watches),
            45,
            what="every client book resynced after the restart",
        )
        recovery_s = time.monotonic() - t_kill
        health = gateway_health(st.gateway_http) or {}
        await asyncio.sleep(2.0)

        assert sim.term() == 0, sim.tail()
        oracle = rebuild(kafka_cfg)
        want = oracle.states()
        got = await gateway_books(st.ws_url, want)
        await _client_books_match(watches, want)
        reconnects = [w.client.reconnects for w in watches]
        for w in watches:
            await w.stop()
        loaded = _loaded_snapshots(gw2.output())
        print(
            f"\n[gateway kill -9] recovery (kill -> every client book resynced) "
            f"{recovery_s:.2f}s; restarted gateway loaded {loaded} streams from snapshots, "
            f"consumed {health.get('records_consumed')} records to catch up; client "
            f"reconnects {reconnects}; breaks "
            f"{[w.client.sequence_breaks for w in watches]}; checksum failures "
            f"{[w.client.checksum_failures for w in watches]}; notable "
            f"{[w.kinds(since=t_kill) for w in watches]}"
        )
        assert gw2.alive(), st.dump()
        assert loaded == len(STREAMS), gw2.tail()
        assert all(n >= 1 for n in reconnects)
        _assert_clean(watches)
        assert diff(got, want) == [], st.dump()


# ---- 3. API kill -9 and restart -------------------------------------------------------


async def test_api_kill_9_and_restart(kafka_cfg: KafkaConfig, tmp_path: Path) -> None:
    """Same books after a crash (sequences equal for a stopped feed); /ready is 503 until
    the books are loaded, and the first 200 already serves them."""
    with stack(kafka_cfg, tmp_path, MDGW_GATEWAY_SNAPSHOT_EVERY_MS="1000") as st:
        sim = st.simulate(rate=400)
        st.gateway()
        api = st.api()
        await await_until(lambda: gateway_ready(st.gateway_http), 40, what="gateway ready")
        await await_until(lambda: api_ready(st.api_http), 40, what="api ready")
        await asyncio.sleep(4.0)
        assert sim.term() == 0, sim.tail()
        want = rebuild(kafka_cfg).states()
        before = await asyncio.to_thread(wait_api_books, st.api_http, want, 20)
        assert diff(before, want) == [], st.dump()

        api.kill()
        t_start = time.monotonic()
        api2 = st.api()
        codes, first_ok = await asyncio.to_thread(_poll_ready_fast, st.api_http, 40.0)
        ready_s = time.monotonic() - t_start
        at_ready = await asyncio.to_thread(api_books, st.api_http, want)
        after = await asyncio.to_thread(wait_api_books, st.api_http, want, 20)
        summary = _runs(codes)
        print(
            f"\n[api kill -9] restart -> /ready 200 in {ready_s:.2f}s; /ready answers "
            f"{summary}; books at the first 200: "
            f"{sum(1 for s in want if s in at_ready and at_ready[s] == want[s])}/{len(want)} "
            f"equal to before; sequences at first 200 "
            f"{ {s: at_ready[s].sequence - want[s].sequence for s in at_ready} } (delta)"
        )
        assert api2.alive(), st.dump()
        assert first_ok, summary
        assert 503 in codes, f"/ready was never 503 before the books were loaded: {summary}"
        assert diff(after, want) == [], st.dump()
        assert {s: b.sequence for s, b in after.items()} == {
            s: b.sequence for s, b in before.items()
        }
        assert diff(at_ready, want) == [], "the first /ready 200 served books not yet loaded"


def _poll_ready_fast(base: str, timeout: float) -> tuple[list[int], bool]:
    """/ready as fast as it answers until the first 200 (-1: not listening yet)."""
    codes: list[int] = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                code = http.get("/ready").status_code
            except httpx.HTTPError:
                code = -1
                time.sleep(0.01)
            codes.append(code)
            if code == 200:
                return codes, True
    return codes, False


def _runs(codes: list[int]) -> str:
    out: list[list[int]] = []
    for c in codes:
        if out and out[-1][0] == c:
            out[-1][1] += 1
        else:
            out.append([c, 1])
    return " ".join(f"{c}x{n}" for c, n in out)


# ---- 4. producer kill -9 and restart --------------------------------------------------


async def test_producer_kill_9_and_restart(kafka_cfg: KafkaConfig, tmp_path: Path) -> None:
    """The stream continues with a snapshot record and contiguous sequences: no client sees
    a break or a checksum failure, and the gateway's books recover to live."""
    with stack(kafka_cfg, tmp_path) as st:
        sim = st.simulate(rate=300)
        st.gateway()
        await await_until(lambda: gateway_ready(st.gateway_http), 40, what="gateway ready")
        watches = await _verified_watches(st.ws_url)
        await await_until(lambda: all(w.all_valid(STREAMS) for w in watches), 15)
        await asyncio.sleep(2.0)

        t_kill = time.monotonic()
        sim.kill()
        await asyncio.sleep(1.5)
        base = time.time_ns() // 1000  # the new run's sequences start above this
        sim2 = st.simulate(rate=300)
        t_restart = time.monotonic()
        await await_until(
            lambda: all(
                (b := w.client.book(s)) is not None and b.valid and b.sequence > base
                for w in watches
                for s in STREAMS
            ),
            30,
            what="every client book follows the restarted producer",
        )
        resumed_s = time.monotonic() - t_restart
        await asyncio.sleep(2.0)
        health = gateway_health(st.gateway_http) or {}

        assert sim2.term() == 0, sim2.tail()
        records = book_records(kafka_cfg)
        oracle = rebuild(kafka_cfg, records=records)
        want = oracle.states()
        await _client_books_match(watches, want)
        seqs = sequence_report(records)
        for w in watches:
            await w.stop()
        print(
            f"\n[producer kill -9] restarted producer's stream reached every client "
            f"{resumed_s:.2f}s after its start; book topic {seqs}; client breaks "
            f"{[w.client.sequence_breaks for w in watches]} checksum failures "
            f"{[w.client.checksum_failures for w in watches]}; notable after the kill "
            f"{[w.kinds(since=t_kill) for w in watches]}; gateway stale streams "
            f"{health.get('stale_streams')}"
        )
        _assert_clean(watches)
        # the topic itself: contiguous per stream, the restart a snapshot jump, no gap
        assert seqs["breaks"] == 0 and seqs["duplicates"] == 0, seqs
        assert seqs["snapshot_jumps"] == len(STREAMS), seqs
        assert health.get("stale_streams") == 0, health
        assert all(not b.stale for b in oracle.books.values())


# ---- 8. graceful shutdown on SIGTERM --------------------------------------------------


async def _hold_until_closed(url: str, opened: asyncio.Event) -> int | None:
    async with connect(url + "?format=json", max_size=None) as ws:
        await ws.send(
            orjson.dumps(
                {"op": "subscribe", "id": 1, "channel": "book", "symbols": STREAMS, "depth": 10}
            ).decode()
        )
        opened.set()
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            pass
        return ws.close_code


async def test_gateway_sigterm_is_graceful(kafka_cfg: KafkaConfig, tmp_path: Path) -> None:
    """SIGTERM with the feed running: clients get 1001, exit 0 within 15 s, and every
    stream has a fresh snapshot whose book-offset is at/after what was consumed and whose
    book equals the rebuild of the topic up to that offset."""
    env = {  # periodic snapshots off (after the first): what is fresh comes from shutdown
        "MDGW_GATEWAY_SNAPSHOT_EVERY_MS": "3600000",
        "MDGW_GATEWAY_SNAPSHOT_EVERY_UPDATES": "100000000",
        "MDGW_GATEWAY_CHECKPOINT_EVERY_MS": "3600000",
    }
    with stack(kafka_cfg, tmp_path, **env) as st:
        sim = st.simulate(rate=300)
        gw = st.gateway()
        await await_until(lambda: gateway_ready(st.gateway_http), 40, what="gateway ready")
        events = [asyncio.Event() for _ in range(3)]
        clients = [asyncio.create_task(_hold_until_closed(st.ws_url, e)) for e in events]
        for e in events:
            await asyncio.wait_for(e.wait(), 10)
        await asyncio.sleep(3.0)

        t_term_wall_ms = time.time() * 1000
        t0 = time.monotonic()
        code = await asyncio.to_thread(gw.term, 30)
        exit_s = time.monotonic() - t0
        close_codes = await asyncio.gather(*clients)
        assert sim.term() == 0, sim.tail()

        records = book_records(kafka_cfg)
        snaps = {
            (r.key or b"").decode(): r for r in read_to_end(kafka_cfg, kafka_cfg.snapshots_topic)
        }
        consumed_before: dict[str, int] = {}  # last offset of each stream surely consumed
        for r in records:
            if r.timestamp_ms <= t_term_wall_ms - 1000:
                consumed_before[(r.key or b"").decode()] = r.offset
        fresh, equal = 0, 0
        problems: list[str] = []
        for stream in STREAMS:
            snap = snaps.get(stream)
            if snap is None:
                problems.append(f"{stream}: no snapshot")
                continue
            part = int_header(snap.headers, BOOK_PARTITION)
            offset = int_header(snap.headers, BOOK_OFFSET)
            assert part is not None and offset is not None, snap.headers
            fresh += snap.timestamp_ms >= t_term_wall_ms
            if offset <= consumed_before.get(stream, -1):
                problems.append(f"{stream}: book-offset {offset} <= {consumed_before[stream]}")
            upto = [r for r in records if r.partition == part and r.offset < offset]
            oracle = rebuild(kafka_cfg, records=upto).books.get(stream)
            update = codec.decode(snap.value or b"")
            assert isinstance(update, BookUpdate) and update.is_snapshot
            got = BookState(
                update.sequence, tuple(update.bids), tuple(update.asks), update.checksum
            )
            if oracle is None or got != BookState.of(oracle):
                problems.append(f"{stream}: snapshot {got.brief()} != rebuild to {offset}")
            else:
                equal += 1
        print(
            f"\n[gateway SIGTERM] exit code {code} after {exit_s:.2f}s; client close codes "
            f"{close_codes}; snapshots written at shutdown {fresh}/{len(STREAMS)}; equal to "
            f"the rebuild up to their book-offset {equal}/{len(STREAMS)}"
        )
        assert code == 0, gw.tail()
        assert exit_s < 15
        assert close_codes == [1001] * len(clients)
        assert problems == [], problems
        assert fresh == len(STREAMS)
