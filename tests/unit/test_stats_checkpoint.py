"""Statistics checkpoints: bucketed 24 h stats equal a naive recomputation, also after a
serialise/restore round trip in the middle; the checkpoint codec refuses bad records."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidUpdateError
from core.market import Market
from core.stats import DAY_NS, MINUTE_NS, SECOND_NS, Bucket, RollingStats, StatsCheckpoint
from core.types import Exchange, Statistics, Trade
from schemas import market_data_pb2 as pb
from schemas.errors import DecodeError, ValidationError
from schemas.stats_codec import decode_stats, encode_stats
from tests.examples import examples

T0 = 1_764_000_000 * SECOND_NS
STREAMS = [
    (Exchange.KRAKEN, "BTC-USD"),
    (Exchange.COINBASE, "BTC-USD"),
    (Exchange.KRAKEN, "ETH-USD"),
]
FIELDS = ("open", "high", "low", "last", "volume", "quote_volume", "vwap", "trade_count")


def naive(trades: list[Trade], now: int, window: int, bucket: int) -> tuple:
    """The statistics by their definition, from the raw trades in arrival order.

    A trade counts when, at its arrival, its bucket was not older than the window of
    the newest trade so far (else the live service refused it), its bucket has not
    been pruned by the end, and the bucket lies in the window of ``now`` widened to
    whole buckets. Sums: per bucket in arrival order, then buckets in time order.
    """
    span = window // bucket + 1
    newest = -1
    accepted: list[tuple[int, int, Trade]] = []
    for i, t in enumerate(trades):
        index = t.timestamp_ns // bucket
        if index < newest - span:
            continue
        newest = max(newest, index)
        accepted.append((index, i, t))
    lo, hi = (now - window) // bucket, now // bucket
    inside = [a for a in accepted if a[0] >= newest - span and lo <= a[0] <= hi]
    if not inside:
        return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    first = min(inside, key=lambda a: (a[2].timestamp_ns, a[1]))[2]
    last = max(inside, key=lambda a: (a[2].timestamp_ns, a[1]))[2]
    volume = quote = 0.0
    for index in sorted({a[0] for a in inside}):
        in_bucket = [a[2] for a in inside if a[0] == index]
        v, q = in_bucket[0].quantity, in_bucket[0].price * in_bucket[0].quantity
        for t in in_bucket[1:]:
            v += t.quantity
            q += t.price * t.quantity
        volume += v
        quote += q
    prices = [a[2].price for a in inside]
    return (
        first.price,
        max(prices),
        min(prices),
        last.price,
        volume,
        quote,
        quote / volume,
        len(inside),
    )


def figures(s: Statistics | None) -> tuple:
    assert s is not None
    return tuple(getattr(s, f) for f in FIELDS)


def round_trip(market: Market) -> Market:
    """A new Market restored from every stream's checkpoint, through the protobuf."""
    fresh = Market(
        trades_per_stream=market.trades_per_stream,
        stats_window_ns=market.stats_window_ns,
        stats_bucket_ns=market.stats_bucket_ns,
    )
    for stream in market.streams():
        cp = market.stats_checkpoint(stream)
        assert cp is not None
        record = decode_stats(encode_stats(cp, 3, 1234, T0))
        assert (record.trades_partition, record.trades_offset, record.written_ns) == (3, 1234, T0)
        fresh.restore_stats(record.checkpoint)
    return fresh


def trade_list(draw: st.DrawFn, span_ns: int) -> list[Trade]:
    rows = draw(
        st.lists(
            st.tuples(
                st.sampled_from(range(len(STREAMS))),
                st.integers(0, span_ns),
                st.integers(1, 400).map(lambda c: c / 4),  # prices on a grid, some equal
                st.floats(0.001, 50.0, allow_nan=False),  # volumes: real rounding
            ),
            min_size=1,
            max_size=60,
        )
    )
    return [
        Trade(STREAMS[k][0], STREAMS[k][1], T0 + ts, f"t{i}", p, q, "buy", 0)
        for i, (k, ts, p, q) in enumerate(rows)
    ]


@st.composite
def scenario(draw: st.DrawFn) -> tuple[int, int, list[Trade], int, list[int]]:
    window, bucket = draw(
        st.sampled_from(
            [(10 * MINUTE_NS, MINUTE_NS), (DAY_NS, MINUTE_NS), (7 * SECOND_NS, 2 * SECOND_NS)]
        )
    )
    trades = trade_list(draw, 3 * window)
    cut = draw(st.integers(0, len(trades)))
    newest = max(t.timestamp_ns for t in trades)
    nows = draw(
        st.lists(
            st.one_of(
                st.integers(newest, newest + window + 2 * bucket),  # live: at or after the tape
                st.integers(T0 - bucket, newest + window),  # anywhere, also inside the tape
            ),
            min_size=1,
            max_size=5,
        )
    )
    return window, bucket, trades, cut, nows


@settings(max_examples=examples(300), deadline=None)
@given(scenario())
def test_bucketed_stats_equal_a_naive_recomputation_across_a_restart(case: tuple) -> None:
    window, bucket, trades, cut, nows = case
    whole = Market(stats_window_ns=window, stats_bucket_ns=bucket)
    restarted = Market(stats_window_ns=window, stats_bucket_ns=bucket)
    for t in trades[:cut]:
        whole.apply_trade(t, 0)
        restarted.apply_trade(t, 0)
    restarted = round_trip(restarted)  # the restart: checkpoint, new process, restore
    for t in trades[cut:]:
        whole.apply_trade(t, 0)
        restarted.apply_trade(t, 0)
    for now in nows:
        for exchange, symbol in {(t.exchange, t.symbol) for t in trades}:
            stream = f"{exchange.name}:{symbol}"
            own = [t for t in trades if t.stream == stream]
            expected = naive(own, now, window, bucket)
            assert figures(whole.stats(stream, now)) == expected
            assert figures(restarted.stats(stream, now)) == expected
        for symbol in whole.symbols():
            assert figures(restarted.symbol_stats(symbol, now)) == figures(
                whole.symbol_stats(symbol, now)
            )
    for stream in whole.streams():
        assert restarted.trades(stream, 1000) == whole.trades(stream, 1000)


@settings(max_examples=examples(100), deadline=None)
@given(st.data())
def test_symbol_stats_merge_the_venues_windows(data: st.DataObject) -> None:
    window, bucket = 10 * MINUTE_NS, MINUTE_NS
    trades = trade_list(data.draw, 2 * window)
    market = Market(stats_window_ns=window, stats_bucket_ns=bucket)
    for t in trades:
        market.apply_trade(t, 0)
    now = max(t.timestamp_ns for t in trades) + data.draw(st.integers(0, window))
    for symbol in market.symbols():
        got = figures(market.symbol_stats(symbol, now))
        per_venue = [
            naive([t for t in trades if t.stream == s], now, window, bucket)
            for s in sorted({t.stream for t in trades if t.symbol == symbol})
        ]
        per_venue = [v for v in per_venue if v[-1]]
        if not per_venue:
            assert got[-1] == 0
            continue
        assert got[7] == sum(v[7] for v in per_venue)
        assert got[1] == max(v[1] for v in per_venue) and got[2] == min(v[2] for v in per_venue)
        assert got[4] == pytest.approx(sum(v[4] for v in per_venue))


def test_duplicate_trades_stay_duplicates_after_a_restart() -> None:
    m = Market()
    m.apply_trade(Trade(Exchange.KRAKEN, "BTC-USD", T0, "1", 100.0, 1.0, "buy", 7), 0)
    fresh = round_trip(m)
    again = Trade(Exchange.KRAKEN, "BTC-USD", T0, "1", 100.0, 1.0, "buy", 7)
    assert not fresh.apply_trade(again, 0)
    assert figures(fresh.stats("KRAKEN:BTC-USD", T0))[-1] == 1


def test_checkpoint_of_another_bucket_size_is_refused() -> None:
    m = Market(stats_bucket_ns=SECOND_NS)
    m.apply_trade(Trade(Exchange.KRAKEN, "BTC-USD", T0, "1", 100.0, 1.0, "buy"), 0)
    cp = m.stats_checkpoint("KRAKEN:BTC-USD")
    assert cp is not None
    with pytest.raises(InvalidUpdateError, match="bucket"):
        Market().restore_stats(cp)


def test_restore_drops_buckets_older_than_the_window() -> None:
    rs = RollingStats("KRAKEN", "BTC-USD", window_ns=10 * MINUTE_NS)
    old, new = Bucket.of(T0, 1.0, 1.0), Bucket.of(T0 + 60 * MINUTE_NS, 2.0, 1.0)
    rs.restore([(T0 // MINUTE_NS, old), ((T0 + 60 * MINUTE_NS) // MINUTE_NS, new)], -1)
    assert rs.bucket_count == 1 and rs.newest == (T0 + 60 * MINUTE_NS) // MINUTE_NS
    rs.restore([], 7)  # a stream whose trades all left the window
    assert (rs.bucket_count, rs.newest, rs.window(T0)) == (0, 7, None)


def test_bucket_merge_orders_open_and_close_by_time() -> None:
    a, b = Bucket.of(T0 + 5, 10.0, 1.0), Bucket.of(T0 + 1, 20.0, 2.0)
    b.add(T0 + 9, 30.0, 1.0)
    a.merge(b)
    assert (a.open, a.close, a.high, a.low, a.volume, a.count) == (20.0, 30.0, 30.0, 10.0, 4.0, 3)
    tie = Bucket.of(T0 + 9, 40.0, 1.0)
    a.merge(tie)  # same close time: the later in merge order wins, as within a bucket
    assert a.close == 40.0 and a.vwap == pytest.approx(a.quote_volume / a.volume)


# -- hostile records -------------------------------------------------------------------


def _valid() -> pb.StatsCheckpoint:
    cp = StatsCheckpoint(
        Exchange.KRAKEN,
        "BTC-USD",
        DAY_NS,
        MINUTE_NS,
        T0 // MINUTE_NS,
        [(T0 // MINUTE_NS, Bucket.of(T0 + 5, 100.0, 2.0))],
        [Trade(Exchange.KRAKEN, "BTC-USD", T0 + 5, "1", 100.0, 2.0, "buy", 1)],
        1,
    )
    m = pb.StatsCheckpoint()
    m.ParseFromString(encode_stats(cp, 0, 10, T0))
    return m


@pytest.mark.parametrize(
    ("spoil", "match"),
    [
        (lambda m: m.buckets.open.append(1.0), "lengths"),
        (lambda m: m.buckets.first_ns.__setitem__(0, T0 + MINUTE_NS), "not a valid candle"),
        (lambda m: m.buckets.high.__setitem__(0, 50.0), "not a valid candle"),
        (lambda m: m.buckets.volume.__setitem__(0, float("nan")), "not a valid candle"),
        (lambda m: m.buckets.count.__setitem__(0, 0), "not a valid candle"),
        (lambda m: setattr(m, "bucket_ns", 0), "bucket"),
        (lambda m: setattr(m, "exchange", 9), "unknown exchange"),
        (lambda m: setattr(m, "symbol", "btc"), "bad symbol"),
        (lambda m: m.recent_trades.price.append(1.0), "tape columns"),
        (lambda m: m.recent_trades.price.__setitem__(0, -1.0), "invalid trade"),
        (lambda m: m.recent_trades.quantity.__setitem__(0, float("inf")), "invalid trade"),
        (lambda m: m.recent_trades.side.__setitem__(0, 7), "unknown trade side"),
    ],
)
def test_invalid_checkpoints_are_refused(spoil: object, match: str) -> None:
    m = _valid()
    assert decode_stats(m.SerializeToString()).checkpoint.symbol == "BTC-USD"
    spoil(m)  # type: ignore[operator]
    with pytest.raises(ValidationError, match=match):
        decode_stats(m.SerializeToString())


def test_buckets_out_of_order_are_refused() -> None:
    m = _valid()
    cols = m.buckets
    for col, v in [
        (cols.index, cols.index[0] - 1),
        (cols.first_ns, cols.first_ns[0] - MINUTE_NS),
        (cols.open, 1.0),
        (cols.last_ns, cols.last_ns[0] - MINUTE_NS),
        (cols.close, 1.0),
        (cols.high, 1.0),
        (cols.low, 1.0),
        (cols.volume, 1.0),
        (cols.quote_volume, 1.0),
        (cols.count, 1),
    ]:
        col.append(v)
    with pytest.raises(ValidationError, match="ascending"):
        decode_stats(m.SerializeToString())


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_stats(b"\xff\xff\xff")
    with pytest.raises(ValidationError, match="exceeds"):
        decode_stats(b"\x00" * (9 * 1024 * 1024))
