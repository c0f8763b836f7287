"""One subscription's order book as the client holds it.

Each side is a dict of price -> quantity plus the prices in a sorted list, so the
best levels are a slice away: books are a few hundred levels at most and updates
touch a few of them, where ``bisect`` on a list beats any tree.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from mdgw_client.checksum import Level, checksum


@dataclass
class _Side:
    """Price levels of one side, prices kept in ascending order."""

    quantities: dict[float, float] = field(default_factory=dict)
    prices: list[float] = field(default_factory=list)

    def set(self, price: float, quantity: float) -> None:
        """Set a level; quantity 0 removes it (docs/protocol.md §4.4)."""
        if not quantity:
            if self.quantities.pop(price, None) is not None:
                del self.prices[bisect_left(self.prices, price)]
            return
        if price not in self.quantities:
            insort(self.prices, price)
        self.quantities[price] = quantity

    def ascending(self, n: int) -> list[Level]:
        """The n lowest levels (all with n=0)."""
        prices = self.prices[:n] if n else self.prices
        return [(p, self.quantities[p]) for p in prices]

    def descending(self, n: int) -> list[Level]:
        """The n highest levels (all with n=0), highest first."""
        prices = self.prices[: -n - 1 : -1] if n else self.prices[::-1]
        return [(p, self.quantities[p]) for p in prices]

    def keep_lowest(self, n: int) -> None:
        for p in self.prices[n:]:
            del self.quantities[p]
        del self.prices[n:]

    def keep_highest(self, n: int) -> None:
        cut = len(self.prices) - n
        if cut > 0:
            for p in self.prices[:cut]:
                del self.quantities[p]
            del self.prices[:cut]

    def __len__(self) -> int:
        return len(self.prices)


def _pairs(levels: Iterable[Sequence[object]]) -> Iterable[Level]:
    # a level is [price, quantity] or, in aggregated books, [price, total, {venue: q}]
    for lv in levels:
        yield float(lv[0]), float(lv[1])  # type: ignore[arg-type]


@dataclass
class LocalBook:
    """One book subscription: levels, the last applied sequence, and what went wrong."""

    key: str
    """The stream (``EXCHANGE:SYMBOL``), ``agg:SYMBOL`` or ``replay:<id>:<stream>``."""
    depth: int
    """The subscribed depth; 0 is the full book."""
    sequence: int = -1
    """Sequence of the last message applied."""
    valid: bool = False
    """False until a snapshot arrives, and again after a break until the next one."""
    checksum: int = 0
    """The server's checksum of the last message."""
    messages: int = 0
    breaks: int = 0
    resyncs: int = 0
    behind: bool = False
    """The server said this client is behind (``status`` ``behind``): no updates come
    until a snapshot (after ``resync``) or ``caught_up``; the book is whole but old."""
    resume_from: int | None = None
    """Sequence a reconnect asked to resume from (docs/protocol.md §4.10), until the
    server answers."""
    _bids: _Side = field(default_factory=_Side, repr=False)
    _asks: _Side = field(default_factory=_Side, repr=False)

    def top_bids(self, n: int = 0) -> list[Level]:
        """The best n bids (all with n=0), highest price first."""
        return self._bids.descending(n)

    def top_asks(self, n: int = 0) -> list[Level]:
        """The best n asks (all with n=0), lowest price first."""
        return self._asks.ascending(n)

    def best_bid(self) -> Level | None:
        top = self._bids.descending(1)
        return top[0] if top else None

    def best_ask(self) -> Level | None:
        top = self._asks.ascending(1)
        return top[0] if top else None

    def local_checksum(self) -> int:
        """docs/protocol.md §5 over the book as held here."""
        return checksum(self.top_asks(10), self.top_bids(10))

    def load(
        self,
        bids: Iterable[Sequence[object]],
        asks: Iterable[Sequence[object]],
        sequence: int,
    ) -> None:
        """Replace the book with a snapshot."""
        self._bids, self._asks = _Side(), _Side()
        self.apply(bids, asks, sequence)
        self.valid = True
        self.behind = False
        self.resume_from = None

    def apply(
        self,
        bids: Iterable[Sequence[object]],
        asks: Iterable[Sequence[object]],
        sequence: int,
    ) -> None:
        """Apply an update's levels, then cut the book to the subscribed depth."""
        for p, q in _pairs(bids):
            self._bids.set(p, q)
        for p, q in _pairs(asks):
            self._asks.set(p, q)
        if self.depth:
            self._bids.keep_highest(self.depth)
            self._asks.keep_lowest(self.depth)
        self.sequence = sequence
