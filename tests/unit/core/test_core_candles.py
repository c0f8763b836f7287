"""Candles: every path equals a naive aggregation of the same trades, for every interval."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.candles import (
    INTERVALS,
    Candle,
    CandleBuilder,
    base_ns,
    candle,
    candles_of_parts,
    fold_parts,
)
from core.market import Market
from core.stats import MINUTE_NS, SECOND_NS, RollingStats
from core.types import Exchange, Trade
from tests.examples import examples

T0 = 1_764_000_000 * SECOND_NS  # a day boundary is not required: intervals are epoch-aligned


@dataclass(frozen=True)
class Naive:
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int


def naive(trades: list[Trade], interval: str) -> list[Naive]:
    """Straight from the definition: group by interval; open = earliest timestamp (first to
    arrive on a tie), close = latest (last to arrive); sums per part in arrival order, the
    parts' sums in time order (the parts being the statistics' minutes, or the second)."""
    width = INTERVALS[interval]
    part = MINUTE_NS if width % MINUTE_NS == 0 else width
    out = []
    for ci in sorted({t.timestamp_ns // width for t in trades}):
        ts = [t for t in trades if t.timestamp_ns // width == ci]
        first = min(ts, key=lambda t: t.timestamp_ns)  # min keeps the first of equals
        last = max(reversed(ts), key=lambda t: t.timestamp_ns)  # the last of equals
        by_part: dict[int, list[Trade]] = {}
        for t in ts:
            by_part.setdefault(t.timestamp_ns // part, []).append(t)
        parts = [by_part[p] for p in sorted(by_part)]
        out.append(
            Naive(
                ci * width,
                ci * width + width - 1,
                first.price,
                max(t.price for t in ts),
                min(t.price for t in ts),
                last.price,
                sum(sum(t.quantity for t in p) for p in parts),
                sum(sum(t.price * t.quantity for t in p) for p in parts),
                len(ts),
            )
        )
    return out


def as_naive(c: Candle) -> Naive:
    return Naive(
        c.open_time,
        c.close_time,
        c.open,
        c.high,
        c.low,
        c.close,
        c.volume,
        c.quote_volume,
        c.trades,
    )


prices = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
qtys = st.floats(min_value=1e-8, max_value=1e3, allow_nan=False, allow_infinity=False)
steps = st.one_of(
    st.integers(0, 3 * SECOND_NS),  # dense
    st.integers(0, 20 * MINUTE_NS),  # gaps: empty intervals
    st.integers(-2 * SECOND_NS, 0),  # a little out of order
    st.just(0),  # equal timestamps
)


@st.composite
def tapes(draw: st.DrawFn, max_size: int = 60) -> list[Trade]:
    n = draw(st.integers(1, max_size))
    ts = T0 + draw(st.integers(0, 3 * 86_400 * SECOND_NS))
    out = []
    for i in range(n):
        ts = max(0, ts + draw(steps))
        out.append(Trade(Exchange.KRAKEN, "BTC-USD", ts, f"t{i}", draw(prices), draw(qtys), "buy"))
    return out


def from_trades(trades: list[Trade], interval: str) -> list[Candle]:
    width = INTERVALS[interval]
    part = base_ns(width)
    cs = candles_of_parts(fold_parts(trades, part).items(), part, width)
    return [candle("KRAKEN", "BTC-USD", interval, i, b, True) for i, b in cs]


@pytest.mark.parametrize("interval", list(INTERVALS))
@settings(max_examples=examples(60), deadline=None)
@given(trades=tapes())
def test_candles_of_trades_equal_naive(interval: str, trades: list[Trade]) -> None:
    got = from_trades(trades, interval)
    assert [as_naive(c) for c in got] == naive(trades, interval)
    for c in got:
        assert c.vwap == c.quote_volume / c.volume


@pytest.mark.parametrize("interval", [i for i in INTERVALS if INTERVALS[i] % MINUTE_NS == 0])
@settings(max_examples=examples(60), deadline=None)
@given(trades=tapes())
def test_candles_of_statistics_buckets_equal_naive(interval: str, trades: list[Trade]) -> None:
    """The REST path over the statistics' minute buckets (what a checkpoint restores)."""
    stats = RollingStats("KRAKEN", "BTC-USD", window_ns=10 * 86_400 * SECOND_NS)
    for t in trades:
        assert stats.add_trade(t)
    width = INTERVALS[interval]
    cs = candles_of_parts(stats.buckets(), MINUTE_NS, width)
    got = [candle("KRAKEN", "BTC-USD", interval, i, b, True) for i, b in cs]
    assert [as_naive(c) for c in got] == naive(trades, interval)


def live(trades: list[Trade], interval: str) -> tuple[list[Candle], list[Trade], CandleBuilder]:
    """Feed a builder; returns the closed candles it sent, the trades it took, itself."""
    b = CandleBuilder("KRAKEN", "BTC-USD", interval)
    closed: list[Candle] = []
    taken: list[Trade] = []
    for t in trades:
        done, current = b.add(t, wall_ns=0)
        if done is not None:
            closed.append(done)
        if current is not None:
            taken.append(t)
            assert current.open_time <= t.timestamp_ns <= current.close_time
            assert not current.closed
    return closed, taken, b


@pytest.mark.parametrize("interval", list(INTERVALS))
@settings(max_examples=examples(60), deadline=None)
@given(trades=tapes())
def test_live_builder_equals_naive(interval: str, trades: list[Trade]) -> None:
    closed, taken, b = live(trades, interval)
    last = b.current()
    assert last is not None
    sent = [*closed, last]
    assert all(c.closed for c in closed)
    assert [as_naive(c) for c in sent] == naive(taken, interval)
    # a trade is refused only when its interval was already closed
    assert b.late == len(trades) - len(taken)
    for t in trades:
        if t not in taken:
            assert t.timestamp_ns // INTERVALS[interval] < last.open_time // INTERVALS[interval]


@pytest.mark.parametrize("interval", list(INTERVALS))
@settings(max_examples=examples(40), deadline=None)
@given(trades=tapes(), cut=st.integers(0, 60))
def test_seeded_builder_continues_exactly(interval: str, trades: list[Trade], cut: int) -> None:
    """A subscriber arriving mid-interval: the builder starts from the statistics' minutes
    (or the tape folded into seconds) and then sees exactly what one fed all along sees."""
    cut = min(cut, len(trades))
    ordered = sorted(trades, key=lambda t: t.timestamp_ns)  # the seed needs no late trades
    head, tail = ordered[:cut], ordered[cut:]
    width = INTERVALS[interval]
    part = base_ns(width)
    seeded = CandleBuilder("KRAKEN", "BTC-USD", interval)
    newest = head[-1].timestamp_ns if head else 0
    seeded.seed(fold_parts(head, part).items(), newest, 0)
    closed, _taken, fed = live(ordered, interval)
    after = []
    for t in tail:
        done, current = seeded.add(t, 0)
        after += [c for c in (done, current) if c is not None]
    if tail:
        assert after[-1] == fed.current()
        start = newest // width * width if head else 0
        assert [c for c in after if c.closed] == [c for c in closed if c.open_time >= start]
    else:
        assert seeded.current() == fed.current()


def test_due_closes_a_quiet_interval_on_the_streams_clock() -> None:
    b = CandleBuilder("KRAKEN", "BTC-USD", "1m")
    t = Trade(Exchange.KRAKEN, "BTC-USD", T0 + 10 * SECOND_NS, "1", 100.0, 2.0, "buy")
    b.add(t, wall_ns=5_000)
    open_end = (t.timestamp_ns // MINUTE_NS + 1) * MINUTE_NS - 1
    wall_at_end = 5_000 + (open_end - t.timestamp_ns)
    assert b.due(wall_at_end + SECOND_NS, grace_ns=SECOND_NS) is None
    c = b.due(wall_at_end + SECOND_NS + 1, grace_ns=SECOND_NS)
    assert c is not None and c.closed and c.trades == 1 and c.close_time == open_end
    assert b.current() is None and b.due(10**30, 0) is None
    late = Trade(Exchange.KRAKEN, "BTC-USD", t.timestamp_ns + 1, "2", 101.0, 1.0, "buy")
    assert b.add(late, 0) == (None, None) and b.late == 1


def test_a_replay_keeps_its_own_clock() -> None:
    """Old timestamps (a capture replayed) do not close each candle at once."""
    b = CandleBuilder("KRAKEN", "BTC-USD", "1m")
    old = 1_600_000_000 * SECOND_NS
    b.add(Trade(Exchange.KRAKEN, "BTC-USD", old, "1", 100.0, 1.0, "sell"), wall_ns=T0)
    assert b.due(T0 + SECOND_NS, grace_ns=SECOND_NS) is None


def test_market_statistics_give_the_same_candles_as_the_trades() -> None:
    """The API's path: the Market's statistics after a duplicate is dropped."""
    m = Market()
    trades = [
        Trade(Exchange.KRAKEN, "BTC-USD", T0 + i * 7 * SECOND_NS, str(i), 100.0 + i, 0.1, "", i + 1)
        for i in range(50)
    ]
    for t in [*trades, trades[10]]:  # the repeat is refused by sequence
        m.apply_trade(t, 0)
    state = m.state("KRAKEN:BTC-USD")
    assert state is not None
    for interval in ("1m", "5m", "1h"):
        width = INTERVALS[interval]
        cs = candles_of_parts(state.stats.buckets(), MINUTE_NS, width)
        got = [candle("KRAKEN", "BTC-USD", interval, i, b, True) for i, b in cs]
        assert [as_naive(c) for c in got] == naive(trades, interval)


def test_parts_must_tile_the_interval() -> None:
    with pytest.raises(ValueError):
        candles_of_parts([], MINUTE_NS, SECOND_NS)
