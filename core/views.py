"""Depth views: the top N of a book as exact snapshots and deltas (docs/protocol.md §4.4).

One :class:`DepthView` exists per (book, depth, speed); every subscriber of that
depth receives the same messages, so a delta is computed once, not per client.

The rule that keeps guarantees 2 and 3: **the view holds what it last sent**
(``sent_bids``/``sent_asks`` and ``last_sequence``), and it moves that state
only by emitting a message:

- ``snapshot()`` returns exactly the sent state, tagged ``last_sequence``; it
  never reads the live book. A subscriber that joins at any moment and applies
  every later delta therefore holds what the view holds.
- ``on_update()`` (raw speed, after each mutation of the source) and ``flush()``
  (conflated speeds, on a timer) bring the sent state to the source's current
  top N and emit the difference as one delta with ``sequence`` = the source's
  sequence and ``prev_sequence`` = the previous ``last_sequence``. No difference,
  no message, and ``last_sequence`` stays: the chain has no holes.
- A source whose sequence went *down* (a stale book recovered from an older
  snapshot) cannot be chained: the view resyncs itself and returns a snapshot.
  The owner should anyway send ``status stale`` on a gap, then ``reset()`` and a
  fresh ``snapshot()`` on recovery; if it does not, the diff still keeps clients exact.

``on_update`` is incremental: it looks only at the changed prices plus the
levels that cross the N-th boundary, and returns at once when every changed price
is worse than the view's full N-th level. It falls back to a full diff when the
source was replaced (snapshot) or the view skipped a version.

A source is anything with the attributes of :class:`DepthSource`: an
:class:`core.book.OrderBook` or a :class:`core.aggregate.AggregatedBook`. For
aggregated sources (``Ladder.venues`` set) a level also differs when its venue
map changed; venue maps are compared by identity since they are never mutated.
"""

from __future__ import annotations

import sys
from typing import Protocol

from core.ladder import Ladder, VenueMap
from core.types import VALID_DEPTHS, BookUpdate, Exchange, Level

_EMPTY: VenueMap = {}


class DepthSource(Protocol):
    """What a view reads from a book."""

    exchange: Exchange
    symbol: str
    sequence: int
    version: int
    timestamp_ns: int
    ingest_ns: int
    bid_side: Ladder
    ask_side: Ladder
    last_changes: tuple[list[Level], list[Level]] | None

    def checksum(self) -> int: ...


class _SentSide:
    """Levels of one side as last sent, and the N-th best price when the side is full."""

    __slots__ = ("qty", "venues", "worst")

    def __init__(self, side: Ladder, depth: int) -> None:
        self.qty: dict[float, float] = dict(side.top(depth))
        self.venues: dict[float, VenueMap] | None = None
        if side.venues is not None:
            self.venues = {p: side.venues[p] for p in self.qty}
        self.worst: float | None = side.nth(depth)

    def levels(self, desc: bool) -> tuple[list[Level], list[VenueMap] | None]:
        levels = sorted(self.qty.items(), reverse=desc)
        if self.venues is None:
            return levels, None
        return levels, [self.venues[p] for p, _ in levels]


class DepthView:
    """The top ``depth`` levels of one source, as exact deltas (depth 0 = full book)."""

    __slots__ = (
        "_asks",
        "_bids",
        "_checksum",
        "_ingest",
        "_limit",
        "_snapshot",
        "_ts",
        "_version",
        "depth",
        "last_sequence",
        "source",
    )

    def __init__(self, source: DepthSource, depth: int = 20) -> None:
        if depth not in VALID_DEPTHS:
            raise ValueError(f"depth {depth} not one of {VALID_DEPTHS}")
        self.source = source
        self.depth = depth
        self._limit = depth or sys.maxsize
        self.reset()

    @property
    def sent_bids(self) -> dict[float, float]:
        """Bid price -> quantity as last sent."""
        return self._bids.qty

    @property
    def sent_asks(self) -> dict[float, float]:
        """Ask price -> quantity as last sent."""
        return self._asks.qty

    def reset(self) -> None:
        """Re-sync to the source's current top N (the caller then sends ``snapshot()``)."""
        src = self.source
        self._bids = _SentSide(src.bid_side, self.depth)
        self._asks = _SentSide(src.ask_side, self.depth)
        self.last_sequence = src.sequence
        """Sequence of the last message this view emitted (or of its last reset)."""
        self._version = src.version
        self._checksum = src.checksum()
        self._ts = src.timestamp_ns
        self._ingest = src.ingest_ns
        self._snapshot: BookUpdate | None = None

    def snapshot(self) -> BookUpdate:
        """What the view last sent, as a snapshot: the start point for a new subscriber.

        Built once per emitted message and shared: treat it (like every message) as read-only.
        """
        snap = self._snapshot
        if snap is None:
            bids, bid_venues = self._bids.levels(True)
            asks, ask_venues = self._asks.levels(False)
            snap = self._snapshot = self._message(bids, asks, bid_venues, ask_venues, True, 0)
        return snap

    def on_update(self) -> BookUpdate | None:
        """The delta after the source changed (raw speed); None when the top N did not."""
        return self._advance(incremental=True)

    def flush(self) -> BookUpdate | None:
        """The delta since the last message (conflated speeds); None when nothing changed."""
        return self._advance(incremental=False)

    def _advance(self, incremental: bool) -> BookUpdate | None:
        src = self.source
        if src.version == self._version:
            return None
        if src.sequence <= self.last_sequence:
            self.reset()
            return self.snapshot()
        changes = src.last_changes
        if incremental and changes is not None and src.version == self._version + 1:
            bids = self._incremental(src.bid_side, self._bids, changes[0])
            asks = self._incremental(src.ask_side, self._asks, changes[1])
        else:
            bids = self._full(src.bid_side, self._bids)
            asks = self._full(src.ask_side, self._asks)
        self._version = src.version
        if not bids and not asks:
            return None
        prev = self.last_sequence
        self.last_sequence = src.sequence
        self._checksum = src.checksum()
        self._ts = src.timestamp_ns
        self._ingest = src.ingest_ns
        self._snapshot = None
        return self._message(
            bids, asks, _venues_of(self._bids, bids), _venues_of(self._asks, asks), False, prev
        )

    def _message(
        self,
        bids: list[Level],
        asks: list[Level],
        bid_venues: list[VenueMap] | None,
        ask_venues: list[VenueMap] | None,
        is_snapshot: bool,
        prev: int,
    ) -> BookUpdate:
        src = self.source
        return BookUpdate(
            exchange=src.exchange,
            symbol=src.symbol,
            timestamp_ns=self._ts,
            sequence=self.last_sequence,
            bids=bids,
            asks=asks,
            is_snapshot=is_snapshot,
            prev_sequence=prev,
            checksum=self._checksum,
            depth=self.depth,
            ingest_ns=self._ingest,
            bid_venues=bid_venues,
            ask_venues=ask_venues,
        )

    def _full(self, side: Ladder, sent: _SentSide) -> list[Level]:
        """Diff of everything: used after a source snapshot, a skipped version, or a flush."""
        new = side.top(self.depth)
        new_qty = dict(new)
        old_qty = sent.qty
        venues = side.venues
        if venues is None:
            out = [lv for lv in new if old_qty.get(lv[0]) != lv[1]]
        else:
            old_v: dict[float, VenueMap] = sent.venues or {}
            new_v = {p: venues[p] for p in new_qty}
            out = [(p, q) for p, q in new if old_qty.get(p) != q or old_v.get(p) is not new_v[p]]
            sent.venues = new_v
        gone = old_qty.keys() - new_qty.keys()
        if gone:
            out.extend((p, 0.0) for p in gone)
            out.sort(reverse=side.desc)
        sent.qty = new_qty
        sent.worst = side.nth(self._limit)
        return out

    def _incremental(self, side: Ladder, sent: _SentSide, changes: list[Level]) -> list[Level]:
        """Diff from one mutation: changed prices plus levels crossing the N-th boundary."""
        if not changes:
            return []
        desc = side.desc
        worst = sent.worst
        if worst is not None:  # the side is full: changes below the N-th level are invisible
            if desc:
                for lv in changes:
                    if lv[0] >= worst:
                        break
                else:
                    return []
            else:
                for lv in changes:
                    if lv[0] <= worst:
                        break
                else:
                    return []
        venues = side.venues
        if self.depth == 0 and venues is None:
            return _passthrough(sent.qty, changes)
        limit = self._limit
        nth = side.nth(limit)
        qty = side.qty
        sent_qty = sent.qty
        sent_v = sent.venues
        touched = {lv[0] for lv in changes}
        out: dict[float, float] = {}
        for p in touched:
            q = qty.get(p)
            if q is not None and (nth is None or (p >= nth if desc else p <= nth)):
                if sent_qty.get(p) != q or (
                    venues is not None and sent_v is not None and sent_v.get(p) is not venues[p]
                ):
                    out[p] = sent_qty[p] = q
                    if venues is not None and sent_v is not None:
                        sent_v[p] = venues[p]
            elif p in sent_qty:
                out[p] = 0.0
                del sent_qty[p]
                if sent_v is not None:
                    del sent_v[p]
        if worst is not None:
            k = side.count_at_least(worst)
            if k < limit:  # levels entered from below: better ones left or moved
                for p in side.prices(k, limit):
                    out[p] = sent_qty[p] = qty[p]
                    if venues is not None and sent_v is not None:
                        sent_v[p] = venues[p]
            elif k > limit:  # levels pushed out by better new ones
                for p in side.prices(limit, k):
                    if p in sent_qty:
                        out[p] = 0.0
                        del sent_qty[p]
                        if sent_v is not None:
                            del sent_v[p]
        elif nth is not None:  # was not full; now more than N: the worst ones leave
            for p in side.prices(limit, len(side)):
                if p in sent_qty:
                    out[p] = 0.0
                    del sent_qty[p]
                    if sent_v is not None:
                        del sent_v[p]
        sent.worst = nth
        if len(out) > 1:
            return sorted(out.items(), reverse=desc)
        return list(out.items())


def _passthrough(sent_qty: dict[float, float], changes: list[Level]) -> list[Level]:
    """Full-depth view of a single book: the delta is exactly the update's levels."""
    for p, q in changes:
        if q:
            sent_qty[p] = q
        else:
            sent_qty.pop(p, None)
    return list(changes)


def _venues_of(sent: _SentSide, levels: list[Level]) -> list[VenueMap] | None:
    if sent.venues is None:
        return None
    venues = sent.venues
    return [venues.get(p, _EMPTY) if q else _EMPTY for p, q in levels]
