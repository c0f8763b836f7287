"""The simulator: a pure, seeded market model, and the runner that paces it into a sink.

Book checks rebuild every stream from the emitted records with a plain dict model,
the way a consumer would, and compare it with what the records claim.
"""

from __future__ import annotations

import ast
import itertools
import struct
import threading
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import producers.simulator as simulator
from core.book import OrderBook
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import KafkaConfig, SimulatorConfig
from mdgw.kafka.sink import DeliveryStats, MemorySink
from producers.publisher import Publisher
from producers.simulate_run import BATCH, TICK_NS, Clock, SimStats, run_simulator, sequence_base
from producers.simulator import (
    PoissonArrivals,
    SimulatedMarket,
    StreamSpec,
    decimals,
    default_streams,
)
from schemas import codec

Record = BookUpdate | Trade


def market(seed: int = 7, **kw: object) -> SimulatedMarket:
    kw.setdefault("levels", 50)
    return SimulatedMarket(default_streams(), seed=seed, sequence_base=1_000, **kw)  # type: ignore[arg-type]


def run(m: SimulatedMarket, events: int, start_ns: int = 0) -> list[Record]:
    out: list[Record] = []
    for i in range(events):
        out.extend(m.next_events(start_ns + i * 1_000))
    return out


def on_grid(value: float, step: float) -> bool:
    """value is an exact multiple of step, printed with step's decimals."""
    return round(round(value / step) * step, decimals(step)) == value


class Books:
    """A consumer's view: one dict book per stream, rebuilt from the records."""

    def __init__(self) -> None:
        self.bids: dict[str, dict[float, float]] = defaultdict(dict)
        self.asks: dict[str, dict[float, float]] = defaultdict(dict)

    def apply(self, u: BookUpdate) -> None:
        bids, asks = self.bids[u.stream], self.asks[u.stream]
        if u.is_snapshot:
            bids.clear()
            asks.clear()
        for book, levels in ((bids, u.bids), (asks, u.asks)):
            for price, qty in levels:
                if qty == 0:
                    book.pop(price, None)
                else:
                    book[price] = qty

    def best(self, stream: str) -> tuple[float, float]:
        return max(self.bids[stream]), min(self.asks[stream])

    def checksum(self, stream: str) -> int:
        asks = sorted(self.asks[stream].items())[:10]
        bids = sorted(self.bids[stream].items(), reverse=True)[:10]
        return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks + bids))


def books_of(records: list[Record]) -> list[BookUpdate]:
    return [r for r in records if isinstance(r, BookUpdate)]


def check_book_and_tape(records: list[Record], lots: dict[str, float]) -> int:
    """Rebuild the books; after every record the book is two-sided, uncrossed and
    matches the record's checksum; every trade takes the best opposite level and the
    delta right after it reduces that level by the traded size. Returns the trades."""
    books = Books()
    trades = 0
    for i, r in enumerate(records):
        if isinstance(r, BookUpdate):
            assert r.is_snapshot or r.bids or r.asks
            books.apply(r)
            bid, ask = books.best(r.stream)
            assert 0 < bid < ask
            assert r.checksum == books.checksum(r.stream)
            continue
        trades += 1
        side = books.asks[r.stream] if r.side == "buy" else books.bids[r.stream]
        best = min(side) if r.side == "buy" else max(side)
        assert r.price == best and 0 < r.quantity <= side[best]
        delta = records[i + 1]
        assert isinstance(delta, BookUpdate) and delta.stream == r.stream
        after = dict(delta.asks if r.side == "buy" else delta.bids)[r.price]
        lot = lots[r.stream]
        assert round(side[best] / lot) - round(r.quantity / lot) == round(after / lot)
    return trades


class TestDefaultStreams:
    def test_three_majors_per_exchange(self) -> None:
        keys = [s.key for s in default_streams()]
        assert keys == [
            "BINANCE:BTC-USDT", "BINANCE:ETH-USDT", "BINANCE:SOL-USDT",
            "COINBASE:BTC-USD", "COINBASE:ETH-USD", "COINBASE:SOL-USD",
            "KRAKEN:BTC-USD", "KRAKEN:ETH-USD", "KRAKEN:SOL-USD",
        ]  # fmt: skip

    def test_realistic_prices_and_grids(self) -> None:
        for s in default_streams():
            assert {"BTC": 90_000, "ETH": 3_000, "SOL": 200}[s.symbol[:3]] < s.mid
            assert on_grid(s.mid, s.tick)
        kraken_btc = next(s for s in default_streams() if s.key == "KRAKEN:BTC-USD")
        assert kraken_btc.tick == 0.1

    def test_hundred_streams_for_load_tests(self) -> None:
        streams = default_streams(34)
        assert len(streams) == 102
        assert len({s.key for s in streams}) == 102
        assert all(codec.SYMBOL_RE.match(s.symbol) for s in streams)
        binance = [s.symbol for s in streams if s.exchange is Exchange.BINANCE]
        assert binance[3] == "S001-USDT" and all(b.endswith("-USDT") for b in binance)
        kraken = {s.symbol for s in streams if s.exchange is Exchange.KRAKEN}
        coinbase = {s.symbol for s in streams if s.exchange is Exchange.COINBASE}
        assert kraken == coinbase  # the same canonical symbols, for aggregated books

    def test_synthetic_mids_deterministic_and_close_across_venues(self) -> None:
        assert default_streams(6, seed=3) == default_streams(6, seed=3)
        a, b = (
            next(s for s in default_streams(6) if s.key == k)
            for k in ("COINBASE:S002-USD", "KRAKEN:S002-USD")
        )
        assert abs(a.mid / b.mid - 1) < 2e-3

    def test_fewer_symbols(self) -> None:
        assert [s.symbol[:3] for s in default_streams(1)] == ["BTC"] * 3
        with pytest.raises(ValueError):
            default_streams(0)


class TestDeterminism:
    def test_same_seed_same_records(self) -> None:
        assert run(market(seed=5), 2_000) == run(market(seed=5), 2_000)

    def test_other_seed_other_records(self) -> None:
        assert run(market(seed=5), 200) != run(market(seed=6), 200)


class TestSequencing:
    def test_contiguous_per_stream_and_first_is_snapshot(self) -> None:
        last: dict[str, int] = {}
        for u in books_of(run(market(), 5_000)):
            if u.stream not in last:
                assert u.is_snapshot and u.sequence == 1_000
            else:
                assert u.sequence == last[u.stream] + 1
            assert u.prev_sequence == u.sequence - 1
            last[u.stream] = u.sequence
        assert len(last) == 9

    def test_periodic_snapshots(self) -> None:
        per_stream: dict[str, list[BookUpdate]] = defaultdict(list)
        for u in books_of(run(market(snapshot_every=40), 5_000)):
            per_stream[u.stream].append(u)
        for records in per_stream.values():
            assert [i for i, u in enumerate(records) if u.is_snapshot] == list(
                range(0, len(records), 40)
            )

    def test_snapshot_every_zero_means_only_the_first(self) -> None:
        snaps = [u for u in books_of(run(market(snapshot_every=0), 2_000)) if u.is_snapshot]
        assert len(snaps) == 9

    def test_snapshots_of_every_stream(self) -> None:
        m = market()
        snaps = m.snapshots(5)
        assert [u.stream for u in snaps] == [s.key for s in m.streams]
        assert all(u.is_snapshot and len(u.bids) == len(u.asks) == 50 for u in snaps)
        assert not any(u.is_snapshot for u in books_of(run(m, 100)))  # already sent

    def test_trades_have_their_own_contiguous_sequence(self) -> None:
        last: dict[str, int] = {}
        for t in run(market(trade_ratio=0.5), 3_000):
            if isinstance(t, Trade):
                assert t.sequence == last.get(t.stream, 999) + 1
                assert t.trade_id == str(t.sequence)
                last[t.stream] = t.sequence

    def test_timestamp_is_the_event_time(self) -> None:
        m = market()
        assert {r.timestamp_ns for r in m.next_events(123_456)} == {123_456}


class TestRestart:
    def test_later_base_continues_higher_starting_with_snapshot(self) -> None:
        t0 = 1_764_000_000_000_000_000
        first = SimulatedMarket(default_streams(), sequence_base=sequence_base(t0))
        last = {u.stream: u.sequence for u in books_of(run(first, 20_000))}
        later = SimulatedMarket(default_streams(), sequence_base=sequence_base(t0 + 10**9))
        seen: set[str] = set()
        for u in books_of(run(later, 2_000)):
            if u.stream not in seen:
                seen.add(u.stream)
                assert u.is_snapshot and u.sequence > last[u.stream]

    def test_base_is_wall_clock_microseconds(self) -> None:
        assert sequence_base(1_764_000_000_123_456_789) == 1_764_000_000_123_456
        assert sequence_base(1_764_000_000_000_000_000) < 2**53

    def test_rejects_base_zero(self) -> None:
        with pytest.raises(ValueError):
            SimulatedMarket(default_streams(), sequence_base=0)


class TestGrid:
    @pytest.mark.parametrize("step,places", [(0.01, 2), (0.1, 1), (1e-8, 8), (0.001, 3), (5.0, 0)])
    def test_decimals(self, step: float, places: int) -> None:
        assert decimals(step) == places

    def test_prices_on_tick_and_sizes_on_lot(self) -> None:
        specs = {s.key: s for s in default_streams(5)}
        m = SimulatedMarket(list(specs.values()), levels=40, trade_ratio=0.3)
        for r in run(m, 5_000):
            spec = specs[r.stream]
            if isinstance(r, Trade):
                assert on_grid(r.price, spec.tick) and on_grid(r.quantity, spec.lot)
                assert r.quantity > 0
                continue
            for price, qty in r.bids + r.asks:
                assert on_grid(price, spec.tick) and on_grid(qty, spec.lot)
                assert qty > 0 or not r.is_snapshot


class TestBook:
    def test_never_crossed_and_checksums_match(self) -> None:
        lots = {s.key: s.lot for s in default_streams()}
        check_book_and_tape(run(market(trade_ratio=0.2), 20_000), lots)

    def test_snapshot_equals_the_book_built_from_deltas(self) -> None:
        books = Books()
        checked = 0
        for u in books_of(run(market(snapshot_every=50, trade_ratio=0.2), 5_000)):
            if u.is_snapshot and u.stream in books.bids:
                assert dict(u.bids) == books.bids[u.stream]
                assert dict(u.asks) == books.asks[u.stream]
                assert [p for p, _ in u.bids] == sorted(books.bids[u.stream], reverse=True)
                checked += 1
            books.apply(u)
        assert checked > 50

    def test_deltas_are_small_and_near_the_top(self) -> None:
        books = Books()
        sizes: Counter[int] = Counter()
        near = total = 0
        for u in books_of(run(market(levels=300), 10_000)):
            if not u.is_snapshot:
                sizes[len(u.bids) + len(u.asks)] += 1
                bids = sorted(books.bids[u.stream], reverse=True)
                asks = sorted(books.asks[u.stream])
                cut_bid, cut_ask = bids[min(9, len(bids) - 1)], asks[min(9, len(asks) - 1)]
                near += sum(p >= cut_bid for p, _ in u.bids) + sum(p <= cut_ask for p, _ in u.asks)
                total += len(u.bids) + len(u.asks)
            books.apply(u)
        assert set(sizes) <= {1, 2, 3, 4} and sizes[1] > sizes[4]
        assert near / total > 0.6  # most changes are within the top 10 levels

    def test_depth_held_near_levels(self) -> None:
        m = market(levels=300)
        run(m, 20_000)
        for s in m.streams:
            book = m.book(s.key)
            assert 240 <= len(book.bids) <= 330 and 240 <= len(book.asks) <= 330

    def test_the_book_moves_with_a_tight_spread(self) -> None:
        m = market(levels=100)
        book = m.book("BINANCE:BTC-USDT")
        start = book.best_bid()
        moved = 0
        spreads = []
        for i in range(20_000):
            m.stream_events("BINANCE:BTC-USDT", i)
            moved += book.best_bid() != start
            spreads.append(round((book.best_ask() - book.best_bid()) / 0.01))
        assert moved > 10_000
        assert sorted(spreads)[len(spreads) // 2] <= 10  # median spread in ticks

    @settings(max_examples=40, deadline=None)
    @given(
        seed=st.integers(0, 2**32),
        levels=st.integers(1, 8),
        trade_ratio=st.floats(0, 1),
        spacing=st.floats(1, 6),
        vol=st.floats(0, 5),
    )
    def test_small_books_stay_two_sided(
        self, seed: int, levels: int, trade_ratio: float, spacing: float, vol: float
    ) -> None:
        spec = StreamSpec(
            Exchange.KRAKEN, "XYZ-USD", 12.5, 0.01, 0.1, 3.0, spacing=spacing, vol=vol
        )
        m = SimulatedMarket([spec], seed=seed, levels=levels, trade_ratio=trade_ratio)
        check_book_and_tape(run(m, 300), {spec.key: spec.lot})


class TestTrades:
    def test_trade_takes_the_opposite_best_level_and_the_delta_reduces_it(self) -> None:
        lots = {s.key: s.lot for s in default_streams()}
        trades = check_book_and_tape(run(market(trade_ratio=0.3), 10_000), lots)
        assert 2_000 < trades < 4_000

    def test_no_trades_at_ratio_zero_only_trades_at_one(self) -> None:
        assert not any(isinstance(r, Trade) for r in run(market(trade_ratio=0.0), 1_000))
        records = run(market(trade_ratio=1.0, snapshot_every=0), 1_000)
        assert sum(isinstance(r, Trade) for r in records) == 1_000

    def test_both_sides_trade(self) -> None:
        sides = Counter(r.side for r in run(market(trade_ratio=0.5), 2_000) if isinstance(r, Trade))
        assert sides["buy"] > 200 and sides["sell"] > 200


class TestStreamChoice:
    def test_btc_is_busier(self) -> None:
        counts = Counter(u.stream for u in books_of(run(market(), 20_000)))
        assert counts["BINANCE:BTC-USDT"] > 1.5 * counts["BINANCE:SOL-USDT"]
        assert counts["KRAKEN:SOL-USD"] > 0

    def test_rejects_bad_arguments(self) -> None:
        with pytest.raises(ValueError):
            SimulatedMarket([])
        with pytest.raises(ValueError):
            SimulatedMarket(default_streams() * 2)
        with pytest.raises(ValueError):
            SimulatedMarket(default_streams(), trade_ratio=1.5)
        with pytest.raises(ValueError):
            SimulatedMarket(default_streams(), levels=0)


class TestPoissonArrivals:
    def test_mean_gap_is_one_over_rate(self) -> None:
        arrivals = PoissonArrivals(50_000, 0, seed=1)
        times = arrivals.due(10**9)
        assert 48_500 < len(times) < 51_500
        assert times == sorted(times) and all(t <= 10**9 for t in times)

    def test_gaps_are_exponential_not_regular(self) -> None:
        times = PoissonArrivals(1_000, 0, seed=2).due(10 * 10**9)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        short = sum(g < 1_000_000 * 0.1 for g in gaps) / len(gaps)
        assert 0.07 < short < 0.12  # P(gap < mean/10) = 1 - e^-0.1 ~ 0.095

    def test_limit_and_determinism(self) -> None:
        a, b = PoissonArrivals(1_000, 0, seed=3), PoissonArrivals(1_000, 0, seed=3)
        assert len(a.due(10**9, limit=10)) == 10
        assert a.due(10**9) == b.due(10**9)[10:]

    def test_skip_to_drops_the_backlog(self) -> None:
        arrivals = PoissonArrivals(1_000, 0, seed=4)
        assert 900 < arrivals.skip_to(10**9) < 1_100
        assert arrivals.next_ns > 10**9
        assert arrivals.skip_to(10**9) == 0  # nothing behind: nothing changes

    def test_rejects_zero_rate(self) -> None:
        with pytest.raises(ValueError):
            PoissonArrivals(0, 0)


class TestPurity:
    def test_model_imports_no_io(self) -> None:
        tree = ast.parse(Path(simulator.__file__).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        roots = {name.split(".")[0] for name in names}
        assert not roots & {"time", "socket", "asyncio", "threading", "confluent_kafka", "os"}


def decoded(sink: MemorySink) -> list[tuple[str, Record]]:
    out = []
    for topic, key, value, _ in sink.records:
        msg = codec.decode(value)
        assert isinstance(msg, BookUpdate | Trade) and msg.stream == key
        out.append((topic, msg))
    return out


class FakeClock(Clock):
    """Simulated time: it moves only when the run sleeps (by exactly the sleep) and, with
    ``step_ns``, by that much on every read, standing in for the cost of generating."""

    def __init__(self, wall0: int = 1_764_000_000_000_000_000, step_ns: int = 0) -> None:
        self.mono = 10**12
        self.offset = wall0 - self.mono
        self.step_ns = step_ns
        self.slept_ns = 0

    def monotonic_ns(self) -> int:
        self.mono += self.step_ns
        return self.mono

    def time_ns(self) -> int:
        return self.mono + self.offset

    def wait(self, stop: threading.Event, seconds: float) -> None:
        ns = round(seconds * 1e9)
        self.mono += ns
        self.slept_ns += ns


class TestRunner:
    """The runner in simulated time (``FakeClock``): pacing and deadlines are exact and
    nothing depends on how fast this machine is."""

    def test_paced_rate_and_duration(self) -> None:
        sink = MemorySink()
        cfg = SimulatorConfig(rate=2_000, duration=1.0, levels=50)
        clock = FakeClock()
        stats = run_simulator(cfg, Publisher(sink, KafkaConfig()), clock=clock)
        # Poisson arrivals at 2,000/s over exactly one simulated second (+ at most a tick)
        assert 1_800 <= stats.events <= 2_200
        assert 1.0 <= stats.elapsed_s <= 1.0 + TICK_NS / 1e9
        assert clock.slept_ns == round(stats.elapsed_s * 1e9)  # it slept, never spun
        records = decoded(sink)
        books = [m for _, m in records if isinstance(m, BookUpdate)]
        assert len(books) == stats.book_records and stats.book_records >= stats.events
        assert stats.topics == {
            "marketdata.book": stats.book_records,
            "marketdata.trades": stats.trade_records,
        }
        assert stats.ok and not stats.interrupted
        assert all(t == "marketdata.book" for t, m in records if isinstance(m, BookUpdate))
        assert 0.03 < stats.trade_records / stats.events < 0.2

    def test_every_stream_starts_with_a_snapshot_and_timestamps_are_the_clocks(self) -> None:
        sink = MemorySink()
        cfg = SimulatorConfig(rate=500, duration=0.2, levels=20)
        clock = FakeClock()
        wall0 = clock.time_ns()
        run_simulator(cfg, Publisher(sink, KafkaConfig()), clock=clock)
        first: dict[str, BookUpdate] = {}
        for _, m in decoded(sink):
            if isinstance(m, BookUpdate):
                first.setdefault(m.stream, m)
                assert wall0 <= m.timestamp_ns <= wall0 + 200_000_000 + TICK_NS
        assert len(first) == 9 and all(u.is_snapshot for u in first.values())

    def test_restart_continues_with_higher_sequences(self) -> None:
        runs = []
        for start in (FakeClock(), FakeClock(wall0=FakeClock().time_ns() + 10**9)):
            sink = MemorySink()
            run_simulator(
                SimulatorConfig(rate=1_000, duration=0.1, levels=20),
                Publisher(sink, KafkaConfig()),
                clock=start,
            )
            runs.append([m for _, m in decoded(sink) if isinstance(m, BookUpdate)])
        last = {u.stream: u.sequence for u in runs[0]}
        first = {}
        for u in runs[1]:
            first.setdefault(u.stream, u)
        assert all(u.is_snapshot and u.sequence > last[k] for k, u in first.items())

    def test_rate_beyond_capacity_still_stops_on_time_and_counts_the_drops(self) -> None:
        # every clock read costs 25 ms: the loop gets 2,048 events done per 125,000 due
        cfg = SimulatorConfig(rate=5_000_000, duration=0.5, levels=10)
        clock = FakeClock(step_ns=25_000_000)
        stats = run_simulator(cfg, Publisher(MemorySink(), KafkaConfig()), clock=clock)
        assert 0.5 <= stats.elapsed_s <= 0.5 + 2 * 0.025  # the deadline, give or take a read
        assert stats.skipped_events > 1_000_000 and "skipped" in stats.summary()
        # every arrival up to the deadline was either generated or counted as dropped
        arrivals = stats.events + stats.skipped_events
        assert abs(arrivals - 2_500_000) < 8_000, arrivals  # Poisson: 5 sigma

    def test_max_rate_until_stopped(self) -> None:
        stop = threading.Event()

        class StopAt(MemorySink):
            def send(self, *args: object, **kwargs: object) -> None:
                super().send(*args, **kwargs)  # type: ignore[arg-type]
                if len(self.records) == 5_000:
                    stop.set()

        sink = StopAt()
        stats = run_simulator(
            SimulatorConfig(rate=0, duration=0, levels=20),
            Publisher(sink, KafkaConfig()),
            stop=stop,
            clock=FakeClock(step_ns=1_000),
        )
        # it stops at the end of the batch during which stop was set
        assert stats.events % BATCH == 0
        assert 5_000 <= len(sink.records) < 5_000 + 2 * BATCH
        assert len(sink.records) == stats.book_records + stats.trade_records

    def test_reports_undelivered_and_failed(self) -> None:
        class Stuck(MemorySink):
            def flush(self, timeout: float = 30.0) -> int:
                return 3

        delivery = DeliveryStats()
        delivery.failed = 2  # before the run: not this run's
        stats = run_simulator(
            SimulatorConfig(rate=1_000, duration=0.05, levels=10),
            Publisher(Stuck(), KafkaConfig()),
            delivery=delivery,
        )
        assert stats.undelivered == 3 and stats.failed == 0 and not stats.ok
        assert "undelivered" in stats.summary()

    def test_summary_and_rates(self) -> None:
        stats = SimStats(events=100, book_records=110, trade_records=10, elapsed_s=2.0)
        assert stats.rate == 50 and stats.records_per_s == 60
        assert "100 events" in stats.summary()
        assert SimStats().rate == 0

    def test_ctrl_c_stops_flushes_and_reports(self, capsys: pytest.CaptureFixture[str]) -> None:
        class Interrupting(MemorySink):
            flushed = False

            def send(self, *args: object, **kwargs: object) -> None:
                if len(self.records) == 200:
                    raise KeyboardInterrupt
                super().send(*args, **kwargs)  # type: ignore[arg-type]

            def flush(self, timeout: float = 30.0) -> int:
                self.flushed = True
                return 0

        sink = Interrupting()
        cfg = SimulatorConfig(rate=0, duration=0, levels=10)
        stats = run_simulator(cfg, Publisher(sink, KafkaConfig()), progress=True)
        assert stats.interrupted and sink.flushed and len(sink.records) == 200
        assert "[simulate] simulated" in capsys.readouterr().err


class TestAgainstTheGatewayBook:
    def test_core_book_applies_every_record_and_agrees_on_checksums(self) -> None:
        books: dict[str, OrderBook] = {}
        results: Counter[str] = Counter()
        t0 = 1_764_000_000_000_000_000
        for seed, start in ((1, t0), (2, t0 + 10**9)):  # a run, then a restart
            m = SimulatedMarket(
                default_streams(),
                seed=seed,
                levels=100,
                trade_ratio=0.2,
                sequence_base=sequence_base(start),
            )
            for u in books_of(run(m, 5_000, start)):
                book = books.setdefault(u.stream, OrderBook(u.exchange, u.symbol))
                results[book.apply(u).name] += 1
                assert book.checksum() == u.checksum
        assert set(results) == {"SNAPSHOT", "APPLIED"}
