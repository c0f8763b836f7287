"""One side of an order book: a price ladder (``dict`` of quantities + sorted price list).

Chosen by measurement (``bench/core_bench.py``): for books of a few hundred to a
few thousand levels, a plain Python list kept sorted with ``bisect`` beats
``sortedcontainers.SortedDict`` and the ``order-book`` C extension on the
operations a market-data gateway needs most: set/remove a level near the top,
read the top N, and find the N-th best price (depth-view boundaries).

Prices are kept ascending in ``_keys`` for both sides; ``desc`` says whether the
best level is the highest price (bids) or the lowest (asks). "Position" below
means rank from the best level, 0-based.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable

from core.types import Level

VenueMap = dict[str, float]
"""Per-venue quantities of one aggregated level; never mutated once stored."""


class Ladder:
    """Price -> quantity for one side, with ranked access by position."""

    __slots__ = ("_keys", "desc", "qty", "venues")

    def __init__(self, desc: bool, *, with_venues: bool = False) -> None:
        self.desc = desc
        """True for bids (best = highest price), False for asks."""
        self.qty: dict[float, float] = {}
        """Price -> quantity; every stored quantity is > 0."""
        self._keys: list[float] = []
        self.venues: dict[float, VenueMap] | None = {} if with_venues else None
        """Aggregated books only: price -> per-venue quantities (read-only maps)."""

    def __len__(self) -> int:
        return len(self._keys)

    def get(self, price: float) -> float | None:
        """Quantity at ``price``, None when there is no such level."""
        return self.qty.get(price)

    def set(self, price: float, quantity: float) -> None:
        """Insert or overwrite a level; ``quantity`` must be > 0."""
        qty = self.qty
        if price not in qty:
            insort(self._keys, price)
        qty[price] = quantity

    def remove(self, price: float) -> None:
        """Delete a level if present (removing a missing level is a no-op, as on the wire)."""
        if self.qty.pop(price, None) is not None:
            keys = self._keys
            del keys[bisect_left(keys, price)]

    def replace(self, levels: Iterable[Level]) -> None:
        """Replace the whole side with ``levels`` (validated, unique prices, qty > 0)."""
        self.qty = dict(levels)
        self._keys = sorted(self.qty)

    def top(self, n: int = 0) -> list[Level]:
        """The best ``n`` levels (all when n == 0), best first."""
        keys = self._keys
        if not n:
            ks = keys[::-1] if self.desc else keys[:]
        elif self.desc:
            ks = keys[: -n - 1 : -1]
        else:
            ks = keys[:n]
        return list(zip(ks, map(self.qty.__getitem__, ks), strict=True))

    def flat_top(self, n: int) -> list[float]:
        """The best ``n`` levels (n > 0) flattened as [p0, q0, p1, q1, ...], for checksums."""
        keys = self._keys
        ks = keys[: -n - 1 : -1] if self.desc else keys[:n]
        flat = [0.0] * (2 * len(ks))
        flat[0::2] = ks
        flat[1::2] = map(self.qty.__getitem__, ks)
        return flat

    def best(self) -> Level | None:
        """The best level, None when the side is empty."""
        keys = self._keys
        if not keys:
            return None
        price = keys[-1] if self.desc else keys[0]
        return (price, self.qty[price])

    def nth(self, n: int) -> float | None:
        """Price of the n-th best level (1-based), None when fewer than n levels."""
        keys = self._keys
        if n <= 0 or n > len(keys):
            return None
        return keys[-n] if self.desc else keys[n - 1]

    def prices(self, start: int, stop: int) -> list[float]:
        """Prices at positions ``start .. stop-1`` (best first), clipped to the side."""
        keys = self._keys
        size = len(keys)
        stop = min(stop, size)
        if start >= stop:
            return []
        if self.desc:
            return keys[size - stop : size - start][::-1]
        return keys[start:stop]

    def count_at_least(self, price: float) -> int:
        """Number of levels priced at least as well as ``price`` (>= for bids, <= for asks)."""
        keys = self._keys
        if self.desc:
            return len(keys) - bisect_left(keys, price)
        return bisect_right(keys, price)

    def copy(self) -> Ladder:
        """An independent copy (venue maps are shared: they are never mutated)."""
        other = Ladder(self.desc)
        other.qty = dict(self.qty)
        other._keys = self._keys[:]
        other.venues = None if self.venues is None else dict(self.venues)
        return other
