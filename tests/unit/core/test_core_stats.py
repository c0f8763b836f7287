"""RollingStats: figures over the window, expiry, out-of-order trades, bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.stats import DAY_NS, MINUTE_NS, SECOND_NS, RollingStats
from core.types import Exchange, Trade

T0 = 1_764_000_000 * SECOND_NS  # a minute boundary


def trade(ts: int, price: float, qty: float, seq: int = 0) -> Trade:
    return Trade(Exchange.KRAKEN, "BTC-USD", ts, f"t{ts}", price, qty, "buy", seq)


def test_empty() -> None:
    s = RollingStats("KRAKEN", "BTC-USD").snapshot(T0)
    assert (s.exchange, s.symbol, s.timestamp_ns, s.window_ns) == ("KRAKEN", "BTC-USD", T0, DAY_NS)
    assert (s.open, s.high, s.low, s.last, s.volume, s.vwap, s.trade_count) == (0, 0, 0, 0, 0, 0, 0)
    assert (s.best_bid, s.best_ask, s.spread, s.mid) == (0, 0, 0, 0)


def test_known_sequence() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD")
    for ts, p, q in [
        (T0, 100.0, 1.0),
        (T0 + MINUTE_NS, 110.0, 2.0),
        (T0 + 5 * MINUTE_NS, 90.0, 1.0),
    ]:
        assert rs.add_trade(trade(ts, p, q))
    s = rs.snapshot(T0 + 6 * MINUTE_NS, best_bid=89.0, best_ask=91.0)
    assert (s.open, s.high, s.low, s.last) == (100.0, 110.0, 90.0, 90.0)
    assert (s.volume, s.quote_volume, s.trade_count) == (4.0, 410.0, 3)
    assert s.vwap == pytest.approx(102.5)
    assert (s.best_bid, s.best_ask, s.spread, s.mid) == (89.0, 91.0, 2.0, 90.0)


def test_open_and_last_by_timestamp_within_a_bucket() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD")
    rs.add_trade(trade(T0 + 30 * SECOND_NS, 101.0, 1.0))
    rs.add_trade(trade(T0 + 10 * SECOND_NS, 99.0, 1.0))  # older: becomes the open
    rs.add_trade(trade(T0 + 20 * SECOND_NS, 100.0, 1.0))
    rs.add_trade(trade(T0 + 30 * SECOND_NS, 102.0, 1.0))  # same time as the last: later wins
    s = rs.snapshot(T0 + 40 * SECOND_NS)
    assert (s.open, s.last, s.high, s.low, s.trade_count) == (99.0, 102.0, 102.0, 99.0, 4)


def test_out_of_order_trade_lands_in_its_bucket() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD")
    rs.add_trade(trade(T0 + 10 * MINUTE_NS, 100.0, 1.0))
    assert rs.add_trade(trade(T0 + 2 * MINUTE_NS, 95.0, 1.0))
    s = rs.snapshot(T0 + 10 * MINUTE_NS)
    assert (s.open, s.last, s.low) == (95.0, 100.0, 95.0)


def test_window_expiry() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD", window_ns=10 * MINUTE_NS)
    rs.add_trade(trade(T0, 100.0, 1.0))
    rs.add_trade(trade(T0 + 5 * MINUTE_NS, 105.0, 1.0))
    assert rs.snapshot(T0 + 10 * MINUTE_NS).trade_count == 2  # T0's bucket still overlaps
    s = rs.snapshot(T0 + 11 * MINUTE_NS)
    assert (s.trade_count, s.open, s.high) == (1, 105.0, 105.0)
    assert rs.snapshot(T0 + 16 * MINUTE_NS).trade_count == 0


def test_future_trades_are_not_in_an_earlier_window() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD")
    rs.add_trade(trade(T0 + 5 * MINUTE_NS, 100.0, 1.0))
    assert rs.snapshot(T0).trade_count == 0


def test_too_old_trade_is_refused() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD", window_ns=10 * MINUTE_NS)
    rs.add_trade(trade(T0 + 60 * MINUTE_NS, 100.0, 1.0))
    assert not rs.add_trade(trade(T0, 1.0, 1.0))
    assert rs.snapshot(T0 + 60 * MINUTE_NS).low == 100.0


def test_invalid_window() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        RollingStats("KRAKEN", "BTC-USD", window_ns=0)


def test_zero_volume_has_no_vwap() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD")
    rs.add_trade(trade(T0, 100.0, 0.0))
    s = rs.snapshot(T0)
    assert (s.trade_count, s.last, s.vwap) == (1, 100.0, 0.0)


def test_spread_needs_both_sides() -> None:
    s = RollingStats("", "BTC-USD").snapshot(T0, best_bid=100.0)
    assert (s.exchange, s.best_bid, s.spread, s.mid) == ("", 100.0, 0.0, 0.0)


def test_memory_is_bounded_by_the_window() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD", window_ns=60 * MINUTE_NS)
    for i in range(0, 5 * 60 * 60, 7):  # 5 h of trades, one every 7 s
        rs.add_trade(trade(T0 + i * SECOND_NS, 100.0 + i % 13, 0.1))
        assert rs.bucket_count <= 60 + 2
    assert rs.bucket_count == 62


@settings(deadline=None)
@given(
    trades=st.lists(
        st.tuples(
            st.integers(0, 30 * MINUTE_NS),
            st.integers(1, 20).map(float),
            st.integers(1, 8).map(lambda q: q / 4),
        ),
        min_size=1,
        max_size=40,
    ),
    later=st.integers(0, 15 * MINUTE_NS),
)
def test_matches_a_naive_window_of_whole_buckets(trades: list, later: int) -> None:
    """Snapshots taken at or after the newest trade, as a live service does."""
    window = 10 * MINUTE_NS
    now = max(t[0] for t in trades) + later
    rs = RollingStats("KRAKEN", "BTC-USD", window_ns=window)
    kept = []
    for i, (ts, p, q) in enumerate(trades):
        if rs.add_trade(trade(T0 + ts, p, q)):
            kept.append((ts, i, p, q))
    lo = (T0 + now - window) // MINUTE_NS
    hi = (T0 + now) // MINUTE_NS
    inside = sorted(t for t in kept if lo <= (T0 + t[0]) // MINUTE_NS <= hi)
    s = rs.snapshot(T0 + now)
    assert s.trade_count == len(inside)
    if inside:
        first = min(inside, key=lambda t: (t[0], t[1]))
        last = max(inside, key=lambda t: (t[0], t[1]))
        assert (s.open, s.last) == (first[2], last[2])
        assert s.high == max(t[2] for t in inside) and s.low == min(t[2] for t in inside)
        assert s.volume == pytest.approx(sum(t[3] for t in inside))
        assert s.quote_volume == pytest.approx(sum(t[2] * t[3] for t in inside))
