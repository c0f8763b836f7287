"""Books as the processes hold them vs a from-scratch rebuild of the book topic.

The rebuild is the oracle: every record of the book topic read with
``read_to_end``, decoded, its key checked, applied to a naive book of its own
(:class:`NaiveBook`: a dict per side, sorted when compared, the checksum computed
here with zlib), never the gateway's ``core.book.OrderBook``, so a bug in the
core cannot hide by being in both. A process is right when its books equal the
oracle's: same sequence, same levels, same checksum (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import httpx
from mdgw_client import MarketDataClient

from core.book import ApplyResult
from core.types import KNOWN_EXCHANGES, BookUpdate, Level
from mdgw.config import KafkaConfig
from mdgw.kafka.source import Record, read_to_end
from schemas import codec
from schemas.errors import SchemaError
from tests.unit.core.core_model import RefBook


def crc(bids: Iterable[Level], asks: Iterable[Level]) -> int:
    """The protocol's checksum, spelled out: CRC-32 of the first 10 asks then 10 bids."""
    top = sorted(asks)[:10] + sorted(bids, reverse=True)[:10]
    return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in top))


class Refused(ValueError):
    """A record no book may take (the gateway dead-letters it)."""


class NaiveBook(RefBook):
    """The reference book: ``RefBook``'s two dicts and sequencing rules (shared with the
    core's model tests), plus the record checks of the protocol."""

    def apply(self, u: BookUpdate) -> ApplyResult:
        if u.exchange not in KNOWN_EXCHANGES or not u.symbol:
            raise Refused("no such stream")
        if u.is_snapshot and (self.stale or u.sequence > self.sequence):
            self._check_snapshot(u)
        elif not u.is_snapshot and not self.stale and u.sequence == self.sequence + 1:
            for p, q in u.bids + u.asks:
                if not (0 < p < math.inf and 0 <= q < math.inf):
                    raise Refused(f"bad delta level {(p, q)}")
            if u.checksum and u.checksum != crc(*_applied(self, u)):
                self.stale = True  # diverged from the producer: wait for a snapshot
                return ApplyResult.GAP
        return super().apply(u)

    @staticmethod
    def _check_snapshot(u: BookUpdate) -> None:
        for side in (u.bids, u.asks):
            if any(not (0 < p < math.inf and 0 < q < math.inf) for p, q in side):
                raise Refused("bad snapshot level")
            if len({p for p, _ in side}) != len(side):
                raise Refused("duplicate price in snapshot")
        if u.bids and u.asks and max(p for p, _ in u.bids) >= min(p for p, _ in u.asks):
            raise Refused("crossed snapshot")
        if u.checksum and u.checksum != crc(u.bids, u.asks):
            raise Refused("snapshot checksum does not match its levels")

    def sorted_bids(self) -> list[Level]:
        return sorted(self.bids.items(), reverse=True)

    def sorted_asks(self) -> list[Level]:
        return sorted(self.asks.items())

    def checksum(self) -> int:
        return crc(self.bids.items(), self.asks.items())


def _applied(book: RefBook, u: BookUpdate) -> tuple[list[Level], list[Level]]:
    """The levels ``book`` would hold after the delta ``u``, the book left as it is."""
    out = []
    for side, levels in ((dict(book.bids), u.bids), (dict(book.asks), u.asks)):
        for p, q in levels:
            if q:
                side[p] = q
            else:
                side.pop(p, None)
        out.append(list(side.items()))
    return out[0], out[1]


@dataclass(frozen=True)
class BookState:
    """What is compared: a book's sequence, full levels and checksum."""

    sequence: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    checksum: int
    stale: bool = False

    @classmethod
    def of(cls, book: NaiveBook) -> BookState:
        return cls(
            book.sequence,
            tuple(book.sorted_bids()),
            tuple(book.sorted_asks()),
            book.checksum(),
            book.stale,
        )

    def brief(self) -> str:
        return (
            f"seq={self.sequence} bids={len(self.bids)} asks={len(self.asks)} "
            f"crc={self.checksum}{' STALE' if self.stale else ''}"
        )


@dataclass
class Rebuild:
    """The oracle's books and what it saw on the way."""

    books: dict[str, NaiveBook]
    records: int
    skipped: list[tuple[int, int, str]]
    """(partition, offset, why) of records the oracle did not apply."""
    results: dict[str, int]
    last_offset: dict[str, tuple[int, int]]
    """stream -> (partition, offset) of its last record on the book topic."""

    def states(self) -> dict[str, BookState]:
        return {s: BookState.of(b) for s, b in self.books.items()}


def book_records(cfg: KafkaConfig) -> list[Record]:
    return list(read_to_end(cfg, cfg.book_topic, timeout=60))


def rebuild(
    cfg: KafkaConfig,
    exclude: Iterable[tuple[int, int]] = (),
    records: list[Record] | None = None,
) -> Rebuild:
    """Apply the book topic from its beginning; ``exclude`` (partition, offset) pairs."""
    skip = set(exclude)
    recs = book_records(cfg) if records is None else records
    recs.sort(key=lambda r: (r.partition, r.offset))
    books: dict[str, NaiveBook] = {}
    skipped: list[tuple[int, int, str]] = []
    results: dict[str, int] = {}
    last: dict[str, tuple[int, int]] = {}
    for rec in recs:
        where = (rec.partition, rec.offset)
        if where in skip:
            skipped.append((*where, "excluded"))
            continue
        try:
            update = codec.decode(rec.value or b"")
        except SchemaError as e:
            skipped.append((*where, f"schema: {e}"))
            continue
        if not isinstance(update, BookUpdate):
            skipped.append((*where, "not a book update"))
            continue
        if (rec.key or b"").decode(errors="replace") != update.stream:
            skipped.append((*where, "key mismatch"))
            continue
        book = books.get(update.stream)
        if book is None:
            book = NaiveBook()
        try:
            result = book.apply(update)
        except Refused as e:
            skipped.append((*where, f"refused: {e}"))
            continue
        books[update.stream] = book
        results[result.value] = results.get(result.value, 0) + 1
        if result is not ApplyResult.DUPLICATE:
            last[update.stream] = where
    return Rebuild(books, len(recs), skipped, results, last)


def diff(got: dict[str, BookState], want: dict[str, BookState]) -> list[str]:
    """Human-readable differences; empty when every book is equal."""
    out: list[str] = []
    for stream in sorted(set(got) | set(want)):
        g, w = got.get(stream), want.get(stream)
        if g is None or w is None:
            out.append(f"{stream}: got {g and g.brief()} want {w and w.brief()}")
        elif g != w:
            extra = ""
            if g.sequence == w.sequence:
                bid_d = set(g.bids) ^ set(w.bids)
                ask_d = set(g.asks) ^ set(w.asks)
                extra = f" differing bid levels {sorted(bid_d)[:4]} ask levels {sorted(ask_d)[:4]}"
            out.append(f"{stream}: got {g.brief()} want {w.brief()}{extra}")
    return out


# ---- reading the processes' books -----------------------------------------------------


def _client_state(client: MarketDataClient, stream: str) -> BookState | None:
    local = client.book(stream)
    if local is None or not local.valid:
        return None
    bids, asks = local.top_bids(), local.top_asks()
    return BookState(local.sequence, tuple(bids), tuple(asks), crc(bids, asks))


async def gateway_books(
    url: str, want: dict[str, BookState], timeout: float = 20.0
) -> dict[str, BookState]:
    """Subscribe at depth 0 to every stream of ``want`` and read until sequences match."""
    client = MarketDataClient(url, fmt="json", reconnect=False)
    await client.connect()
    streams = sorted(want)
    await client.subscribe("book", streams, depth=0)
    got: dict[str, BookState] = {}

    def done() -> bool:
        for s in streams:
            st = _client_state(client, s)
            if st is not None:
                got[s] = st
        return all(s in got and got[s].sequence >= want[s].sequence for s in streams)

    async def run() -> None:
        async for _ev in client.events():
            if done():
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        pass
    finally:
        assert client.checksum_failures == 0, "checksum failure while reading the books"
        await client.close()
    return got


def api_books(base: str, streams: Iterable[str]) -> dict[str, BookState]:
    """The REST service's books at depth 1000 (more than any simulated book holds)."""
    out: dict[str, BookState] = {}
    with httpx.Client(base_url=base, timeout=5) as http:
        for s in streams:
            r = http.get(f"/api/v1/orderbook/{s}", params={"depth": 1000})
            if r.status_code != 200:
                continue
            body = r.json()
            bids = tuple((p, q) for p, q in body["bids"])
            asks = tuple((p, q) for p, q in body["asks"])
            out[s] = BookState(
                body["sequence"], bids, asks, body["checksum"], body.get("status") == "stale"
            )
    return out


def wait_api_books(
    base: str, want: dict[str, BookState], timeout: float = 20.0
) -> dict[str, BookState]:
    """Poll the API until its books reach the wanted sequences (or time out)."""
    deadline = time.monotonic() + timeout
    got = api_books(base, want)
    while time.monotonic() < deadline:
        if all(s in got and got[s].sequence >= w.sequence for s, w in want.items()):
            break
        time.sleep(0.2)
        got = api_books(base, want)
    return got


def sequence_report(records: list[Record]) -> dict[str, int]:
    """Per-stream check of the book topic: counts of contiguous steps and of breaks.

    A break is a record whose sequence is not its predecessor's + 1 and which is
    not a snapshot starting a new producer run (those may jump forward).
    """
    last: dict[str, int] = {}
    report = {"records": 0, "steps": 0, "snapshot_jumps": 0, "breaks": 0, "duplicates": 0}
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        try:
            u = codec.decode(rec.value or b"")
        except SchemaError:
            continue
        if not isinstance(u, BookUpdate):
            continue
        report["records"] += 1
        prev = last.get(u.stream)
        if prev is not None:
            if u.sequence == prev + 1:
                report["steps"] += 1
            elif u.sequence <= prev:
                report["duplicates"] += 1
            elif u.is_snapshot:
                report["snapshot_jumps"] += 1
            else:
                report["breaks"] += 1
        last[u.stream] = max(u.sequence, prev or 0)
    return report
