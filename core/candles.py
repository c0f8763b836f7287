"""Candles (OHLCV per epoch-aligned interval) of a trade tape: docs/protocol.md §4.9.

A candle is a :class:`core.stats.Bucket` of its interval. It is built from *parts*:
buckets of a base width, the statistics' bucket (one minute) for intervals that
are whole multiples of it, else the interval itself (``1s``). Each part folds its
trades in arrival order and a candle merges its parts in time order, exactly as
the 24 h statistics do. So the same figures come out of every path, to the last
bit: the live builder (:class:`CandleBuilder`), the statistics' minute buckets
held in memory or restored from a checkpoint (:func:`candles_of_parts`), and a
fresh read of the trades (:func:`fold_parts` then :func:`candles_of_parts`).

Open is the earliest trade by timestamp (ties: the first to arrive), close the
latest (ties: the last to arrive); volume is the sum of quantities, quote volume
the sum of price x quantity (each part in arrival order, parts in time order),
vwap their ratio.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from core.stats import MINUTE_NS, SECOND_NS, Bucket, merged
from core.types import Trade

INTERVALS: dict[str, int] = {
    "1s": SECOND_NS,
    "1m": MINUTE_NS,
    "5m": 5 * MINUTE_NS,
    "15m": 15 * MINUTE_NS,
    "1h": 60 * MINUTE_NS,
    "4h": 240 * MINUTE_NS,
    "1d": 1440 * MINUTE_NS,
}
"""Interval name -> width in ns; every interval starts at a multiple of its width."""


CLOSE_GRACE_NS = 2_000_000_000
"""An interval is closed this long after its end on the stream's clock (its newest trade's
timestamp plus the wall time since): trades a little late still make it in."""


def base_ns(interval_ns: int, bucket_ns: int = MINUTE_NS) -> int:
    """Width of the parts of a candle of ``interval_ns``."""
    return bucket_ns if interval_ns % bucket_ns == 0 else interval_ns


@dataclass(frozen=True, slots=True)
class Candle:
    """One candle of one stream, as sent (``closed`` False while its interval is open)."""

    exchange: str
    symbol: str
    interval: str
    open_time: int
    close_time: int
    """Last nanosecond of the interval (``open_time + width - 1``)."""
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    vwap: float
    closed: bool


def candle(
    exchange: str, symbol: str, interval: str, index: int, b: Bucket, closed: bool
) -> Candle:
    """The candle of interval number ``index`` (``open_time = index * width``) holding ``b``."""
    width = INTERVALS[interval]
    return Candle(
        exchange,
        symbol,
        interval,
        index * width,
        index * width + width - 1,
        b.open,
        b.high,
        b.low,
        b.close,
        b.volume,
        b.quote_volume,
        b.count,
        b.vwap,
        closed,
    )


def fold_parts(trades: Iterable[Trade], part_ns: int) -> dict[int, Bucket]:
    """Trades in arrival order -> ``{part index: bucket}``."""
    parts: dict[int, Bucket] = {}
    for t in trades:
        i = t.timestamp_ns // part_ns
        b = parts.get(i)
        if b is None:
            parts[i] = Bucket.of(t.timestamp_ns, t.price, t.quantity)
        else:
            b.add(t.timestamp_ns, t.price, t.quantity)
    return parts


def candles_of_parts(
    parts: Iterable[tuple[int, Bucket]], part_ns: int, interval_ns: int
) -> list[tuple[int, Bucket]]:
    """``(candle index, bucket)`` of every interval with trades, oldest first, from parts
    of width ``part_ns`` (which divides ``interval_ns``); the inputs are untouched."""
    if interval_ns % part_ns:
        raise ValueError(f"parts of {part_ns} ns do not tile intervals of {interval_ns} ns")
    per = interval_ns // part_ns
    out: list[tuple[int, Bucket]] = []
    for i, b in sorted(parts, key=lambda ib: ib[0]):
        ci = i // per
        if out and out[-1][0] == ci:
            out[-1][1].merge(b)
        else:
            out.append((ci, replace(b)))
    return out


class CandleBuilder:
    """The open candle of one stream and interval, fed trade by trade (the live channel).

    A trade of a later interval closes the open candle; :meth:`due` closes it when the
    stream's clock passes its end with no trade (a quiet market). A trade of an interval
    already closed cannot be sent any more: it is refused and counted in ``late``.
    """

    def __init__(
        self, exchange: str, symbol: str, interval: str, bucket_ns: int = MINUTE_NS
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.interval = interval
        self.width = INTERVALS[interval]
        self.part_ns = base_ns(self.width, bucket_ns)
        self.index = -1
        """Interval number of the open candle (-1: none open)."""
        self._parts: dict[int, Bucket] = {}
        self._top = -1
        """Index of the newest part of the open candle."""
        self._done: Bucket | None = None
        """The parts before ``_top``, merged in time order."""
        self._closed_through = -1
        """Highest interval number closed: its trades are late."""
        self._clock_ts = 0
        """Stream time at ``_clock_wall``: the newest trade timestamp seen."""
        self._clock_wall = 0
        self.late = 0
        """Trades refused because their interval was already closed."""

    # -- feeding ----------------------------------------------------------------

    def seed(self, parts: Iterable[tuple[int, Bucket]], newest_ts: int, wall_ns: int) -> None:
        """Start from state kept elsewhere (the statistics' buckets, or the recent tape folded
        by :func:`fold_parts`): the parts of the interval of the newest one become the open
        candle. ``newest_ts`` is the newest trade's timestamp, seen at ``wall_ns``."""
        items = sorted(parts, key=lambda ib: ib[0])
        self._clock_ts, self._clock_wall = newest_ts, wall_ns
        if not items:
            return
        per = self.width // self.part_ns
        ci = items[-1][0] // per
        self._open(ci)
        self._parts = {i: replace(b) for i, b in items if i // per == ci}
        self._top = max(self._parts)
        self._done = merged([self._parts[i] for i in sorted(self._parts) if i < self._top])

    def add(self, trade: Trade, wall_ns: int) -> tuple[Candle | None, Candle | None]:
        """Fold one trade in: ``(the candle it closed or None, the open candle after it)``;
        ``(None, None)`` for a late trade."""
        ts = trade.timestamp_ns
        if ts > self._clock_ts:
            self._clock_ts = ts
        self._clock_wall = wall_ns
        ci = ts // self.width
        if ci <= self._closed_through or (self.index >= 0 and ci < self.index):
            self.late += 1
            return None, None
        closed = None
        if ci > self.index:
            closed = self._close()
            self._open(ci)
        self._fold(ts // self.part_ns, ts, trade.price, trade.quantity)
        return closed, self.current()

    def due(self, wall_ns: int, grace_ns: int) -> Candle | None:
        """Close the open candle when the stream's clock (its newest trade's timestamp plus
        the wall time since) is ``grace_ns`` past its end; the closed candle, else None."""
        if self.index < 0:
            return None
        now = self._clock_ts + max(0, wall_ns - self._clock_wall)
        if now <= (self.index + 1) * self.width - 1 + grace_ns:
            return None
        return self._close()

    # -- reading ----------------------------------------------------------------

    def current(self) -> Candle | None:
        """The open candle, None when no interval is open."""
        if self.index < 0:
            return None
        top = self._parts[self._top]
        b = top if self._done is None else merged([self._done, top])
        assert b is not None
        return candle(self.exchange, self.symbol, self.interval, self.index, b, False)

    # -- internals ----------------------------------------------------------------

    def _open(self, ci: int) -> None:
        self.index = ci
        self._parts = {}
        self._top = -1
        self._done = None

    def _close(self) -> Candle | None:
        c = self.current()
        if c is None:
            return None
        self._closed_through = self.index
        self._open(-1)
        return replace(c, closed=True)

    def _fold(self, pi: int, ts: int, price: float, qty: float) -> None:
        parts = self._parts
        b = parts.get(pi)
        if b is None:
            parts[pi] = Bucket.of(ts, price, qty)
        else:
            b.add(ts, price, qty)
        if pi > self._top:
            if self._top >= 0:
                prev = parts[self._top]
                if self._done is None:
                    self._done = replace(prev)
                else:
                    self._done.merge(prev)
            self._top = pi
        elif pi < self._top:  # an older part of the open candle: rare, merge again
            self._done = merged([parts[i] for i in sorted(parts) if i < self._top])
