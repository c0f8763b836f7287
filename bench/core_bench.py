"""Benchmark of the pure core: which side structure, and how fast are books and views.

Run: ``.venv/bin/python bench/core_bench.py [--updates N] [--repeat R] [--quick]``.
Prints a table and writes ``bench/results/core.json``. Times are CPU time of this
process, best of R runs, candidates interleaved round by round (the machine may
be shared; this keeps the comparison fair).

The stream is synthetic but shaped like a busy spot book: ~500 levels a side on a
0.01 tick around a drifting mid; each delta touches 1-5 levels, their distance
from the top geometric (most within the first 10 levels); 55 % of touched levels
change size, 25 % are new, 20 % are removed, so the book keeps its size.

Candidates for one side of the book (:class:`core.ladder.Ladder` interface), all
run through the real ``OrderBook.apply`` and ``DepthView.on_update`` code:

- ``dict+bisect``: dict of quantities + plain sorted list of prices (``core.ladder``).
- ``SortedDict``: ``sortedcontainers.SortedDict`` (prices ascending, bids read from the end).
- ``dict+SortedList``: dict of quantities + ``sortedcontainers.SortedList`` of prices.
- ``order-book``: the ``order-book`` C extension's SortedDict (if installed).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sortedcontainers import SortedDict, SortedList  # type: ignore[import-untyped]

from core.aggregate import AggregatedBook
from core.book import OrderBook
from core.checksum import book_checksum
from core.ladder import Ladder
from core.market import Market
from core.types import BookUpdate, Exchange, Level
from core.views import DepthView

CLOCK = time.process_time
"""CPU time of this process: the machine may be shared, wall time would count others' work."""
TICK = 0.01
LEVELS = 500
SYMBOL = "BTC-USDT"


# -- candidate side structures ------------------------------------------------


def _interleave(ks: list[float], qty: Any) -> list[float]:
    flat = [0.0] * (2 * len(ks))
    flat[0::2] = ks
    flat[1::2] = map(qty.__getitem__, ks)
    return flat


class SortedDictLadder(Ladder):
    """sortedcontainers.SortedDict holding both the quantities and the order."""

    __slots__ = ()

    qty: Any

    def __init__(self, desc: bool, *, with_venues: bool = False) -> None:
        super().__init__(desc, with_venues=with_venues)
        self.qty = SortedDict()

    def __len__(self) -> int:
        return len(self.qty)

    def set(self, price: float, quantity: float) -> None:
        self.qty[price] = quantity

    def remove(self, price: float) -> None:
        self.qty.pop(price, None)

    def replace(self, levels: Iterable[Level]) -> None:
        self.qty = SortedDict(levels)

    def top(self, n: int = 0) -> list[Level]:
        sd = self.qty
        size = len(sd)
        n = min(n or size, size)
        ks = sd.keys()[size - n :][::-1] if self.desc else sd.keys()[:n]
        return list(zip(ks, map(sd.__getitem__, ks), strict=True))

    def flat_top(self, n: int) -> list[float]:
        sd = self.qty
        ks = sd.keys()[max(len(sd) - n, 0) :][::-1] if self.desc else sd.keys()[:n]
        return _interleave(ks, sd)

    def best(self) -> Level | None:
        if not self.qty:
            return None
        return self.qty.peekitem(-1 if self.desc else 0)

    def nth(self, n: int) -> float | None:
        sd = self.qty
        if n <= 0 or n > len(sd):
            return None
        return sd.keys()[-n if self.desc else n - 1]

    def prices(self, start: int, stop: int) -> list[float]:
        sd = self.qty
        size = len(sd)
        stop = min(stop, size)
        if start >= stop:
            return []
        if self.desc:
            return list(sd.islice(size - stop, size - start, reverse=True))
        return list(sd.islice(start, stop))

    def count_at_least(self, price: float) -> int:
        sd = self.qty
        return len(sd) - sd.bisect_left(price) if self.desc else sd.bisect_right(price)


class SortedListLadder(Ladder):
    """Plain dict of quantities + sortedcontainers.SortedList of prices."""

    __slots__ = ()

    def __init__(self, desc: bool, *, with_venues: bool = False) -> None:
        super().__init__(desc, with_venues=with_venues)
        self._keys = SortedList()  # type: ignore[assignment]

    def set(self, price: float, quantity: float) -> None:
        if price not in self.qty:
            self._keys.add(price)  # type: ignore[attr-defined]
        self.qty[price] = quantity

    def remove(self, price: float) -> None:
        if self.qty.pop(price, None) is not None:
            self._keys.remove(price)

    def replace(self, levels: Iterable[Level]) -> None:
        self.qty = dict(levels)
        self._keys = SortedList(self.qty)  # type: ignore[assignment]

    def top(self, n: int = 0) -> list[Level]:
        keys = self._keys
        size = len(keys)
        n = min(n or size, size)
        ks = keys[size - n :][::-1] if self.desc else keys[:n]
        return list(zip(ks, map(self.qty.__getitem__, ks), strict=True))

    def flat_top(self, n: int) -> list[float]:
        keys = self._keys
        ks = keys[max(len(keys) - n, 0) :][::-1] if self.desc else keys[:n]
        return _interleave(ks, self.qty)

    def count_at_least(self, price: float) -> int:
        keys: Any = self._keys
        return len(keys) - keys.bisect_left(price) if self.desc else keys.bisect_right(price)


def _order_book_ladder() -> type[Ladder] | None:
    try:
        import order_book  # type: ignore[import-not-found]
    except ImportError:
        return None

    class _CDict(order_book.SortedDict):  # type: ignore[misc]
        def get(self, key: float, default: Any = None) -> Any:
            return self[key] if key in self else default  # noqa: SIM401 (no .get in C base)

    class OrderBookCLadder(Ladder):
        """The ``order-book`` C extension's SortedDict (keys sorted best first)."""

        __slots__ = ()
        qty: Any

        def __init__(self, desc: bool, *, with_venues: bool = False) -> None:
            super().__init__(desc, with_venues=with_venues)
            self.qty = _CDict(ordering="DESC" if desc else "ASC")

        def __len__(self) -> int:
            return len(self.qty)

        def set(self, price: float, quantity: float) -> None:
            self.qty[price] = quantity

        def remove(self, price: float) -> None:
            if price in self.qty:
                del self.qty[price]

        def replace(self, levels: Iterable[Level]) -> None:
            self.qty = _CDict(ordering="DESC" if self.desc else "ASC")
            for p, q in levels:
                self.qty[p] = q

        def top(self, n: int = 0) -> list[Level]:
            ks = self.qty.keys()
            ks = ks[:n] if n else ks
            return list(zip(ks, map(self.qty.__getitem__, ks), strict=True))

        def flat_top(self, n: int) -> list[float]:
            return _interleave(list(self.qty.keys()[:n]), self.qty)

        def best(self) -> Level | None:
            return self.qty.index(0) if len(self.qty) else None

        def nth(self, n: int) -> float | None:
            if n <= 0 or n > len(self.qty):
                return None
            return self.qty.index(n - 1)[0]

        def prices(self, start: int, stop: int) -> list[float]:
            return list(self.qty.keys()[start:stop])

        def count_at_least(self, price: float) -> int:
            keys = self.qty.keys()
            lo, hi = 0, len(keys)
            while lo < hi:  # keys are best first: count those at least as good
                mid = (lo + hi) // 2
                if (keys[mid] >= price) if self.desc else (keys[mid] <= price):
                    lo = mid + 1
                else:
                    hi = mid
            return lo

    return OrderBookCLadder


def candidates() -> dict[str, type[Ladder]]:
    out: dict[str, type[Ladder]] = {
        "dict+bisect": Ladder,
        "SortedDict": SortedDictLadder,
        "dict+SortedList": SortedListLadder,
    }
    c = _order_book_ladder()
    if c is not None:
        out["order-book (C)"] = c
    return out


# -- the stream ---------------------------------------------------------------


def make_stream(
    n: int, seed: int = 7, mean_distance: float = 6.0
) -> tuple[BookUpdate, list[BookUpdate]]:
    """A snapshot of LEVELS a side and ``n`` deltas, touching levels ~``mean_distance`` deep."""
    rnd = random.Random(seed)
    mid = 100_000  # in ticks
    bids = {mid - 1 - i: round(rnd.uniform(0.01, 5.0), 4) for i in range(LEVELS)}
    asks = {mid + 1 + i: round(rnd.uniform(0.01, 5.0), 4) for i in range(LEVELS)}

    def px(t: int) -> float:
        return round(t * TICK, 2)

    snap = BookUpdate(
        Exchange.BINANCE,
        SYMBOL,
        1,
        1,
        bids=[(px(t), q) for t, q in bids.items()],
        asks=[(px(t), q) for t, q in asks.items()],
        is_snapshot=True,
    )
    deltas = []
    for seq in range(2, n + 2):
        up: dict[int, float] = {}
        down: dict[int, float] = {}
        for _ in range(rnd.randint(1, 5)):
            is_bid = rnd.random() < 0.5
            side, levels = (bids, up) if is_bid else (asks, down)
            best = max(bids) if is_bid else min(asks)
            dist = min(int(rnd.expovariate(1 / mean_distance)), LEVELS * 2)
            r = rnd.random()
            if r < 0.25 or len(side) < LEVELS // 2:  # new level, possibly better than best
                t = best + (1 if is_bid else -1) * (rnd.randint(-dist, 2))
                other = min(asks) if is_bid else max(bids)
                if (is_bid and t >= other) or (not is_bid and t <= other):
                    t = other - 1 if is_bid else other + 1
                q = round(rnd.uniform(0.01, 5.0), 4)
            else:
                keys = sorted(side, reverse=is_bid)
                t = keys[min(dist, len(keys) - 1)]
                q = 0.0 if r > 0.8 and len(side) > 2 else round(rnd.uniform(0.01, 5.0), 4)
            if q:
                side[t] = q
            else:
                side.pop(t, None)
            levels[t] = q
        deltas.append(
            BookUpdate(
                Exchange.BINANCE,
                SYMBOL,
                seq,
                seq,
                bids=[(px(t), q) for t, q in up.items()],
                asks=[(px(t), q) for t, q in down.items()],
            )
        )
    return snap, deltas


# -- measurements ---------------------------------------------------------------


def new_book(ladder: type[Ladder]) -> OrderBook:
    cls = type("BenchBook", (OrderBook,), {"ladder_class": ladder})
    return cls(Exchange.BINANCE, SYMBOL)


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t0 = CLOCK()
    count = fn()
    return CLOCK() - t0, count


def bench_candidate(
    ladder: type[Ladder], snap: BookUpdate, deltas: list[BookUpdate]
) -> dict[str, float]:
    book = new_book(ladder)
    book.apply(snap)
    apply = book.apply

    def run_apply() -> int:
        for u in deltas:
            apply(u)
        return len(deltas)

    apply_s, _ = timed(run_apply)

    book = new_book(ladder)
    book.apply(snap)
    view = DepthView(book, 20)
    apply, on_update = book.apply, view.on_update

    def run_view() -> int:
        sent = 0
        for u in deltas:
            apply(u)
            if on_update() is not None:
                sent += 1
        return sent

    both_s, sent = timed(run_view)
    assert view.snapshot().bids == book.bids(20), "view diverged"
    view_s = max(both_s - apply_s, 1e-9)
    n = len(deltas)
    return {
        "apply_updates_per_s": n / apply_s,
        "apply_plus_view20_updates_per_s": n / both_s,
        "view20_on_update_per_s": n / view_s,
        "view20_deltas_emitted": sent,
        "view20_deltas_per_s": sent / view_s,
    }


def bench_views(snap: BookUpdate, deltas: list[BookUpdate]) -> dict[str, dict[str, float]]:
    """The chosen structure: every depth, raw (on_update) and conflated (flush every 50)."""
    out: dict[str, dict[str, float]] = {}
    base = new_book(Ladder)
    base.apply(snap)
    for depth in (10, 20, 50, 100, 500, 1000, 0):
        book = base.copy()
        view = DepthView(book, depth)
        apply, on_update = book.apply, view.on_update
        t0 = CLOCK()
        sent = 0
        for u in deltas:
            apply(u)
            if on_update() is not None:
                sent += 1
        raw_s = CLOCK() - t0
        book = base.copy()
        view = DepthView(book, depth)
        t0 = CLOCK()
        flushes = 0
        for i, u in enumerate(deltas):
            book.apply(u)
            if i % 50 == 49:
                view.flush()
                flushes += 1
        flush_s = CLOCK() - t0
        out[str(depth)] = {
            "raw_updates_per_s": len(deltas) / raw_s,
            "raw_deltas_emitted": sent,
            "flush_every_50_updates_per_s": len(deltas) / flush_s,
        }
    return out


def bench_deep(snap: BookUpdate, deltas: list[BookUpdate]) -> dict[str, dict[str, float]]:
    """A stream touching levels ~60 deep on average: most deltas miss the top 10/20."""
    out: dict[str, dict[str, float]] = {}
    base = new_book(Ladder)
    base.apply(snap)
    book = base.copy()
    t0 = CLOCK()
    for u in deltas:
        book.apply(u)
    apply_s = CLOCK() - t0
    for depth in (10, 20, 100):
        book = base.copy()
        view = DepthView(book, depth)
        t0 = CLOCK()
        sent = 0
        for u in deltas:
            book.apply(u)
            if view.on_update() is not None:
                sent += 1
        both_s = CLOCK() - t0
        out[str(depth)] = {
            "apply_updates_per_s": len(deltas) / apply_s,
            "apply_plus_view_updates_per_s": len(deltas) / both_s,
            "deltas_emitted": sent,
        }
    return out


def bench_misc(snap: BookUpdate, deltas: list[BookUpdate]) -> dict[str, float]:
    book = new_book(Ladder)
    book.apply(snap)
    asks, bids = book.asks(10), book.bids(10)
    n = 100_000
    t0 = CLOCK()
    for _ in range(n):
        book_checksum(asks, bids)
    checksum_s = CLOCK() - t0

    books = {ex: new_book(Ladder) for ex in (Exchange.BINANCE, Exchange.KRAKEN)}
    agg = AggregatedBook(SYMBOL)
    for ex, b in books.items():
        b.exchange = ex
        b.stream = f"{ex.name}:{SYMBOL}"
        s = BookUpdate(ex, SYMBOL, 1, 1, bids=snap.bids, asks=snap.asks, is_snapshot=True)
        b.apply(s)
        agg.sync_venue(b)
    book = books[Exchange.BINANCE]
    t0 = CLOCK()
    for u in deltas:
        book.apply(u)
        agg.update_from(book, [p for p, _ in u.bids], [p for p, _ in u.asks])
    agg_s = CLOCK() - t0
    # the same stream with producer checksums on every delta, verified by the book
    ref = new_book(Ladder)
    ref.apply(snap)
    signed = []
    for u in deltas:
        ref.apply(u)
        signed.append(BookUpdate(u.exchange, u.symbol, u.timestamp_ns, u.sequence, u.bids, u.asks))
        signed[-1].checksum = ref.checksum()
    book = new_book(Ladder)
    book.apply(snap)
    t0 = CLOCK()
    for u in signed:
        book.apply(u)
    verified_s = CLOCK() - t0
    assert not book.stale, "checksum verification failed"

    market = Market()
    market.apply_book(snap, 0)
    for ex in (Exchange.COINBASE, Exchange.KRAKEN):
        other = BookUpdate(ex, SYMBOL, 1, 1, bids=snap.bids, asks=snap.asks, is_snapshot=True)
        market.apply_book(other, 0)
    t0 = CLOCK()
    for u in deltas:
        market.apply_book(u, 1)
    market_s = CLOCK() - t0
    return {
        "checksum_per_s": n / checksum_s,
        "apply_verified_checksum_updates_per_s": len(deltas) / verified_s,
        "apply_plus_aggregate_updates_per_s": len(deltas) / agg_s,
        "market_apply_book_per_s": len(deltas) / market_s,
    }


def best_of(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per figure, the fastest of several runs (the one least disturbed by noise)."""
    return {k: _best(k, [r[k] for r in runs]) for k in runs[0]}


def _best(key: str, values: list[Any]) -> Any:
    if isinstance(values[0], dict):
        return {k: _best(k, [v[k] for v in values]) for k in values[0]}
    return max(values) if key.endswith("_per_s") else values[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=50_000, help="deltas per run")
    ap.add_argument("--quick", action="store_true", help="10k deltas, one run: a smoke test")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure, best kept")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "core.json"))
    args = ap.parse_args(argv)
    n = 10_000 if args.quick else args.updates
    repeat = 1 if args.quick else max(args.repeat, 1)
    snap, deltas = make_stream(n)
    levels = sum(len(u.bids) + len(u.asks) for u in deltas) / len(deltas)
    print(f"stream: {LEVELS} levels a side, {n} deltas, {levels:.2f} levels per delta")

    results: dict[str, Any] = {"candidates": {}}
    ladders = candidates()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ladders}
    for _ in range(repeat):  # round-robin, so every candidate sees the same machine load
        for name, ladder in ladders.items():
            runs[name].append(bench_candidate(ladder, snap, deltas))
    print(f"{'structure':<18}{'apply/s':>12}{'apply+view20/s':>16}{'view20 deltas/s':>17}")
    for name in ladders:
        r = best_of(runs[name])
        results["candidates"][name] = r
        print(
            f"{name:<18}{r['apply_updates_per_s']:>12,.0f}"
            f"{r['apply_plus_view20_updates_per_s']:>16,.0f}{r['view20_deltas_per_s']:>17,.0f}"
        )
    results["views_dict_bisect"] = views = best_of(
        [bench_views(snap, deltas) for _ in range(repeat)]
    )
    print(f"\n{'depth':<8}{'apply+raw view/s':>18}{'deltas':>9}{'apply+flush/50 /s':>19}")
    for depth, r in views.items():
        print(
            f"{depth:<8}{r['raw_updates_per_s']:>18,.0f}{r['raw_deltas_emitted']:>9}"
            f"{r['flush_every_50_updates_per_s']:>19,.0f}"
        )
    deep_snap, deep = make_stream(n, seed=11, mean_distance=60.0)
    results["deep_stream"] = deep_r = best_of([bench_deep(deep_snap, deep) for _ in range(repeat)])
    print("\ndeep stream (levels ~60 deep): apply alone", end=" ")
    print(f"{deep_r['10']['apply_updates_per_s']:,.0f}/s; with one raw view:")
    for depth, r in deep_r.items():
        print(
            f"  depth {depth:<5}{r['apply_plus_view_updates_per_s']:>10,.0f}/s"
            f"  ({r['deltas_emitted']} of {n} updates changed the view)"
        )
    results["misc"] = misc = best_of([bench_misc(snap, deltas) for _ in range(repeat)])
    print(f"\nchecksum (10+10 levels): {misc['checksum_per_s']:,.0f}/s")
    verified = misc["apply_verified_checksum_updates_per_s"]
    print(f"apply with producer checksums verified: {verified:,.0f} updates/s")
    print(f"apply + aggregated merge: {misc['apply_plus_aggregate_updates_per_s']:,.0f} updates/s")
    print(
        f"Market.apply_book (3 venues, aggregated book): "
        f"{misc['market_apply_book_per_s']:,.0f} updates/s"
    )
    results["stream"] = {"levels_per_side": LEVELS, "deltas": n, "levels_per_delta": levels}
    results["repeat"] = repeat
    results["machine"] = {"python": sys.version.split()[0], "platform": platform.platform()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
