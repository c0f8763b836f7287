"""BBO (docs/protocol.md §4.8) and resume (§4.10) end to end: simulator -> real Kafka ->
gateway -> the Python client, JSON and protobuf.

- bbo: 12 s of a live feed; zero chain breaks; every bbo equals the top of the
  client's own full-depth book at the record that caused it (per stream, and across
  the venues of BTC-USD), and every change of those tops has its bbo.
- resume: a client's connection is killed for 1 s during a 2,000 updates/s feed; it
  reconnects by itself, resumes every view, and its books equal those of a client
  that never disconnected (and the server's). The bytes of the resume and of the
  depth-0 snapshots it replaced are printed (``-s``) for the record.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from mdgw_client import MarketDataClient
from mdgw_client import client as client_module
from mdgw_client.client import Event

from core.bbo import best_of
from schemas import wire
from tests.integration.helpers import collect, gateway_with_feed

pytestmark = [pytest.mark.kafka]

BOOKS = ["BINANCE:BTC-USDT", "KRAKEN:BTC-USD", "COINBASE:BTC-USD", "COINBASE:ETH-USD"]
ACROSS = "BTC-USD"
VENUES = ["KRAKEN:BTC-USD", "COINBASE:BTC-USD"]

Top = tuple[Any, Any]


def as_tuple(q: Any) -> Any:
    return None if q is None else tuple(q)


class Recorder:
    """Checks a client's bbo messages against its own books, record by record.

    The gateway sends a record's bbo messages (stream, then symbol) right before that
    record's book message, so each book message closes a group: every bbo in it must
    equal the top of the client's books after applying the book message, and a top
    that changed there must have its bbo."""

    def __init__(self, c: MarketDataClient) -> None:
        self.c = c
        self.pending: list[Event] = []
        self.checked = 0
        self.errors: list[Any] = []
        self.statuses: list[dict[str, Any]] = []
        self._last: dict[str, Top] = {}

    def on(self, ev: Event) -> None:
        if ev.kind == "status":
            # a slow-consumer resync (a loaded test machine) drops queued messages by
            # design: what was checked until then stands, the rest is not comparable
            self.statuses.append(ev.data)
        if self.statuses:
            return
        if ev.kind == "bbo":
            if ev.key in self._last:
                self.pending.append(ev)
                return
            # the first: the current top, sent with the subscription (after the books)
            top = self._top(ev.key)
            if (as_tuple(ev.data["bid"]), as_tuple(ev.data["ask"])) != top:
                self.errors.append((ev.key, "first", top))
            self._last[ev.key] = top
        elif ev.kind == "book":
            pending, self.pending = self.pending, []
            names = [ev.key, ACROSS] if ev.key in VENUES else [ev.key]
            for name in names:
                top = self._top(name)
                bbos = [b for b in pending if b.key == name]
                for b in bbos:
                    got = (as_tuple(b.data["bid"]), as_tuple(b.data["ask"]))
                    same_record = b.data["ingest_ts"] == ev.data["ingest_ts"]
                    if got != top or not same_record:
                        self.errors.append((name, got, top))
                    self.checked += 1
                if name not in self._last:
                    continue  # its bbo subscription has not started yet
                if self._last[name] != top and not bbos:
                    self.errors.append((name, "no bbo for a change", top))
                self._last[name] = top
            stray = [b for b in pending if b.key not in names]
            if stray:
                self.errors.append(("stray", [b.key for b in stray]))

    def _top(self, name: str) -> Top:
        if name == ACROSS:
            return self._across()
        b = self.c.book(name)
        assert b is not None
        return (b.best_bid(), b.best_ask())

    def _across(self) -> Top:
        books = [(v.split(":")[0], self.c.book(v)) for v in VENUES]
        live = [(name, b) for name, b in books if b is not None and b.valid]
        return (
            best_of(((n, b.best_bid()) for n, b in live), bids=True),
            best_of(((n, b.best_ask()) for n, b in live), bids=False),
        )

    async def run(self, seconds: float) -> None:
        async def loop() -> None:
            async for ev in self.c.events():
                self.on(ev)

        try:
            await asyncio.wait_for(loop(), seconds)
        except TimeoutError:
            pass


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_bbo_is_the_top_of_the_clients_own_books(config, fmt: str) -> None:
    async with gateway_with_feed(config, rate=1000) as (_rt, url, _sim):
        c = MarketDataClient(url, fmt=fmt)
        await c.connect()
        await c.subscribe("book", BOOKS, depth=0)
        await c.subscribe("bbo", [*BOOKS, ACROSS])
        rec = Recorder(c)
        await rec.run(12.0)
        await c.close()
    assert c.sequence_breaks == 0 and c.checksum_failures == 0
    assert not rec.errors, (len(rec.errors), rec.errors[:3], rec.statuses[:3], rec.checked)
    assert rec.checked > 500, rec.checked
    assert set(c.bbos) == {*BOOKS, ACROSS}
    print(f"\nbbo ({fmt}): {rec.checked} messages checked against the client's books, 12 s")


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_a_client_cut_off_for_1s_resumes_to_the_same_books(
    config, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(client_module.random, "random", lambda: 0.5)  # delay exactly 1 s
    async with gateway_with_feed(config, rate=2000) as (rt, url, sim):
        steady = MarketDataClient(url, fmt=fmt)
        cut = MarketDataClient(url, fmt=fmt, reconnect_delay=1.0)
        for c in (steady, cut):
            await c.connect()
            await c.subscribe("book", BOOKS, depth=0)
            await c.subscribe("aggregated_book", [ACROSS], depth=0)
        sent: list[int] = []
        real = rt.hub.send_resumed

        def counting(session: Any, frames: list[bytes]) -> None:
            sent.append(sum(map(len, frames)))
            real(session, frames)

        rt.hub.send_resumed = counting  # type: ignore[method-assign]
        snapshot_bytes: list[int] = []

        async def kill_after(seconds: float) -> None:
            await asyncio.sleep(seconds)
            assert cut.ws is not None
            cut.ws.transport.abort()  # the connection dies; the client reconnects after 1 s
            await asyncio.sleep(0.5)  # mid-outage: what snapshots of every view would cost
            encode = wire.book_pb if fmt == "protobuf" else wire.book_json
            for s in BOOKS:
                snapshot_bytes.append(len(encode(rt.market.book(s).snapshot(0))))
            agg = rt.market.aggregated(ACROSS)
            snapshot_bytes.append(len(encode(agg.snapshot(0), aggregated=True)))

        t0 = time.monotonic()
        counts = await asyncio.gather(collect(steady, 6.0), collect(cut, 6.0), kill_after(2.0))
        assert time.monotonic() - t0 >= 6.0
        sim.stop()
        await asyncio.sleep(1.0)
        await asyncio.gather(collect(steady, 1.5), collect(cut, 1.5))
        for c in (steady, cut):
            await c.close()
    assert cut.reconnects == 1 and counts[1].get("book", 0) > 1000
    assert cut.resumed == len(BOOKS) + 1 and cut.not_resumed == 0
    for c in (steady, cut):
        assert c.sequence_breaks == 0 and c.checksum_failures == 0
    for key in [*BOOKS, f"agg:{ACROSS}"]:
        a, b = steady.book(key), cut.book(key)
        assert a is not None and b is not None and a.valid and b.valid
        assert (b.sequence, b.top_bids(), b.top_asks()) == (a.sequence, a.top_bids(), a.top_asks())
    for s in BOOKS:
        server = rt.market.book(s)
        assert cut.book(s).top_bids() == server.bids() and cut.book(s).top_asks() == server.asks()
    resumed, snapshots = sum(sent), sum(snapshot_bytes)
    print(
        f"\nresume ({fmt}, depth 0, {len(BOOKS) + 1} views, 1 s outage at 2,000 updates/s): "
        f"{resumed} bytes in {len(sent)} resumes; the same views' snapshots: {snapshots} bytes"
    )
    assert resumed > 0
