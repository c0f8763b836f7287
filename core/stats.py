"""Rolling 24-hour statistics of a trade tape, in bounded memory.

Trades are folded into fixed buckets (one minute by default) holding open, high,
low, last, volumes and count. Memory is therefore at most ``window / bucket + 2``
buckets whatever the trade rate. The price of that bound is granularity: the
window is ``[now - window, now]`` widened to whole buckets, so it may also count
trades up to one bucket older than ``now - window``. Within the buckets it
covers, the figures are exact (open/last by timestamp, ties by arrival).

Trades may arrive out of order: an older trade lands in its own bucket as long
as that bucket is still inside the window of the newest trade seen; an older one
is refused (``add_trade`` returns False).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.types import Statistics, Trade

SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
DAY_NS = 24 * 60 * MINUTE_NS


@dataclass(slots=True)
class _Bucket:
    """Trades of one bucket interval."""

    first_ns: int
    open: float
    last_ns: int
    last: float
    high: float
    low: float
    volume: float
    quote_volume: float
    count: int


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
        self._buckets: dict[int, _Bucket] = {}
        self._newest = -1

    @property
    def bucket_count(self) -> int:
        """Buckets held now (bounded by ``window / bucket + 2``)."""
        return len(self._buckets)

    def add_trade(self, trade: Trade) -> bool:
        """Fold one trade in; False when it is older than the window of the newest trade."""
        ts, price, qty = trade.timestamp_ns, trade.price, trade.quantity
        index = ts // self.bucket_ns
        if index < self._newest - self._span:
            return False
        b = self._buckets.get(index)
        if b is None:
            self._buckets[index] = _Bucket(ts, price, ts, price, price, price, qty, price * qty, 1)
        else:
            if ts < b.first_ns:
                b.first_ns, b.open = ts, price
            if ts >= b.last_ns:
                b.last_ns, b.last = ts, price
            if price > b.high:
                b.high = price
            if price < b.low:
                b.low = price
            b.volume += qty
            b.quote_volume += price * qty
            b.count += 1
        if index > self._newest:
            self._newest = index
            self._prune()
        return True

    def _prune(self) -> None:
        oldest = self._newest - self._span
        for index in [i for i in self._buckets if i < oldest]:
            del self._buckets[index]

    def snapshot(self, now_ns: int, best_bid: float = 0.0, best_ask: float = 0.0) -> Statistics:
        """Statistics of the window ending at ``now_ns``, with the given top of book."""
        hi = now_ns // self.bucket_ns
        lo = (now_ns - self.window_ns) // self.bucket_ns
        buckets = self._buckets
        keys = [i for i in buckets if lo <= i <= hi]
        stats = Statistics(
            exchange=self.exchange,
            symbol=self.symbol,
            timestamp_ns=now_ns,
            window_ns=self.window_ns,
            best_bid=best_bid,
            best_ask=best_ask,
        )
        if best_bid > 0.0 and best_ask > 0.0:
            stats.spread = best_ask - best_bid
            stats.mid = (best_ask + best_bid) / 2.0
        if not keys:
            return stats
        chosen = [buckets[i] for i in sorted(keys)]
        stats.open = chosen[0].open
        stats.last = chosen[-1].last
        stats.high = max(b.high for b in chosen)
        stats.low = min(b.low for b in chosen)
        stats.volume = sum(b.volume for b in chosen)
        stats.quote_volume = sum(b.quote_volume for b in chosen)
        stats.trade_count = sum(b.count for b in chosen)
        if stats.volume > 0.0:
            stats.vwap = stats.quote_volume / stats.volume
        return stats
