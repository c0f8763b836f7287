"""All market state of one process: books, trade tapes, statistics, aggregated books.

Both the gateway and the REST service hold a :class:`Market` and feed it decoded
records; neither keeps book state of its own. Errors from invalid records
propagate typed (:mod:`core.errors`) for the caller to dead-letter; the only
thing they change is the ``invalid`` counters, never a book.

The statistics of a symbol across venues merge the venues' own rolling windows
(:meth:`Market.symbol_stats`), so they need no state of their own and come out the
same whatever order the venues' partitions were consumed in. A stream's trade
state (statistics buckets, tape) can be checkpointed and restored
(:meth:`Market.stats_checkpoint`, :meth:`Market.restore_stats`).

The aggregated book of a symbol merges the *live* books of every venue listing
it: a venue whose book turns stale (gap, ``mark_stale``) is taken out, and put
back by its next snapshot.

Aggregated books are **lazy**: none is kept until someone asks for one with
:meth:`Market.aggregated` (a gateway subscription, a REST request); it is then
built from the venue books as they are (``AggregatedBook.sync_venue``) and kept
up to date from that record on. Merging on every update of every symbol cost
about two thirds of ``apply_book`` (bench/README.md, W5) for books nobody read.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice

from core.aggregate import AggregatedBook
from core.book import CHECKSUM_MISMATCH, ApplyResult, OrderBook
from core.errors import ChecksumMismatchError, CoreError, InvalidLevelError, InvalidUpdateError
from core.stats import DAY_NS, MINUTE_NS, RollingStats, StatsCheckpoint, merged, statistics
from core.types import KNOWN_EXCHANGES, BookUpdate, Exchange, Statistics, Trade, stream_key


@dataclass(slots=True)
class FeedCounters:
    """Health of one stream, for ``/api/v1/feeds`` and metrics."""

    updates: int = 0
    snapshots: int = 0
    gaps: int = 0
    duplicates: int = 0
    stale_ignored: int = 0
    invalid: int = 0
    checksum_failures: int = 0
    """Records whose checksum disagreed (a corrupt snapshot, or a delta the book
    could not reproduce: then the stream went stale)."""
    trades: int = 0
    duplicate_trades: int = 0
    last_update_ns: int = 0
    """``now_ns`` when a book record was last applied (snapshot or delta)."""
    last_record_ns: int = 0
    """``now_ns`` when any book record last arrived, applied or not."""
    last_trade_ns: int = 0
    last_trade_sequence: int = 0


@dataclass(slots=True)
class StreamState:
    """Everything known about one ``EXCHANGE:SYMBOL`` stream."""

    book: OrderBook
    trades: deque[Trade]
    """Newest first."""
    stats: RollingStats
    counters: FeedCounters = field(default_factory=FeedCounters)


@dataclass(slots=True)
class BookEvent:
    """What one book record did. Not frozen: one is made per record, and a frozen
    dataclass's ``__init__`` costs 3.6x (0.78 against 0.21 µs here)."""

    stream: str
    result: ApplyResult
    book: OrderBook
    aggregated: AggregatedBook | None
    """The symbol's aggregated book when it changed (its ``last_changes`` say how)."""


class Market:
    """Streams -> book, trades, stats, counters; symbols -> aggregated book."""

    def __init__(
        self,
        trades_per_stream: int = 1000,
        stats_window_ns: int = DAY_NS,
        stats_bucket_ns: int = MINUTE_NS,
        verify_checksums: bool = True,
    ) -> None:
        self.trades_per_stream = trades_per_stream
        self.verify_checksums = verify_checksums
        self.stats_window_ns = stats_window_ns
        self.stats_bucket_ns = stats_bucket_ns
        self.invalid_total = 0
        """Invalid records seen, including those of streams never created."""
        self._streams: dict[str, StreamState] = {}
        self._aggregated: dict[str, AggregatedBook] = {}
        """Active aggregated books only (see the module docstring)."""
        self._symbols: dict[str, list[str]] = {}
        """Canonical symbol -> its streams, sorted (the merge order of its statistics)."""

    # -- feeding -----------------------------------------------------------

    def apply_book(self, update: BookUpdate, now_ns: int) -> BookEvent:
        """Apply one book record; raises a CoreError (book untouched) when it is invalid."""
        state = None
        try:
            state = self._streams.get(_stream_of(update.exchange, update.symbol))
            if state is None:
                book = OrderBook(
                    update.exchange, update.symbol, verify_checksums=self.verify_checksums
                )
            else:
                book = state.book
            result = book.apply(update)
        except CoreError as e:
            self._count_invalid(state)
            if state is not None and isinstance(e, ChecksumMismatchError):
                state.counters.checksum_failures += 1
            raise
        if state is None:
            state = self._add_stream(book)
        counters = state.counters
        counters.last_record_ns = now_ns
        agg = self._aggregated.get(book.symbol)
        changed = False
        if result is ApplyResult.APPLIED:
            counters.updates += 1
            counters.last_update_ns = now_ns
            if agg is not None:
                changed = agg.update_from(
                    book, [lv[0] for lv in update.bids], [lv[0] for lv in update.asks]
                )
        elif result is ApplyResult.SNAPSHOT:
            counters.snapshots += 1
            counters.last_update_ns = now_ns
            changed = agg is not None and agg.sync_venue(book)
        elif result is ApplyResult.GAP:
            counters.gaps += 1
            if book.stale_reason == CHECKSUM_MISMATCH:
                counters.checksum_failures += 1
            changed = agg is not None and agg.remove_venue(book.exchange)
        elif result is ApplyResult.DUPLICATE:
            counters.duplicates += 1
        else:
            counters.stale_ignored += 1
        return BookEvent(book.stream, result, book, agg if changed else None)

    def apply_trade(self, trade: Trade, now_ns: int) -> bool:
        """Record one trade; False for a repeated one (sequence not above the last seen).

        Trades with sequence 0 carry no sequence and are always taken.
        """
        try:
            stream = _stream_of(trade.exchange, trade.symbol)
            if not (0.0 < trade.price < math.inf and 0.0 < trade.quantity < math.inf):
                raise InvalidLevelError(
                    f"{trade.stream}: invalid trade price={trade.price!r} "
                    f"quantity={trade.quantity!r}"
                )
        except InvalidLevelError:
            self._count_invalid(self._streams.get(stream))
            raise
        except CoreError:
            self._count_invalid(None)
            raise
        state = self._streams.get(stream)
        if state is None:
            book = OrderBook(trade.exchange, trade.symbol, verify_checksums=self.verify_checksums)
            state = self._add_stream(book)
        counters = state.counters
        if trade.sequence and trade.sequence <= counters.last_trade_sequence:
            counters.duplicate_trades += 1
            return False
        if trade.sequence:
            counters.last_trade_sequence = trade.sequence
        counters.trades += 1
        counters.last_trade_ns = now_ns
        state.trades.appendleft(trade)
        state.stats.add_trade(trade)
        return True

    def mark_stale(self, stream: str, reason: str) -> AggregatedBook | None:
        """Stop trusting a stream's book; returns its aggregated book if that changed."""
        state = self._streams.get(stream)
        if state is None:
            return None
        book = state.book
        book.mark_stale(reason)
        agg = self._aggregated.get(book.symbol)
        return agg if agg is not None and agg.remove_venue(book.exchange) else None

    def drop_streams(self, pred: Callable[[str], bool]) -> list[str]:
        """Forget every stream whose name satisfies ``pred`` (e.g. a revoked partition)."""
        dropped = [s for s in self._streams if pred(s)]
        for stream in dropped:
            book = self._streams.pop(stream).book
            agg = self._aggregated.get(book.symbol)
            if agg is not None:
                agg.remove_venue(book.exchange)
            streams = self._symbols[book.symbol]
            streams.remove(stream)
            if not streams:
                self._aggregated.pop(book.symbol, None)
                del self._symbols[book.symbol]
        return dropped

    def _count_invalid(self, state: StreamState | None) -> None:
        self.invalid_total += 1
        if state is not None:
            state.counters.invalid += 1

    def _add_stream(self, book: OrderBook) -> StreamState:
        state = StreamState(
            book=book,
            trades=deque(maxlen=self.trades_per_stream),
            stats=RollingStats(
                book.exchange.name, book.symbol, self.stats_window_ns, self.stats_bucket_ns
            ),
        )
        self._streams[book.stream] = state
        streams = self._symbols.setdefault(book.symbol, [])
        streams.append(book.stream)
        streams.sort()
        return state

    # -- checkpoints of the trade state --------------------------------------

    def stats_checkpoint(self, stream: str, copy: bool = True) -> StatsCheckpoint | None:
        """One stream's trade state (None for an unknown stream); ``copy=False`` shares
        the live buckets, for a caller that serialises them at once."""
        state = self._streams.get(stream)
        if state is None:
            return None
        stats = state.stats
        return StatsCheckpoint(
            exchange=state.book.exchange,
            symbol=state.book.symbol,
            window_ns=stats.window_ns,
            bucket_ns=stats.bucket_ns,
            newest=stats.newest,
            buckets=stats.buckets(copy),
            recent=list(state.trades),
            last_trade_sequence=state.counters.last_trade_sequence,
        )

    def restore_stats(self, cp: StatsCheckpoint) -> None:
        """Replace a stream's trade state with a checkpoint's (creating the stream).

        Raises InvalidUpdateError for an unknown venue or a checkpoint of another
        window or bucket size (its buckets cannot be re-cut exactly).
        """
        stream = _stream_of(cp.exchange, cp.symbol)
        if (cp.window_ns, cp.bucket_ns) != (self.stats_window_ns, self.stats_bucket_ns):
            raise InvalidUpdateError(
                f"{stream}: statistics checkpoint of window {cp.window_ns} / bucket "
                f"{cp.bucket_ns} ns, this market keeps {self.stats_window_ns} / "
                f"{self.stats_bucket_ns}"
            )
        state = self._streams.get(stream)
        if state is None:
            book = OrderBook(cp.exchange, cp.symbol, verify_checksums=self.verify_checksums)
            state = self._add_stream(book)
        state.stats.restore(cp.buckets, cp.newest)
        state.trades.clear()
        state.trades.extend(cp.recent[: self.trades_per_stream])
        state.counters.last_trade_sequence = cp.last_trade_sequence

    # -- reading -----------------------------------------------------------

    def stream_count(self) -> int:
        return len(self._streams)

    def streams(self) -> list[str]:
        """Every known stream name, sorted."""
        return sorted(self._streams)

    def symbols(self) -> list[str]:
        """Every canonical symbol with at least one stream, sorted."""
        return sorted(self._symbols)

    def state(self, stream: str) -> StreamState | None:
        return self._streams.get(stream)

    def book(self, stream: str) -> OrderBook | None:
        state = self._streams.get(stream)
        return None if state is None else state.book

    def counters(self, stream: str) -> FeedCounters | None:
        state = self._streams.get(stream)
        return None if state is None else state.counters

    def trades(self, stream: str, limit: int = 100) -> list[Trade]:
        """The last ``limit`` trades of a stream, newest first ([] for unknown streams)."""
        state = self._streams.get(stream)
        return [] if state is None else list(islice(state.trades, max(limit, 0)))

    def stats(self, stream: str, now_ns: int) -> Statistics | None:
        """Rolling statistics of one stream; best bid/ask only while its book is live."""
        state = self._streams.get(stream)
        if state is None:
            return None
        book = state.book
        bid = ask = None
        if not book.stale:
            bid, ask = book.best_bid(), book.best_ask()
        return state.stats.snapshot(now_ns, bid[0] if bid else 0.0, ask[0] if ask else 0.0)

    def symbol_stats(self, symbol: str, now_ns: int) -> Statistics | None:
        """Statistics of one symbol over every venue (exchange ""), top of the aggregated book."""
        streams = self._symbols.get(symbol)
        if streams is None:
            return None
        states = [self._streams[s] for s in streams]
        # venues in stream-name order: the sums come out the same in every process
        window = merged([w for st in states if (w := st.stats.window(now_ns)) is not None])
        # the aggregated book's top is the best of the live venue books: no need to build it
        live = [st.book for st in states if not st.book.stale]
        bids = [lv[0] for b in live if (lv := b.best_bid()) is not None]
        asks = [lv[0] for b in live if (lv := b.best_ask()) is not None]
        return statistics(
            "",
            symbol,
            now_ns,
            self.stats_window_ns,
            window,
            max(bids, default=0.0),
            min(asks, default=0.0),
        )

    def venue_books(self, symbol: str) -> list[OrderBook]:
        """The books of every venue listing ``symbol`` (stale ones too), by stream name."""
        return [self._streams[s].book for s in self._symbols.get(symbol, ())]

    def aggregated(self, symbol: str) -> AggregatedBook | None:
        """The symbol's aggregated book, built on first use (None for an unknown symbol)."""
        agg = self._aggregated.get(symbol)
        if agg is None and symbol in self._symbols:
            agg = self._aggregated[symbol] = AggregatedBook(symbol)
            for st in self._streams.values():
                if st.book.symbol == symbol and not st.book.stale:
                    agg.sync_venue(st.book)
        return agg


def _stream_of(exchange: Exchange, symbol: str) -> str:
    """The stream name of a record, or InvalidUpdateError for an unknown venue or no symbol."""
    if exchange not in KNOWN_EXCHANGES or not symbol:
        raise InvalidUpdateError(f"record with exchange={exchange!r} symbol={symbol!r}")
    return stream_key(exchange, symbol)  # a known exchange: its enum value is enough
