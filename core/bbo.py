"""Best bid and offer (docs/protocol.md §4.8): the top of one book, or of one symbol
across venues, as a chain of small whole-state messages.

A :class:`BboTopic` holds the top it last announced and its own sequence: +1 per
message, and a message exists only when a side's price or quantity changed. Every
message is the whole top (both sides), so a client never needs an earlier one to
read it; ``prev_sequence`` lets it see that it missed one.

Reading the top of an :class:`core.book.OrderBook` is two O(1) ladder reads, so
the topic is checked after every record of a stream that has subscribers, with
no depth view and no checksum (the fast path the channel exists for).

Across venues (a canonical symbol), :func:`best_of` picks the best price over the
live books; on a tie the larger quantity wins, then the exchange name that sorts
first. A quote there carries its venue: ``(price, quantity, "KRAKEN")``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.book import OrderBook
from core.market import Market
from core.types import Exchange, Level, parse_stream_key, stream_key

Quote = tuple[float, float] | tuple[float, float, str]
"""One side of the top: (price, quantity), plus the venue's name across venues."""


@dataclass(slots=True)
class Bbo:
    """One ``bbo`` message."""

    exchange: Exchange
    """The stream's venue; ``Exchange.UNKNOWN`` for a symbol across venues."""
    symbol: str
    timestamp_ns: int
    """Exchange event time of the record that changed the top."""
    sequence: int
    prev_sequence: int
    bid: Quote | None
    """None when the side is empty."""
    ask: Quote | None
    ingest_ns: int = 0
    gateway_ns: int = 0


class BboTopic:
    """The announced top of one stream or symbol, and its message chain."""

    __slots__ = ("ask", "bid", "exchange", "last", "sequence", "symbol")

    def __init__(self, exchange: Exchange, symbol: str) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.sequence = 0
        """Sequence of the last message (0: none yet)."""
        self.bid: Quote | None = None
        self.ask: Quote | None = None
        self.last: Bbo | None = None
        """The last message: what a new subscriber receives first."""

    def update(
        self, bid: Quote | None, ask: Quote | None, timestamp_ns: int, ingest_ns: int
    ) -> Bbo | None:
        """The message for this top, or None when it equals the announced one."""
        if self.last is not None and bid == self.bid and ask == self.ask:
            return None
        prev = self.sequence
        self.sequence = seq = prev + 1
        self.bid = bid
        self.ask = ask
        self.last = msg = Bbo(
            self.exchange, self.symbol, timestamp_ns, seq, prev, bid, ask, ingest_ns
        )
        return msg


def best_of(quotes: Iterable[tuple[str, Level | None]], bids: bool) -> Quote | None:
    """The best of ``(venue, level)`` pairs for one side: best price, then larger
    quantity, then the venue name that sorts first; None when every side is empty."""
    best: tuple[float, float, str] | None = None
    for venue, level in quotes:
        if level is None:
            continue
        p, q = level
        if best is None:
            best = (p, q, venue)
            continue
        bp, bq, bv = best
        if p != bp:
            better = p > bp if bids else p < bp
        elif q != bq:
            better = q > bq
        else:
            better = venue < bv
        if better:
            best = (p, q, venue)
    return best


def stream_top(book: OrderBook) -> tuple[Quote | None, Quote | None]:
    """A single book's top: two O(1) reads."""
    return book.bid_side.best(), book.ask_side.best()


def venues_top(books: Iterable[OrderBook]) -> tuple[Quote | None, Quote | None]:
    """The top of one symbol over the live books of its venues."""
    live = [(b.exchange.name, b) for b in books if not b.stale]
    return (
        best_of(((v, b.bid_side.best()) for v, b in live), bids=True),
        best_of(((v, b.ask_side.best()) for v, b in live), bids=False),
    )


class BboBoard:
    """The BBO topics someone subscribes to, fed after each book record.

    A name is a stream (``EXCHANGE:SYMBOL``: that book's top, nothing while it is
    stale) or a canonical symbol (the best over its live venue books). Topics exist
    only while the owner wants them (:meth:`open` / :meth:`close`), so streams
    nobody watches cost one dict lookup per record.
    """

    def __init__(self, market: Market) -> None:
        self.market = market
        self.topics: dict[str, BboTopic] = {}

    def exists(self, name: str) -> bool:
        """A stream or symbol the market knows (a topic can be opened for it)."""
        exchange, symbol = _split(name)
        if exchange is Exchange.UNKNOWN:
            return bool(self.market.venue_books(symbol))
        return self.market.book(name) is not None

    def open(self, name: str) -> BboTopic | None:
        """The topic of ``name``, created (with the current top) on first use; None for
        an unknown stream or symbol."""
        topic = self.topics.get(name)
        if topic is not None:
            return topic
        exchange, symbol = _split(name)
        market = self.market
        if exchange is Exchange.UNKNOWN:
            books = market.venue_books(symbol)
            if not books:
                return None
        elif market.book(name) is None:
            return None
        topic = self.topics[name] = BboTopic(exchange, symbol)
        self.refresh(topic)
        return topic

    def close(self, name: str) -> None:
        self.topics.pop(name, None)

    def refresh(self, topic: BboTopic, book: OrderBook | None = None) -> Bbo | None:
        """Bring ``topic`` to the current top (``book``: the record's book, for its
        times); the message when the top changed."""
        market = self.market
        if topic.exchange is Exchange.UNKNOWN:
            books = market.venue_books(topic.symbol)
            bid, ask = venues_top(books)
        else:
            book = book or market.book(stream_key(topic.exchange, topic.symbol))
            if book is None or book.stale:  # the owner says so (status stale)
                return None
            bid, ask = stream_top(book)
            books = [book]
        if book is None:
            book = max(books, key=lambda b: b.ingest_ns, default=None)
        ts, ingest = (book.timestamp_ns, book.ingest_ns) if book is not None else (0, 0)
        return topic.update(bid, ask, ts, ingest)

    def on_book(self, book: OrderBook) -> tuple[Bbo | None, Bbo | None]:
        """After a record of ``book`` changed it (applied, snapshot, or it went stale):
        the messages of its stream's topic and of its symbol's topic, if open."""
        topics = self.topics
        s = topics.get(book.stream)
        msg = None
        if s is not None and not book.stale:
            bid, ask = book.bid_side.best(), book.ask_side.best()
            msg = s.update(bid, ask, book.timestamp_ns, book.ingest_ns)
        a = topics.get(book.symbol)
        return msg, (None if a is None else self.refresh(a, book))


def _split(name: str) -> tuple[Exchange, str]:
    """``EXCHANGE:SYMBOL`` -> (exchange, symbol); a bare symbol -> (UNKNOWN, symbol)."""
    if ":" not in name:
        return Exchange.UNKNOWN, name
    try:
        return parse_stream_key(name)
    except ValueError:
        return Exchange.UNKNOWN, ""
