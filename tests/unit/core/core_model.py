"""Naive reference models and a simulated WebSocket client for the core's property tests.

Everything here is written the slow, obvious way (dicts, sorted on read) so the
optimised core can be checked against it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from hypothesis import strategies as st

from core.book import ApplyResult
from core.checksum import book_checksum
from core.types import BookUpdate, Exchange, Level

SYMBOL = "BTC-USD"
AggLevel = tuple[float, float, dict[str, float]]
QTYS = (0.25, 1.0, 2.5, 3.0)


def bid_px(pos: int) -> float:
    """Bid price at ladder position ``pos`` (negative positions cross into the asks)."""
    return 1000.0 - pos * 0.5


def ask_px(pos: int) -> float:
    return 1000.5 + pos * 0.5


def snapshot_levels(count: int, grid: int, seed: int, ask: bool) -> list[Level]:
    """``count`` distinct levels on positions 0..grid-1, chosen by ``seed``."""
    rnd = random.Random(seed * 2 + ask)
    positions = rnd.sample(range(grid), min(count, grid))
    px = ask_px if ask else bid_px
    return [(px(pos), rnd.choice(QTYS)) for pos in positions]


class RefBook:
    """Two dicts and the sequencing rules, spelled out."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.sequence = 0
        self.stale = True

    def apply(self, u: BookUpdate) -> ApplyResult:
        if u.is_snapshot:
            if not self.stale and u.sequence <= self.sequence:
                return ApplyResult.DUPLICATE
            self.bids = dict(u.bids)
            self.asks = dict(u.asks)
            self.sequence = u.sequence
            self.stale = False
            return ApplyResult.SNAPSHOT
        if self.stale:
            return ApplyResult.STALE_IGNORED
        if u.sequence <= self.sequence:
            return ApplyResult.DUPLICATE
        if u.sequence != self.sequence + 1:
            self.stale = True
            return ApplyResult.GAP
        for side, levels in ((self.bids, u.bids), (self.asks, u.asks)):
            for p, q in levels:
                if q:
                    side[p] = q
                else:
                    side.pop(p, None)
        self.sequence = u.sequence
        return ApplyResult.APPLIED

    def copy(self) -> RefBook:
        other = RefBook()
        other.bids, other.asks = dict(self.bids), dict(self.asks)
        other.sequence, other.stale = self.sequence, self.stale
        return other

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        bids = sorted(self.bids.items(), reverse=True)
        asks = sorted(self.asks.items())
        return (bids[:n], asks[:n]) if n else (bids, asks)


def merged_top(books: dict[str, RefBook], n: int) -> tuple[list[AggLevel], list[AggLevel]]:
    """Naive aggregation of the live venue books: per price, venue shares and fsum total."""
    out = []
    for side, reverse in (("bids", True), ("asks", False)):
        levels: dict[float, dict[str, float]] = {}
        for venue in sorted(books):
            book = books[venue]
            if book.stale:
                continue
            for p, q in getattr(book, side).items():
                levels.setdefault(p, {})[venue] = q
        merged = [
            (p, math.fsum(v.values()), dict(sorted(v.items())))
            for p, v in sorted(levels.items(), reverse=reverse)
        ]
        out.append(merged[:n] if n else merged)
    return out[0], out[1]


class Client:
    """A subscriber applying messages exactly as docs/protocol.md §4.4 tells clients to."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bid_venues: dict[float, dict[str, float]] = {}
        self.ask_venues: dict[float, dict[str, float]] = {}
        self.sequence: int | None = None
        self.messages = 0

    def receive(self, msg: BookUpdate) -> None:
        assert msg.depth == self.depth
        if msg.is_snapshot:
            self.bids, self.asks = {}, {}
            self.bid_venues, self.ask_venues = {}, {}
        else:
            assert self.sequence is not None, "delta before any snapshot"
            assert msg.prev_sequence == self.sequence, (msg.prev_sequence, self.sequence)
            assert msg.sequence > self.sequence
        _apply(self.bids, self.bid_venues, msg.bids, msg.bid_venues)
        _apply(self.asks, self.ask_venues, msg.asks, msg.ask_venues)
        self._cut()
        self.sequence = msg.sequence
        self.messages += 1
        bids, asks = self.top()
        assert msg.checksum == book_checksum(asks, bids), "checksum mismatch"

    def _cut(self) -> None:
        if not self.depth:
            return
        for book, venues, reverse in (
            (self.bids, self.bid_venues, True),
            (self.asks, self.ask_venues, False),
        ):
            for p in sorted(book, reverse=reverse)[self.depth :]:
                del book[p]
                venues.pop(p, None)

    def top(self) -> tuple[list[Level], list[Level]]:
        return sorted(self.bids.items(), reverse=True), sorted(self.asks.items())

    def top_with_venues(self) -> tuple[list[AggLevel], list[AggLevel]]:
        bids, asks = self.top()
        return (
            [(p, q, self.bid_venues[p]) for p, q in bids],
            [(p, q, self.ask_venues[p]) for p, q in asks],
        )


def _apply(
    book: dict[float, float],
    venues: dict[float, dict[str, float]],
    levels: list[Level],
    level_venues: list[dict[str, float]] | None,
) -> None:
    if level_venues is not None:
        assert len(level_venues) == len(levels)
    for i, (p, q) in enumerate(levels):
        if q:
            book[p] = q
            if level_venues is not None:
                venues[p] = dict(level_venues[i])
        else:
            book.pop(p, None)
            venues.pop(p, None)


def update(
    seq: int,
    bids: list[Level] | None = None,
    asks: list[Level] | None = None,
    *,
    snapshot: bool = False,
    exchange: Exchange = Exchange.BINANCE,
    symbol: str = SYMBOL,
    ts: int | None = None,
) -> BookUpdate:
    """A book record with sensible defaults for tests."""
    return BookUpdate(
        exchange=exchange,
        symbol=symbol,
        timestamp_ns=seq * 1000 if ts is None else ts,
        sequence=seq,
        bids=list(bids or []),
        asks=list(asks or []),
        is_snapshot=snapshot,
        prev_sequence=seq - 1,
        ingest_ns=seq * 1000 + 1,
    )


# -- hypothesis strategies ------------------------------------------------------

SEQ_KINDS = st.sampled_from(["next"] * 12 + ["dup", "gap"])
SNAP_SEQ = st.sampled_from(["next", "jump", "lower", "same"])
DELTA_QTY = st.sampled_from((0.0, 0.0, *QTYS))


def grid_for(depth: int) -> int:
    """Positions a side may use: enough for levels to enter and leave the top N often."""
    return 30 if depth in (0, 10) else depth + depth // 4 + 8


def positions(depth: int, grid: int) -> st.SearchStrategy[tuple[str, int]]:
    """Where a delta level goes: a grid position (near the top, near the N-th level,
    anywhere, or crossing), or the rank of an existing level (the top ones, the N-th)."""
    near_n = st.integers(max(depth - 5, 0), depth + 5) if depth else st.integers(0, grid)
    near_rank = st.integers(max(depth - 2, 0), depth + 1) if depth else st.integers(0, 40)
    return st.one_of(
        st.tuples(st.just("pos"), st.integers(-2, 12)),
        st.tuples(st.just("pos"), near_n),
        st.tuples(st.just("pos"), st.integers(0, grid)),
        st.tuples(st.just("rank"), st.integers(0, 3)),
        st.tuples(st.just("rank"), near_rank),
    )


def single_op(depth: int, extra: tuple[str, ...] = ()) -> st.SearchStrategy[tuple]:
    """One op: mostly deltas (next, duplicate or gap), some snapshots, and ``extra`` ops."""
    grid = grid_for(depth)
    level = st.tuples(positions(depth, grid), DELTA_QTY)
    delta = st.tuples(
        st.just("delta"), st.lists(level, max_size=5), st.lists(level, max_size=5), SEQ_KINDS
    )
    choices = [delta, delta, delta, delta, delta, snap_op(depth)]
    choices += [st.tuples(st.just(name)) for name in extra]
    return st.one_of(*choices)


def snap_op(depth: int, seq: st.SearchStrategy[str] = SNAP_SEQ) -> st.SearchStrategy[tuple]:
    grid = grid_for(depth)
    count = st.one_of(st.integers(0, grid), st.integers(min(depth, grid), grid))
    return st.tuples(st.just("snap"), count, count, st.integers(0, 10**6), seq)


def book_ops(depth: int, extra: tuple[str, ...] = ()) -> st.SearchStrategy[list[tuple]]:
    """A snapshot, then a random sequence of ``single_op``."""
    return st.tuples(
        snap_op(depth, st.just("next")),
        st.lists(single_op(depth, extra), min_size=5, max_size=60),
    ).map(lambda t: [t[0], *t[1]])


def make_update(op: tuple, model: RefBook, depth: int, **kw: object) -> BookUpdate:
    """The BookUpdate an op describes, sequenced relative to ``model``."""
    grid = grid_for(depth)
    cur = model.sequence
    if op[0] == "snap":
        _, nb, na, seed, kind = op
        seq = {"next": cur + 1, "jump": cur + 5, "lower": max(cur - 3, 0), "same": cur}[kind]
        return update(
            seq,
            snapshot_levels(nb, grid, seed, ask=False),
            snapshot_levels(na, grid, seed, ask=True),
            snapshot=True,
            **kw,  # type: ignore[arg-type]
        )
    _, bids, asks, kind = op
    seq = {"next": cur + 1, "dup": max(cur - 1, 0), "gap": cur + 3}[kind]
    return update(
        seq,
        _resolve(bids, sorted(model.bids, reverse=True), bid_px),
        _resolve(asks, sorted(model.asks), ask_px),
        **kw,  # type: ignore[arg-type]
    )


def _resolve(
    levels: list[tuple[tuple[str, int], float]], ranked: list[float], px: Callable[[int], float]
) -> list[Level]:
    out = []
    for (kind, n), q in levels:
        if kind == "pos":
            out.append((px(n), q))
        elif n < len(ranked):
            out.append((ranked[n], q))
    return out
