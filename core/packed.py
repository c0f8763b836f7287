"""A ``BookUpdate`` as one flat tuple the garbage collector stops tracking.

A view keeps thousands of recent messages for resumes (``core.history``). Held as
objects (the update, its level lists, per-venue dicts) they are tens of thousands
of container objects that survive into the oldest generation and die there: each
full collection walks them all (100-200 ms pauses under load, bench/README.md).

CPython stops tracking a tuple whose items are all untracked (numbers, strings,
bytes) the first time a collection looks at it, but a tuple of tracked tuples only
one nesting level per collection (a collection meets the outer tuple first), and
objects that reach the oldest generation are looked at again only by full
collections. So the update is packed *flat*: one tuple of atoms, untracked by the
first young collection. Pure; ``unpack(pack(u)) == u``.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Any

from core.types import BookUpdate, Exchange, Level

Packed = tuple[Any, ...]

_HEAD = 13
"""Fields before the levels: exchange .. gateway_ns, then the two level counts and
which sides' per-venue quantities follow (bit 0 bids, bit 1 asks)."""


def _venues(maps: list[dict[str, float]] | None, n: int) -> Iterator[Any]:
    """Per level: how many venues, then (name, quantity) pairs."""
    for m in maps if maps is not None else [{}] * n:
        yield len(m)
        yield from chain.from_iterable(m.items())


def pack(u: BookUpdate, prefix: tuple[Any, ...] = ()) -> Packed:
    """The update as a flat tuple of atoms, after ``prefix`` (atoms too)."""
    venues = u.bid_venues is not None or u.ask_venues is not None
    head = (
        int(u.exchange),
        u.symbol,
        u.timestamp_ns,
        u.sequence,
        u.is_snapshot,
        u.prev_sequence,
        u.checksum,
        u.depth,
        u.ingest_ns,
        u.gateway_ns,
        len(u.bids),
        len(u.asks),
        (u.bid_venues is not None) | (u.ask_venues is not None) << 1,
    )
    levels = chain.from_iterable(chain(u.bids, u.asks))
    if not venues:
        return (*prefix, *head, *levels)
    return (
        *prefix,
        *head,
        *levels,
        *_venues(u.bid_venues, len(u.bids)),
        *_venues(u.ask_venues, len(u.asks)),
    )


def _levels(p: Packed, start: int, n: int) -> list[Level]:
    return [(p[i], p[i + 1]) for i in range(start, start + 2 * n, 2)]


def unpack(p: Packed, offset: int = 0) -> BookUpdate:
    """A new ``BookUpdate`` equal to the one packed at ``offset`` of ``p``."""
    h = offset
    nb, na, venues = p[h + 10], p[h + 11], p[h + 12]
    at = h + _HEAD
    u = BookUpdate(
        Exchange(p[h]),
        p[h + 1],
        p[h + 2],
        p[h + 3],
        _levels(p, at, nb),
        _levels(p, at + 2 * nb, na),
        p[h + 4],
        p[h + 5],
        p[h + 6],
        p[h + 7],
        p[h + 8],
        p[h + 9],
    )
    if not venues:
        return u
    at += 2 * (nb + na)
    maps: list[list[dict[str, float]]] = []
    for n in (nb, na):
        side = []
        for _ in range(n):
            k = p[at]
            side.append({p[at + 1 + 2 * j]: p[at + 2 + 2 * j] for j in range(k)})
            at += 1 + 2 * k
        maps.append(side)
    u.bid_venues = maps[0] if venues & 1 else None
    u.ask_venues = maps[1] if venues & 2 else None
    return u
