"""Rolling 24-hour statistics of a trade tape, in bounded memory, restorable.

Trades are folded into fixed buckets (one minute by default), each a
:class:`Bucket`: open, high, low, close with the timestamps that order them,
volume, quote volume and count. A bucket is exactly a candle of the bucket's
interval, and buckets :meth:`Bucket.merge` into coarser candles (5 x 1m = 5m) or
across venues; the ``candles`` channel builds on this type.

The window is ``[now - window, now]`` widened to whole buckets: the buckets with
index ``(now - window) // bucket`` through ``now // bucket``. So it may also count
trades up to one bucket older than ``now - window``. That definition is what
makes the state small and exact: the statistics of any ``now`` are a fold of whole
buckets, so the buckets alone (no raw trades) give exactly what folding every
trade of the tape into a fresh :class:`RollingStats` gives. Memory is at most
``window / bucket + 2`` buckets whatever the trade rate.

Figures are exact in the floating-point sense too: a bucket's volume is the sum of
its trades in arrival order, the window's the sum of its buckets in time order,
and a bucket restored from :meth:`RollingStats.buckets` carries the very same
doubles on. Open/close are by timestamp, ties by arrival.

Trades may arrive out of order: an older trade lands in its own bucket as long
as that bucket is still inside the window of the newest trade seen; an older one
is refused (``add_trade`` returns False).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.types import Exchange, Statistics, Trade

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
DAY_NS = 24 * 60 * MINUTE_NS


@dataclass(slots=True)
class Bucket:
    """The trades of one interval: a candle. Never empty (made from a first trade)."""

    first_ns: int
    """Timestamp of the earliest trade (the open)."""
    open: float
    last_ns: int
    """Timestamp of the latest trade (the close); among equal ones, the last to arrive."""
    close: float
    high: float
    low: float
    volume: float
    """Sum of quantities, in arrival order."""
    quote_volume: float
    """Sum of price x quantity, in arrival order."""
    count: int

    @classmethod
    def of(cls, ts: int, price: float, qty: float) -> Bucket:
        """A bucket holding one trade."""
        return cls(ts, price, ts, price, price, price, qty, price * qty, 1)

    def add(self, ts: int, price: float, qty: float) -> None:
        """Fold one more trade in."""
        if ts < self.first_ns:
            self.first_ns, self.open = ts, price
        if ts >= self.last_ns:
            self.last_ns, self.close = ts, price
        if price > self.high:
            self.high = price
        if price < self.low:
            self.low = price
        self.volume += qty
        self.quote_volume += price * qty
        self.count += 1

    def merge(self, other: Bucket) -> None:
        """Fold a bucket that comes after this one in merge order (later interval, or
        the next venue): the open is the earlier trade (a tie keeps this one's), the
        close the later one (a tie takes ``other``'s), sums add in that order."""
        if other.first_ns < self.first_ns:
            self.first_ns, self.open = other.first_ns, other.open
        if other.last_ns >= self.last_ns:
            self.last_ns, self.close = other.last_ns, other.close
        if other.high > self.high:
            self.high = other.high
        if other.low < self.low:
            self.low = other.low
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.count += other.count

    @property
    def vwap(self) -> float:
        return self.quote_volume / self.volume if self.volume > 0.0 else 0.0


def merged(buckets: list[Bucket]) -> Bucket | None:
    """One bucket folding ``buckets`` in order (None for none); the inputs are untouched."""
    if not buckets:
        return None
    out = replace(buckets[0])
    for b in buckets[1:]:
        out.merge(b)
    return out


def statistics(
    exchange: str,
    symbol: str,
    now_ns: int,
    window_ns: int,
    window: Bucket | None,
    best_bid: float = 0.0,
    best_ask: float = 0.0,
) -> Statistics:
    """The ``Statistics`` message of a window's aggregate and a top of book."""
    stats = Statistics(
        exchange=exchange,
        symbol=symbol,
        timestamp_ns=now_ns,
        window_ns=window_ns,
        best_bid=best_bid,
        best_ask=best_ask,
    )
    if best_bid > 0.0 and best_ask > 0.0:
        stats.spread = best_ask - best_bid
        stats.mid = (best_ask + best_bid) / 2.0
    if window is not None:
        stats.open, stats.last = window.open, window.close
        stats.high, stats.low = window.high, window.low
        stats.volume, stats.quote_volume = window.volume, window.quote_volume
        stats.trade_count = window.count
        stats.vwap = window.vwap
    return stats


class RollingStats:
    """Open/high/low/last/volume/VWAP over a sliding window, for one stream."""

    def __init__(
        self, exchange: str, symbol: str, window_ns: int = DAY_NS, bucket_ns: int = MINUTE_NS
    ) -> None:
        if window_ns <= 0 or bucket_ns <= 0:
            raise ValueError("window_ns and bucket_ns must be > 0")
        self.exchange = exchange
        self.symbol = symbol
        self.window_ns = window_ns
        self.bucket_ns = bucket_ns
        self._span = window_ns // bucket_ns + 1
        """Buckets kept behind the newest one."""
        self._buckets: dict[int, Bucket] = {}
        self._newest = -1
        """Index of the newest bucket ever seen (it decides what is too old)."""

    @property
    def bucket_count(self) -> int:
        """Buckets held now (bounded by ``window / bucket + 2``)."""
        return len(self._buckets)

    @property
    def newest(self) -> int:
        """Index of the newest bucket seen (-1 before the first trade)."""
        return self._newest

    @property
    def complete_from(self) -> int:
        """Index of the oldest bucket that surely holds every trade of its interval folded
        here (older ones may have been pruned or refused); the candles' REST route reads
        the buckets from there on instead of the trades."""
        return self._newest - self._span

    def add_trade(self, trade: Trade) -> bool:
        """Fold one trade in; False when it is older than the window of the newest trade."""
        ts = trade.timestamp_ns
        index = ts // self.bucket_ns
        if index < self._newest - self._span:
            return False
        b = self._buckets.get(index)
        if b is None:
            self._buckets[index] = Bucket.of(ts, trade.price, trade.quantity)
        else:
            b.add(ts, trade.price, trade.quantity)
        if index > self._newest:
            self._newest = index
            self._prune()
        return True

    def _prune(self) -> None:
        oldest = self._newest - self._span
        for index in [i for i in self._buckets if i < oldest]:
            del self._buckets[index]

    def window(self, now_ns: int) -> Bucket | None:
        """The window ending at ``now_ns`` folded into one bucket (None without trades)."""
        hi = now_ns // self.bucket_ns
        lo = (now_ns - self.window_ns) // self.bucket_ns
        buckets = self._buckets
        return merged([buckets[i] for i in sorted(i for i in buckets if lo <= i <= hi)])

    def snapshot(self, now_ns: int, best_bid: float = 0.0, best_ask: float = 0.0) -> Statistics:
        """Statistics of the window ending at ``now_ns``, with the given top of book."""
        return statistics(
            self.exchange,
            self.symbol,
            now_ns,
            self.window_ns,
            self.window(now_ns),
            best_bid,
            best_ask,
        )

    # -- checkpoint ----------------------------------------------------------

    def buckets(self, copy: bool = True) -> list[tuple[int, Bucket]]:
        """Every bucket held, oldest first, as ``(index, bucket)``: the whole state with
        :attr:`newest` (what a checkpoint stores). ``copy=False`` hands out the live
        buckets, for a caller that serialises them before the next trade."""
        items = sorted(self._buckets.items())
        return [(i, replace(b)) for i, b in items] if copy else items

    def restore(self, buckets: list[tuple[int, Bucket]], newest: int) -> None:
        """Replace the state with a checkpoint's (``buckets()`` and ``newest`` of a
        RollingStats of the same window and bucket size); buckets older than the
        window of ``newest`` are dropped as ``add_trade`` would have."""
        self._buckets = {i: replace(b) for i, b in buckets}
        self._newest = max([newest, *self._buckets]) if self._buckets else newest
        self._prune()


@dataclass(slots=True)
class StatsCheckpoint:
    """What a restart needs of one stream's trades: the statistics' buckets, the recent
    tape and the trade sequence reached, so that restoring it and folding the trades
    after it gives exactly the state of a process that read every trade."""

    exchange: Exchange
    symbol: str
    window_ns: int
    bucket_ns: int
    newest: int
    """:attr:`RollingStats.newest`."""
    buckets: list[tuple[int, Bucket]]
    """:meth:`RollingStats.buckets`, oldest first."""
    recent: list[Trade]
    """The tape, newest first (at most the Market's ``trades_per_stream``)."""
    last_trade_sequence: int = 0
    """Highest trade sequence applied (repeats at or below it are dropped)."""
