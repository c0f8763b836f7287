"""Simulated exchange feeds: order books and trade tapes, pure and deterministic.

No I/O and no clock: the caller passes event times in and publishes what comes
out, so a seed and a list of timestamps always give the same records. The runner
(:mod:`producers.simulate_run`) paces it; tests drive it directly.

Model, per stream (``EXCHANGE:SYMBOL``):

- Prices and quantities live on integer grids (ticks and lots) and are turned
  into floats with ``round(k * step, decimals)``, so equal prices are equal floats
  and every price is an exact multiple of the tick as the venue would print it.
- A hidden mid price random-walks (in ticks, per book event). The book follows it:
  levels that end up on the wrong side of the mid are cancelled, new levels are
  added between the best price and the mid, so the book moves and never crosses.
- Each book event is a delta of 1-4 levels, mostly near the top (geometric
  distance from the best price): adds, modifies and cancels. The level count of
  a side is held near ``levels`` by adding or removing levels at the far end.
- A trade takes liquidity at the best bid or ask: one :class:`Trade` plus the
  book delta that reduces or removes that level, so tape and book agree.

Sequencing follows docs/protocol.md §2.2: per stream, book records are numbered +1 from a
base with ``prev_sequence`` = previous; the first record and every
``snapshot_every``-th after it is a full book (``is_snapshot=True``); trades have
their own contiguous sequence from the same base.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from core.types import KNOWN_EXCHANGES, BookUpdate, Exchange, Level, Trade, stream_key

if TYPE_CHECKING:
    from mdgw.config import SimulatorConfig

Record = BookUpdate | Trade
_PAIR = struct.Struct("<dd")
_CHECKSUM_LEVELS = 10
_NEAR_TOP = 0.35
"""Success probability of the geometric distance from the best price (mean ~2 levels)."""
_P_ADD, _P_CANCEL = 0.4, 0.2
"""Share of random ops that add or cancel a level; the rest modify one."""


def decimals(step: float) -> int:
    """Decimal places of a grid step: 0.01 -> 2, 1e-08 -> 8, 5 -> 0."""
    return max(0, -int(Decimal(repr(step)).normalize().as_tuple().exponent))


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What one simulated stream looks like: venue, symbol, price and size grids."""

    exchange: Exchange
    symbol: str
    mid: float
    """Starting mid price."""
    tick: float
    """Price increment: every price is an integer multiple of it."""
    lot: float
    """Quantity increment."""
    level_qty: float
    """Median quantity resting at one price level, in base units."""
    weight: float = 1.0
    """Relative share of the events (BTC is busier than SOL)."""
    spacing: float = 2.0
    """Mean distance between adjacent levels, in ticks (1 = every tick filled)."""
    vol: float = 2.0
    """Standard deviation of the mid's step per book event, in units of ``spacing``."""

    @property
    def key(self) -> str:
        """The stream name, ``EXCHANGE:SYMBOL``."""
        return stream_key(self.exchange, self.symbol)


_B, _C, _K = Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN
_MAJORS: dict[Exchange, tuple[StreamSpec, ...]] = {
    _B: (
        StreamSpec(_B, "BTC-USDT", 97_012.35, 0.01, 0.00001, 0.4, weight=4.0, spacing=1.5),
        StreamSpec(_B, "ETH-USDT", 3_501.27, 0.01, 0.0001, 4.0, weight=3.0, spacing=1.5),
        StreamSpec(_B, "SOL-USDT", 240.13, 0.01, 0.001, 40.0, weight=2.0, spacing=1.2),
    ),
    _C: (
        StreamSpec(_C, "BTC-USD", 97_004.18, 0.01, 1e-8, 0.25, weight=3.0, spacing=3.0),
        StreamSpec(_C, "ETH-USD", 3_500.42, 0.01, 1e-8, 3.0, weight=2.0, spacing=2.0),
        StreamSpec(_C, "SOL-USD", 240.07, 0.01, 1e-8, 30.0, weight=1.5, spacing=1.5),
    ),
    _K: (
        StreamSpec(_K, "BTC-USD", 96_998.6, 0.1, 1e-8, 0.2, weight=2.0, spacing=1.5),
        StreamSpec(_K, "ETH-USD", 3_499.85, 0.01, 1e-8, 2.0, weight=1.5, spacing=2.5),
        StreamSpec(_K, "SOL-USD", 239.962, 0.001, 1e-8, 20.0, weight=1.0, spacing=4.0),
    ),
}


def _synthetic(exchange: Exchange, index: int, seed: int) -> StreamSpec:
    """An extra symbol ``S001-USDT`` (Binance) or ``S001-USD``, for load tests.

    The base mid depends only on ``(seed, index)``, so Coinbase and Kraken list the
    same synthetic symbol at nearly the same price, like the majors.
    """
    base = random.Random(f"sim:{seed}:{index}")
    mid = 10 ** base.uniform(-1.0, 3.0)
    mid *= 1 + random.Random(f"sim:{seed}:{index}:{exchange.name}").uniform(-5e-4, 5e-4)
    exp = math.floor(math.log10(mid)) - 4 + (1 if exchange is _K else 0)
    level_qty = 2_000.0 / mid
    quote = "USDT" if exchange is _B else "USD"
    return StreamSpec(
        exchange,
        f"S{index:03d}-{quote}",
        mid,
        tick=float(f"1e{exp}"),
        lot=float(f"1e{math.floor(math.log10(level_qty)) - 3}"),
        level_qty=level_qty,
        weight=0.5,
        spacing=2.0,
    )


def default_streams(symbols_per_exchange: int = 3, *, seed: int = 0) -> list[StreamSpec]:
    """BTC, ETH, SOL on Binance (USDT), Coinbase and Kraken (USD), then synthetic ones.

    Beyond three symbols per exchange come ``S001-...``, ``S002-...`` with random
    mids (deterministic in ``seed``), so 34 per exchange give ~100 streams.
    """
    if symbols_per_exchange < 1:
        raise ValueError("symbols_per_exchange must be >= 1")
    out: list[StreamSpec] = []
    for exchange in KNOWN_EXCHANGES:
        majors = _MAJORS[exchange][:symbols_per_exchange]
        out.extend(majors)
        extra = symbols_per_exchange - len(majors)
        out.extend(_synthetic(exchange, i, seed) for i in range(1, extra + 1))
    return out


class _Side:
    """One side of a book on the integer tick grid: ticks sorted ascending, lots per tick.

    Each level's float ``(price, quantity)`` and its packed float64 pair are kept
    too, converted once when the level changes: snapshots and deltas reuse the
    tuple and the checksum of the top levels costs a join.
    """

    __slots__ = (
        *("_lot", "_lot_dec", "_tick", "_tick_dec"),
        *("is_bid", "level", "lots", "packed", "ticks"),
    )

    def __init__(self, is_bid: bool, spec: StreamSpec) -> None:
        self.is_bid = is_bid
        self.ticks: list[int] = []
        self.lots: dict[int, int] = {}
        self.level: dict[int, Level] = {}
        self.packed: dict[int, bytes] = {}
        self._tick, self._tick_dec = spec.tick, decimals(spec.tick)
        self._lot, self._lot_dec = spec.lot, decimals(spec.lot)

    def __len__(self) -> int:
        return len(self.ticks)

    def price(self, tick: int) -> float:
        return round(tick * self._tick, self._tick_dec)

    def qty(self, lots: int) -> float:
        return round(lots * self._lot, self._lot_dec)

    def best(self) -> int:
        return self.ticks[-1] if self.is_bid else self.ticks[0]

    def deepest(self) -> int:
        return self.ticks[0] if self.is_bid else self.ticks[-1]

    def from_best(self, k: int) -> int:
        """The tick of the k-th level from the best (0 = best), clipped to the book."""
        k = min(k, len(self.ticks) - 1)
        return self.ticks[-1 - k] if self.is_bid else self.ticks[k]

    def set(self, tick: int, lots: int) -> None:
        """Set a level's size; 0 removes it."""
        if lots == 0:
            if self.lots.pop(tick, None) is not None:
                del self.ticks[bisect.bisect_left(self.ticks, tick)]
                del self.level[tick], self.packed[tick]
            return
        if tick not in self.lots:
            bisect.insort(self.ticks, tick)
        self.lots[tick] = lots
        level = self.level[tick] = (self.price(tick), self.qty(lots))
        self.packed[tick] = _PAIR.pack(*level)

    def top(self, n: int) -> list[int]:
        """Ticks of the best n levels, best first."""
        return self.ticks[: -n - 1 : -1] if self.is_bid else self.ticks[:n]

    def levels(self) -> list[Level]:
        """The whole side as (price, quantity), best first."""
        level = self.level
        return [level[t] for t in (reversed(self.ticks) if self.is_bid else self.ticks)]


class _Delta:
    """The levels one event changed, with their sizes before it (to drop no-ops)."""

    __slots__ = ("_before", "changed")

    def __init__(self) -> None:
        self.changed: dict[tuple[bool, int], int] = {}
        self._before: dict[tuple[bool, int], int] = {}

    def set(self, side: _Side, tick: int, lots: int) -> None:
        key = (side.is_bid, tick)
        if key not in self._before:
            self._before[key] = side.lots.get(tick, 0)
        side.set(tick, lots)
        self.changed[key] = lots

    def levels(self, side: _Side) -> list[Level]:
        """This side's net changes, best first; a level touched and restored is left out."""
        is_bid, changed, before = side.is_bid, self.changed, self._before
        ticks = [t for (b, t), n in changed.items() if b is is_bid and n != before[(b, t)]]
        ticks.sort(reverse=is_bid)
        level = side.level
        return [level[t] if t in level else (side.price(t), 0.0) for t in ticks]


REVERSION = 0.002
"""Share of the distance to the reference price the mid moves back per event."""


class SimulatedBook:
    """One stream's order book around a random-walk mid; every change returns its delta."""

    def __init__(self, spec: StreamSpec, levels: int, rng: random.Random) -> None:
        if levels < 1:
            raise ValueError("levels must be >= 1")
        self.spec = spec
        self.levels = levels
        self._rng = rng
        self.bids = _Side(True, spec)
        self.asks = _Side(False, spec)
        self.mid_ticks = spec.mid / spec.tick
        self._reference = self.mid_ticks
        self._spacing = max(spec.spacing, 1.0)
        self._sigma = spec.vol * self._spacing
        self._slack = max(1, levels // 20)
        self._qty_mu = math.log(max(spec.level_qty / spec.lot, 1.0))
        # The walk reflects here, so the deepest bid stays well above tick 0.
        self._floor = 4.0 * levels * self._spacing + 10.0
        self.mid_ticks = max(self.mid_ticks, self._floor)
        self._fill()

    # -- random pieces -------------------------------------------------------------

    def _geom(self, p: float) -> int:
        """Failures before the first success, P(k) = (1-p)^k p."""
        return int(math.log(1.0 - self._rng.random()) / math.log(1.0 - p))

    def _gap(self) -> int:
        """Ticks between adjacent levels: 1 + geometric, mean ``spacing``."""
        extra = self.spec.spacing - 1.0
        return 1 if extra <= 0 else 1 + self._geom(1.0 / (1.0 + extra))

    def _lots(self) -> int:
        """A resting size in lots, log-normal around ``level_qty``."""
        return max(1, int(self._rng.lognormvariate(self._qty_mu, 1.0)))

    # -- shape ---------------------------------------------------------------------

    def _fill(self) -> None:
        """Build ``levels`` levels a side outward from the mid."""
        tick = math.ceil(self.mid_ticks) - 1
        for _ in range(self.levels):
            self.bids.set(tick, self._lots())
            tick -= self._gap()
        tick = math.floor(self.mid_ticks) + 1
        for _ in range(self.levels):
            self.asks.set(tick, self._lots())
            tick += self._gap()

    def _anchor(self, side: _Side) -> int:
        """The most aggressive tick a new level of ``side`` may take: own side of the
        mid and never at or through the other side's best (so never crossed)."""
        if side.is_bid:
            tick = math.ceil(self.mid_ticks) - 1
            return min(tick, self.asks.best() - 1) if self.asks.ticks else tick
        tick = math.floor(self.mid_ticks) + 1
        return max(tick, self.bids.best() + 1) if self.bids.ticks else tick

    def _drift(self) -> None:
        # A random walk pulled gently back to the reference price, so venues quoting the
        # same symbol stay close (cross-venue books cross only briefly, as arbitrage allows).
        pull = REVERSION * (self._reference - self.mid_ticks)
        self.mid_ticks += self._rng.gauss(0.0, self._sigma) + pull
        if self.mid_ticks < self._floor:
            self.mid_ticks = 2 * self._floor - self.mid_ticks

    def _follow(self, side: _Side, delta: _Delta) -> bool:
        """Make one side follow the mid: cancel its best level when the mid has moved
        through it, or add a level near the mid when the mid has moved away from it."""
        if not side.ticks:
            return False
        best = side.best()
        if best >= self.mid_ticks if side.is_bid else best <= self.mid_ticks:
            delta.set(side, best, 0)
            return True
        anchor = self._anchor(side)
        if abs(anchor - best) > 2 * self._spacing:
            offset = int(self._rng.random() * self._spacing)
            delta.set(side, anchor - offset if side.is_bid else anchor + offset, self._lots())
            return True
        return False

    def _keep_two_sided(self, delta: _Delta) -> None:
        for side in (self.bids, self.asks):
            if not side.ticks:
                delta.set(side, self._anchor(side), self._lots())

    # -- ops -----------------------------------------------------------------------

    def _modify(self, side: _Side, delta: _Delta) -> None:
        tick = side.from_best(self._geom(_NEAR_TOP))
        lots = self._lots()
        delta.set(side, tick, lots if lots != side.lots[tick] else lots + 1)

    def _add(self, side: _Side, delta: _Delta) -> None:
        """A new level near the top: improve the best price when the spread is wide,
        else fill the first hole at or below the k-th level (so moves leave no vacuum)."""
        spacing = self._spacing
        sign = -1 if side.is_bid else 1
        anchor = self._anchor(side)
        gap_at_top = (anchor - side.best()) * -sign
        if gap_at_top >= spacing:
            tick: int | None = anchor + sign * int(self._rng.random() * spacing)
        else:
            tick = self._hole(side, self._geom(_NEAR_TOP), spacing)
        if tick is None or tick < 1 or tick in side.lots:
            self._modify(side, delta)
        else:
            delta.set(side, tick, self._lots())

    def _hole(self, side: _Side, k: int, spacing: float) -> int | None:
        """A free tick between two adjacent levels from the k-th one down: the first
        gap wider than ``2 * spacing`` within 8 levels, else the k-th gap if any."""
        first: int | None = None
        for i in range(k, min(k + 8, len(side) - 1)):
            upper, lower = side.from_best(i), side.from_best(i + 1)
            width = abs(upper - lower)
            if width > 2 * spacing:
                return min(upper, lower) + 1 + int(self._rng.random() * (width - 1))
            if first is None and width > 1:
                first = min(upper, lower) + 1 + int(self._rng.random() * (width - 1))
        return first

    def _cancel(self, side: _Side, delta: _Delta) -> None:
        if len(side) <= 1:
            self._modify(side, delta)
        else:
            delta.set(side, side.from_best(self._geom(_NEAR_TOP)), 0)

    def _far_end(self, side: _Side, delta: _Delta) -> bool:
        """Add or remove a level at the deep end when the side strays from ``levels``."""
        if len(side) > self.levels + self._slack:
            delta.set(side, side.deepest(), 0)
            return True
        if len(side) < self.levels - self._slack:
            gap = self._gap()
            tick = side.deepest() + (-gap if side.is_bid else gap)
            if tick >= 1:
                delta.set(side, tick, self._lots())
                return True
        return False

    def _random_op(self, side: _Side, delta: _Delta) -> None:
        if self._far_end(side, delta):
            return
        u = self._rng.random()
        if u < _P_ADD:
            self._add(side, delta)
        elif u < _P_ADD + _P_CANCEL:
            self._cancel(side, delta)
        else:
            self._modify(side, delta)

    # -- events --------------------------------------------------------------------

    def book_event(self) -> tuple[list[Level], list[Level]]:
        """Drift the mid and change 1-4 levels; returns the (bids, asks) delta."""
        delta = _Delta()
        self._drift()
        u = self._rng.random()
        ops = 1 if u < 0.45 else 2 if u < 0.75 else 3 if u < 0.9 else 4
        ops -= self._follow(self.bids, delta) + self._follow(self.asks, delta)
        self._keep_two_sided(delta)
        for _ in range(ops):
            self._random_op(self.bids if self._rng.random() < 0.5 else self.asks, delta)
        self._keep_two_sided(delta)
        bids, asks = delta.levels(self.bids), delta.levels(self.asks)
        if not bids and not asks:  # every change was undone within the event
            return self.book_event()
        return bids, asks

    def taker_side(self) -> str:
        """Who crosses the spread: buyers more often when the mid is above the book's."""
        book_mid = (self.bids.best() + self.asks.best()) / 2
        p_buy = 0.65 if self.mid_ticks > book_mid else 0.35 if self.mid_ticks < book_mid else 0.5
        return "buy" if self._rng.random() < p_buy else "sell"

    def _refill(self, side: _Side, taken: int, delta: _Delta) -> None:
        """After a trade removed a level: a new one near the mid when the side has
        fallen away from it, or the next one behind the taken price when the side is
        empty. Never at the taken price, so the trade's delta still shows it gone."""
        anchor = self._anchor(side)
        far = not side.ticks or abs(anchor - side.best()) > 2 * self._spacing
        if far and anchor != taken:
            delta.set(side, anchor, self._lots())
        elif not side.ticks:
            behind = max(1, taken - self._gap()) if side.is_bid else taken + self._gap()
            delta.set(side, behind, self._lots())

    def take(self, taker: str) -> tuple[float, float, list[Level], list[Level]]:
        """A trade against the best level opposite ``taker`` ("buy" lifts the best ask).

        Returns (price, quantity, bids delta, asks delta): the level is reduced by the
        quantity, or removed when the whole level is taken.
        """
        side = self.asks if taker == "buy" else self.bids
        tick = side.best()
        have = side.lots[tick]
        take = have if self._rng.random() < 0.3 else 1 + int(self._rng.random() * have * 0.5)
        delta = _Delta()
        delta.set(side, tick, have - take)
        if take == have:
            self._refill(side, tick, delta)
        return side.price(tick), side.qty(take), delta.levels(self.bids), delta.levels(self.asks)

    # -- views ---------------------------------------------------------------------

    @property
    def mid(self) -> float:
        """The hidden mid price the book follows."""
        return self.mid_ticks * self.spec.tick

    def best_bid(self) -> float:
        return self.bids.price(self.bids.best())

    def best_ask(self) -> float:
        return self.asks.price(self.asks.best())

    def snapshot_levels(self) -> tuple[list[Level], list[Level]]:
        """The whole book: bids descending, asks ascending."""
        return self.bids.levels(), self.asks.levels()

    def checksum(self) -> int:
        """docs/protocol.md §5 over the full book: CRC-32 of the top 10 asks then top 10 bids."""
        asks = [self.asks.packed[t] for t in self.asks.top(_CHECKSUM_LEVELS)]
        bids = [self.bids.packed[t] for t in self.bids.top(_CHECKSUM_LEVELS)]
        return zlib.crc32(b"".join(asks + bids))


class _Feed:
    """One stream's book plus its sequencing: book records, snapshots, trade numbers."""

    __slots__ = ("book", "checksums", "next_seq", "next_trade_seq", "records", "snapshot_every")

    def __init__(self, book: SimulatedBook, base: int, snapshot_every: int, checksums: bool):
        self.book = book
        self.next_seq = base
        self.next_trade_seq = base
        self.records = 0
        self.snapshot_every = snapshot_every
        self.checksums = checksums

    def snapshot_due(self) -> bool:
        """Before the first record, and every ``snapshot_every`` records after it."""
        every = self.snapshot_every
        return self.records == 0 or (every > 0 and self.records % every == 0)

    def book_record(
        self, now_ns: int, bids: list[Level], asks: list[Level], snapshot: bool
    ) -> BookUpdate:
        seq = self.next_seq
        self.next_seq += 1
        self.records += 1
        spec = self.book.spec
        return BookUpdate(
            exchange=spec.exchange,
            symbol=spec.symbol,
            timestamp_ns=now_ns,
            sequence=seq,
            bids=bids,
            asks=asks,
            is_snapshot=snapshot,
            prev_sequence=seq - 1,
            checksum=self.book.checksum() if self.checksums else 0,
        )

    def snapshot(self, now_ns: int) -> BookUpdate:
        bids, asks = self.book.snapshot_levels()
        return self.book_record(now_ns, bids, asks, True)

    def trade_record(self, now_ns: int, price: float, qty: float, side: str) -> Trade:
        seq = self.next_trade_seq
        self.next_trade_seq += 1
        spec = self.book.spec
        return Trade(spec.exchange, spec.symbol, now_ns, str(seq), price, qty, side, seq)


class SimulatedMarket:
    """All simulated streams; each call to :meth:`next_events` is one market event.

    ``sequence_base`` is the first sequence number of every stream (book and
    trades). The runner passes the wall clock in microseconds; see
    :func:`producers.simulate_run.sequence_base` for why.
    """

    def __init__(
        self,
        streams: Sequence[StreamSpec],
        *,
        seed: int = 1,
        levels: int = 300,
        snapshot_every: int = 500,
        trade_ratio: float = 0.1,
        sequence_base: int = 1,
        checksums: bool = True,
    ) -> None:
        if not streams:
            raise ValueError("no streams to simulate")
        if len({s.key for s in streams}) != len(streams):
            raise ValueError("duplicate stream in streams")
        if not 0.0 <= trade_ratio <= 1.0:
            raise ValueError("trade_ratio must be within 0..1")
        if sequence_base < 1:
            raise ValueError("sequence_base must be >= 1")
        self._rng = random.Random(seed)
        self._feeds = [
            _Feed(SimulatedBook(s, levels, self._rng), sequence_base, snapshot_every, checksums)
            for s in streams
        ]
        self._by_key = {f.book.spec.key: f for f in self._feeds}
        self._cum_weights = list(itertools.accumulate(s.weight for s in streams))
        self.trade_ratio = trade_ratio

    @classmethod
    def from_config(cls, cfg: SimulatorConfig, *, sequence_base: int) -> SimulatedMarket:
        """The market ``mdgw simulate`` runs: :func:`default_streams` and the config's knobs."""
        return cls(
            default_streams(cfg.symbols_per_exchange, seed=cfg.seed),
            seed=cfg.seed,
            levels=cfg.levels,
            snapshot_every=cfg.snapshot_every,
            trade_ratio=cfg.trade_ratio,
            sequence_base=sequence_base,
        )

    @property
    def streams(self) -> list[StreamSpec]:
        return [f.book.spec for f in self._feeds]

    def book(self, key: str) -> SimulatedBook:
        """The live book of stream ``EXCHANGE:SYMBOL`` (for tests and dashboards)."""
        return self._by_key[key].book

    def snapshots(self, now_ns: int) -> list[BookUpdate]:
        """A full-book record of every stream (each takes a sequence number)."""
        return [f.snapshot(now_ns) for f in self._feeds]

    def next_events(self, now_ns: int) -> list[Record]:
        """One event at ``now_ns`` on a stream picked by weight."""
        u = self._rng.random() * self._cum_weights[-1]
        feed = self._feeds[bisect.bisect_right(self._cum_weights, u)]
        return self._event(feed, now_ns)

    def stream_events(self, key: str, now_ns: int) -> list[Record]:
        """One event at ``now_ns`` on the named stream."""
        return self._event(self._by_key[key], now_ns)

    def _event(self, feed: _Feed, now_ns: int) -> list[Record]:
        """[snapshot if due] + [trade] + book delta; the snapshot is the book before it."""
        out: list[Record] = []
        if feed.snapshot_due():
            out.append(feed.snapshot(now_ns))
        book = feed.book
        if self._rng.random() < self.trade_ratio:
            taker = book.taker_side()
            price, qty, bids, asks = book.take(taker)
            out.append(feed.trade_record(now_ns, price, qty, taker))
        else:
            bids, asks = book.book_event()
        out.append(feed.book_record(now_ns, bids, asks, False))
        return out


class PoissonArrivals:
    """Event times of a Poisson process: exponential gaps with mean ``1/rate`` seconds.

    It has its own generator, so the pacing never changes what the books do.
    """

    def __init__(self, rate: float, start_ns: int, *, seed: int = 0) -> None:
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self._rng = random.Random(seed)
        self._mean_ns = 1e9 / rate
        self._t = float(start_ns)
        self.next_ns = start_ns
        self._advance()

    def _advance(self) -> None:
        self._t += self._rng.expovariate(1.0) * self._mean_ns
        self.next_ns = int(self._t)

    def due(self, now_ns: int, limit: int | None = None) -> list[int]:
        """Arrival times up to ``now_ns`` (at most ``limit``), consumed in order."""
        out: list[int] = []
        while self.next_ns <= now_ns and (limit is None or len(out) < limit):
            out.append(self.next_ns)
            self._advance()
        return out

    def skip_to(self, now_ns: int) -> int:
        """Drop the backlog (a producer that cannot keep up); returns ~arrivals skipped."""
        if self._t > now_ns:
            return 0
        skipped = int((now_ns - self._t) / self._mean_ns)
        self._t = float(now_ns)
        self._advance()
        return skipped
