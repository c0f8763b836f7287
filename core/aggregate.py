"""The consolidated book of one canonical symbol across venues (docs/protocol.md §4.5).

A level is ``(price, total quantity, {venue: quantity})``. The total is
``math.fsum`` of the venue quantities, so it is exactly rounded and does not
depend on the order venues were added. Venue maps are rebuilt (never mutated)
on every change, keys sorted by venue name; views compare them by identity.

The aggregated book has its own sequence: +1 per call that changed at least one
level. It is a :class:`core.views.DepthSource`, so depth views of it are plain
:class:`core.views.DepthView` objects with the same guarantees as single books.
Crossed levels across venues are normal here (arbitrage) and kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable

from core.book import Changes, OrderBook, cut_snapshot
from core.checksum import CachedChecksum
from core.ladder import Ladder, VenueMap
from core.types import BookUpdate, Exchange, Level

AggLevel = tuple[float, float, VenueMap]
"""An aggregated level: (price, total quantity, {venue name: quantity})."""

_EMPTY: VenueMap = {}


class AggregatedBook(CachedChecksum):
    """Sum of the live books of one symbol, level by level, with per-venue shares."""

    exchange = Exchange.UNKNOWN
    stale = False
    """Never: a venue whose book goes stale is taken out (``remove``) instead."""
    stale_reason = ""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.sequence = 0
        """+1 per change; the aggregated book's own sequence."""
        self.version = 0
        self.timestamp_ns = 0
        """Event time of the venue update that last changed the book."""
        self.ingest_ns = 0
        self.bid_side = Ladder(True, with_venues=True)
        self.ask_side = Ladder(False, with_venues=True)
        self.last_changes: Changes | None = None
        """(bid levels, ask levels) of the last change as (price, new total or 0)."""
        self.venues: set[str] = set()
        """Venues currently merged in."""
        self._checksum = (-1, 0)

    def __repr__(self) -> str:
        return f"AggregatedBook({self.symbol} seq={self.sequence} venues={sorted(self.venues)})"

    # -- merging -----------------------------------------------------------

    def update_from(
        self, book: OrderBook, bid_prices: Iterable[float], ask_prices: Iterable[float]
    ) -> bool:
        """Re-read ``book`` at the given prices (its last delta); True when anything changed."""
        venue = book.exchange.name
        self.venues.add(venue)
        bids = self._merge(self.bid_side, venue, book.bid_side.qty, bid_prices)
        asks = self._merge(self.ask_side, venue, book.ask_side.qty, ask_prices)
        return self._commit(bids, asks, book)

    def sync_venue(self, book: OrderBook) -> bool:
        """Replace everything ``book``'s venue contributes by its whole current content."""
        venue = book.exchange.name
        self.venues.add(venue)
        bids = self._merge(
            self.bid_side, venue, book.bid_side.qty, _touched(self.bid_side, venue, book.bid_side)
        )
        asks = self._merge(
            self.ask_side, venue, book.ask_side.qty, _touched(self.ask_side, venue, book.ask_side)
        )
        return self._commit(bids, asks, book)

    def remove_venue(self, exchange: Exchange) -> bool:
        """Take one venue out (its book went stale or its partition was revoked)."""
        venue = Exchange(exchange).name
        self.venues.discard(venue)
        bids = self._merge(self.bid_side, venue, {}, _with_venue(self.bid_side, venue))
        asks = self._merge(self.ask_side, venue, {}, _with_venue(self.ask_side, venue))
        return self._commit(bids, asks, None)

    def _merge(
        self, side: Ladder, venue: str, source: dict[float, float], prices: Iterable[float]
    ) -> dict[float, float]:
        """Set ``venue``'s quantity at each price from ``source`` (absent = 0)."""
        venues = side.venues
        assert venues is not None
        changes: dict[float, float] = {}
        for p in prices:
            q = source.get(p, 0.0)
            old = venues.get(p, _EMPTY)
            if old.get(venue, 0.0) == q:
                continue
            new = dict(old)
            if q:
                new[venue] = q
                if venue not in old and old:
                    new = dict(sorted(new.items()))
            else:
                del new[venue]
            if new:
                total = math.fsum(new.values())
                side.set(p, total)
                venues[p] = new
            else:
                total = 0.0
                side.remove(p)
                del venues[p]
            changes[p] = total
        return changes

    def _commit(
        self, bids: dict[float, float], asks: dict[float, float], book: OrderBook | None
    ) -> bool:
        if not bids and not asks:
            return False
        self.sequence += 1
        self.version += 1
        self.last_changes = (list(bids.items()), list(asks.items()))
        if book is not None:
            self.timestamp_ns = book.timestamp_ns
            self.ingest_ns = book.ingest_ns
        return True

    # -- reading -----------------------------------------------------------

    def bids(self, n: int = 0) -> list[Level]:
        """Best ``n`` bids as (price, total), highest first (all when n == 0)."""
        return self.bid_side.top(n)

    def asks(self, n: int = 0) -> list[Level]:
        """Best ``n`` asks as (price, total), lowest first (all when n == 0)."""
        return self.ask_side.top(n)

    def levels(
        self, n: int = 0, venues: Collection[str] | None = None
    ) -> tuple[list[AggLevel], list[AggLevel]]:
        """(bids, asks) as (price, total, {venue: qty}), optionally only some venues."""
        return _levels(self.bid_side, n, venues), _levels(self.ask_side, n, venues)

    def snapshot(self, depth: int = 0) -> BookUpdate:
        """The aggregated book cut to ``depth`` as an ``is_snapshot`` update with venues."""
        update = cut_snapshot(self, depth)
        bv, av = self.bid_side.venues, self.ask_side.venues
        assert bv is not None and av is not None
        update.bid_venues = [bv[p] for p, _ in update.bids]
        update.ask_venues = [av[p] for p, _ in update.asks]
        return update


def _with_venue(side: Ladder, venue: str) -> list[float]:
    assert side.venues is not None
    return [p for p, v in side.venues.items() if venue in v]


def _touched(side: Ladder, venue: str, book_side: Ladder) -> set[float]:
    """Prices where ``venue`` is now, or will be after a full re-sync from ``book_side``."""
    prices = set(book_side.qty)
    prices.update(_with_venue(side, venue))
    return prices


def _levels(side: Ladder, n: int, only: Collection[str] | None) -> list[AggLevel]:
    venues = side.venues
    assert venues is not None
    if only is None:
        return [(p, q, venues[p]) for p, q in side.top(n)]
    out: list[AggLevel] = []
    for p, _ in side.top(0):
        picked = {v: q for v, q in venues[p].items() if v in only}
        if picked:
            out.append((p, math.fsum(picked.values()), picked))
            if len(out) == n:
                break
    return out
