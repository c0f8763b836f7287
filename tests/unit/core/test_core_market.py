"""Market: the state both services hold; routing, counters, trades, aggregated books."""

from __future__ import annotations

import math

import pytest
from core_model import SYMBOL, update

from core.book import ApplyResult
from core.errors import (
    ChecksumMismatchError,
    CrossedBookError,
    InvalidLevelError,
    InvalidUpdateError,
)
from core.market import Market
from core.stats import MINUTE_NS
from core.types import BookUpdate, Exchange, Trade

BN, CB, KR = Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN
S_BN, S_KR = f"BINANCE:{SYMBOL}", f"KRAKEN:{SYMBOL}"


def snap(ex: Exchange, seq: int, bids: list, asks: list, symbol: str = SYMBOL) -> BookUpdate:
    return update(seq, bids, asks, snapshot=True, exchange=ex, symbol=symbol)


def trade(ex: Exchange, seq: int, price: float = 100.0, qty: float = 1.0, ts: int = 0) -> Trade:
    return Trade(ex, SYMBOL, ts or seq * 1000, f"id{seq}", price, qty, "sell", seq)


def live_market() -> Market:
    m = Market(trades_per_stream=3)
    m.apply_book(snap(BN, 10, [(100.0, 1.0)], [(101.0, 1.0)]), 1)
    m.apply_book(snap(KR, 20, [(100.0, 2.0), (99.0, 1.0)], [(102.0, 1.0)]), 2)
    m.aggregated(SYMBOL)  # aggregated books are lazy: kept once someone asked for one
    return m


class TestBooks:
    def test_streams_and_books(self) -> None:
        m = live_market()
        assert m.streams() == [S_BN, S_KR] and m.symbols() == [SYMBOL]
        book = m.book(S_BN)
        assert book is not None and book.sequence == 10
        assert m.book("COINBASE:BTC-USD") is None and m.state("nope") is None
        counters = m.counters(S_KR)
        assert counters is not None and counters.snapshots == 1 and counters.last_update_ns == 2
        assert m.counters("nope") is None

    def test_delta_updates_the_aggregated_book(self) -> None:
        m = live_market()
        event = m.apply_book(update(11, [(100.0, 0.5)], exchange=BN), 5)
        assert event.result is ApplyResult.APPLIED and event.stream == S_BN
        agg = m.aggregated(SYMBOL)
        assert event.aggregated is agg and agg is not None
        assert agg.levels()[0][0] == (100.0, 2.5, {"BINANCE": 0.5, "KRAKEN": 2.0})
        assert m.aggregated("ETH-USD") is None

    def test_aggregated_book_is_built_on_first_use(self) -> None:
        m = Market()
        m.apply_book(snap(BN, 10, [(100.0, 1.0)], [(101.0, 1.0)]), 1)
        m.apply_book(snap(KR, 20, [(100.0, 2.0), (99.0, 1.0)], [(102.0, 1.0)]), 2)
        event = m.apply_book(update(11, [(100.0, 0.5)], exchange=BN), 3)
        assert event.aggregated is None  # nobody asked: no merging on the update path
        stats = m.symbol_stats(SYMBOL, 4)
        assert stats is not None and (stats.best_bid, stats.best_ask) == (100.0, 101.0)
        agg = m.aggregated(SYMBOL)
        assert agg is not None and agg.venues == {"BINANCE", "KRAKEN"}
        assert agg.levels()[0][0] == (100.0, 2.5, {"BINANCE": 0.5, "KRAKEN": 2.0})
        event = m.apply_book(update(12, [(100.0, 1.5)], exchange=BN), 5)
        assert event.aggregated is agg and agg.bids(1) == [(100.0, 3.5)]

    def test_gap_goes_stale_then_snapshot_recovers(self) -> None:
        m = live_market()
        event = m.apply_book(update(13, [(100.0, 0.5)], exchange=BN), 5)
        assert event.result is ApplyResult.GAP and event.book.stale
        agg = m.aggregated(SYMBOL)
        assert agg is not None and event.aggregated is agg
        assert agg.venues == {"KRAKEN"} and agg.bids(1) == [(100.0, 2.0)]
        assert m.apply_book(update(14, [(1.0, 1.0)], exchange=BN), 6).result is (
            ApplyResult.STALE_IGNORED
        )
        event = m.apply_book(snap(BN, 30, [(100.5, 1.0)], [(101.0, 1.0)]), 7)
        assert event.result is ApplyResult.SNAPSHOT and not event.book.stale
        assert agg.venues == {"BINANCE", "KRAKEN"} and agg.bids(1) == [(100.5, 1.0)]
        c = m.counters(S_BN)
        assert c is not None
        assert (c.gaps, c.stale_ignored, c.snapshots, c.last_record_ns) == (1, 1, 2, 7)

    def test_duplicates_are_counted_and_change_nothing(self) -> None:
        m = live_market()
        event = m.apply_book(update(9, [(100.0, 9.0)], exchange=BN), 5)
        assert event.result is ApplyResult.DUPLICATE and event.aggregated is None
        c = m.counters(S_BN)
        assert c is not None and c.duplicates == 1 and c.last_update_ns == 1

    def test_invalid_records_raise_typed_and_change_no_book(self) -> None:
        m = live_market()
        book = m.book(S_BN)
        assert book is not None
        before = book.copy()
        agg = m.aggregated(SYMBOL)
        assert agg is not None
        agg_seq = agg.sequence
        with pytest.raises(InvalidLevelError):
            m.apply_book(update(11, [(math.nan, 1.0)], exchange=BN), 5)
        with pytest.raises(CrossedBookError):
            m.apply_book(snap(BN, 12, [(105.0, 1.0)], [(101.0, 1.0)]), 5)
        assert book.same_state(before) and agg.sequence == agg_seq
        c = m.counters(S_BN)
        assert c is not None and c.invalid == 2 and m.invalid_total == 2

    def test_checksum_failures_are_counted(self) -> None:
        m = live_market()
        bad_snap = snap(BN, 11, [(100.0, 1.0)], [(101.0, 1.0)])
        bad_snap.checksum = 1
        with pytest.raises(ChecksumMismatchError):
            m.apply_book(bad_snap, 5)
        bad_delta = update(11, [(100.0, 2.0)], exchange=BN)
        bad_delta.checksum = 1
        event = m.apply_book(bad_delta, 6)
        assert event.result is ApplyResult.GAP and event.book.stale_reason == "checksum mismatch"
        c = m.counters(S_BN)
        assert c is not None and (c.checksum_failures, c.gaps, c.invalid) == (2, 1, 1)

    def test_checksums_can_be_ignored(self) -> None:
        m = Market(verify_checksums=False)
        u = snap(BN, 11, [(100.0, 1.0)], [(101.0, 1.0)])
        u.checksum = 1
        assert m.apply_book(u, 1).result is ApplyResult.SNAPSHOT
        book = m.book(S_BN)
        assert book is not None and not book.verify_checksums

    def test_invalid_record_of_a_new_stream_creates_nothing(self) -> None:
        m = Market()
        with pytest.raises(InvalidUpdateError):
            m.apply_book(update(1, exchange=Exchange.UNKNOWN), 1)
        with pytest.raises(InvalidUpdateError):
            m.apply_book(update(1, symbol=""), 1)
        with pytest.raises(InvalidLevelError):
            m.apply_book(snap(CB, 1, [(0.0, 1.0)], []), 1)
        assert m.streams() == [] and m.symbols() == [] and m.invalid_total == 3

    def test_plain_int_exchange_is_accepted(self) -> None:
        m = Market()
        m.apply_book(snap(2, 1, [(1.0, 1.0)], []), 1)  # type: ignore[arg-type]
        assert m.streams() == ["COINBASE:BTC-USD"]

    def test_mark_stale(self) -> None:
        m = live_market()
        agg = m.aggregated(SYMBOL)
        assert m.mark_stale(S_KR, "consumer lag") is agg
        book = m.book(S_KR)
        assert book is not None and book.stale and book.stale_reason == "consumer lag"
        assert agg is not None and agg.venues == {"BINANCE"}
        assert m.mark_stale(S_KR, "again") is None
        assert m.mark_stale("nope", "x") is None

    def test_drop_streams(self) -> None:
        m = live_market()
        m.apply_book(snap(CB, 1, [(10.0, 1.0)], [], symbol="ETH-USD"), 1)
        assert m.drop_streams(lambda s: s.startswith("KRAKEN:")) == [S_KR]
        assert m.streams() == [S_BN, "COINBASE:ETH-USD"]
        agg = m.aggregated(SYMBOL)
        assert agg is not None and agg.venues == {"BINANCE"}
        assert m.drop_streams(lambda s: s.endswith("ETH-USD")) == ["COINBASE:ETH-USD"]
        assert m.symbols() == [SYMBOL] and m.aggregated("ETH-USD") is None
        assert m.symbol_stats("ETH-USD", 0) is None


class TestTrades:
    def test_newest_first_and_bounded(self) -> None:
        m = live_market()
        for seq in range(1, 6):
            assert m.apply_trade(trade(BN, seq), seq)
        assert [t.sequence for t in m.trades(S_BN, 10)] == [5, 4, 3]
        assert [t.sequence for t in m.trades(S_BN, 2)] == [5, 4]
        assert m.trades(S_BN, -1) == [] and m.trades("nope", 5) == []
        c = m.counters(S_BN)
        assert c is not None and (c.trades, c.last_trade_ns, c.last_trade_sequence) == (5, 5, 5)

    def test_duplicate_trades_are_ignored(self) -> None:
        m = live_market()
        assert m.apply_trade(trade(BN, 7), 1)
        assert not m.apply_trade(trade(BN, 7), 2)
        assert not m.apply_trade(trade(BN, 3), 3)
        assert m.apply_trade(trade(BN, 8), 4)
        c = m.counters(S_BN)
        assert c is not None and c.duplicate_trades == 2 and len(m.trades(S_BN)) == 2

    def test_unsequenced_trades_are_kept(self) -> None:
        m = Market()
        assert m.apply_trade(trade(KR, 0, ts=5), 1)
        assert m.apply_trade(trade(KR, 0, ts=6), 2)
        assert len(m.trades(S_KR)) == 2
        book = m.book(S_KR)
        assert book is not None and book.stale  # a trade-only stream has a stale empty book

    @pytest.mark.parametrize(
        ("price", "qty"), [(math.nan, 1.0), (0.0, 1.0), (1.0, 0.0), (1.0, math.inf)]
    )
    def test_invalid_trades(self, price: float, qty: float) -> None:
        m = live_market()
        with pytest.raises(InvalidLevelError, match="invalid trade"):
            m.apply_trade(trade(BN, 1, price, qty), 1)
        c = m.counters(S_BN)
        assert c is not None and c.invalid == 1 and m.trades(S_BN) == []

    def test_trade_of_unknown_exchange(self) -> None:
        m = Market()
        with pytest.raises(InvalidUpdateError):
            m.apply_trade(trade(Exchange.UNKNOWN, 1), 1)
        assert m.streams() == [] and m.invalid_total == 1

    def test_stats(self) -> None:
        m = live_market()
        t0 = 1_764_000_000_000_000_000
        m.apply_trade(trade(BN, 1, 100.0, 1.0, ts=t0), 1)
        m.apply_trade(trade(BN, 2, 110.0, 1.0, ts=t0 + 1), 2)
        m.apply_trade(trade(KR, 1, 90.0, 2.0, ts=t0 + 2), 3)
        s = m.stats(S_BN, t0 + MINUTE_NS)
        assert s is not None
        assert (s.exchange, s.open, s.last, s.trade_count) == ("BINANCE", 100.0, 110.0, 2)
        assert (s.best_bid, s.best_ask, s.spread, s.mid) == (100.0, 101.0, 1.0, 100.5)
        assert m.stats("nope", 0) is None
        both = m.symbol_stats(SYMBOL, t0 + MINUTE_NS)
        assert both is not None
        assert (both.exchange, both.trade_count, both.volume, both.low) == ("", 3, 4.0, 90.0)
        assert (both.best_bid, both.best_ask) == (100.0, 101.0)

    def test_stats_of_a_stale_book_have_no_top(self) -> None:
        m = live_market()
        m.mark_stale(S_BN, "x")
        s = m.stats(S_BN, 0)
        assert s is not None and (s.best_bid, s.best_ask) == (0.0, 0.0)
        m2 = Market()
        m2.apply_trade(trade(KR, 1), 1)
        s2 = m2.symbol_stats(SYMBOL, 0)
        assert s2 is not None and (s2.best_bid, s2.best_ask) == (0.0, 0.0)
