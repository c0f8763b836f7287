"""Tardis.dev CSV exports (``incremental_book_L2`` and ``trades``) -> normalized events.

Real rows (docs.tardis.dev, "Downloadable CSV files"; times in unix microseconds)::

    exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount
    binance,BTCUSDT,1601510400082000,1601510400111919,true,ask,10775.17,0.163219
    binance,BTCUSDT,1601510400290000,1601510400301911,false,bid,10772.54,0

    exchange,symbol,timestamp,local_timestamp,id,side,price,amount
    kraken,XBT/USD,1601510402154000,1601510402210981,,sell,10775.7,0.01226018

Book rules (Tardis's): rows with the same ``local_timestamp`` came in one venue
message and form one update; ``amount`` is the new level size, 0 removes it;
``is_snapshot=true`` rows after non-snapshot rows start a new snapshot (a
reconnection or a new day): the book is reset. Rows before the first snapshot
are dropped (counted). A snapshot whose rows are interleaved with other
symbols' rows is emitted as one snapshot followed by updates carrying the rest.
Trade ``side`` is the taker's (``buy``/``sell``/``unknown`` -> ``""``).

Files may be gzipped (detected by magic bytes); a truncated gzip is recorded as
:class:`TruncatedGzipError` with the last line read, and what came before is kept.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.types import BookUpdate, Exchange, stream_key
from producers.captures.common import ReplayContext
from producers.captures.errors import CaptureError, CorruptLineError, UnknownFormatError
from producers.captures.files import iter_lines
from producers.captures.normalizer import ParsedLevel, StreamNormalizer, parse_level
from producers.captures.summary import CaptureEvent, ReplaySummary
from producers.captures.symbols import SymbolMapper

_COMMON = ("exchange", "symbol", "timestamp", "local_timestamp")
BOOK_COLUMNS = (*_COMMON, "is_snapshot", "side", "price", "amount")
TRADE_COLUMNS = (*_COMMON, "id", "side", "price", "amount")
EXCHANGES = {"binance": Exchange.BINANCE, "coinbase": Exchange.COINBASE, "kraken": Exchange.KRAKEN}
_BOOLS = {"true": True, "false": False}
_TRADE_SIDES = {"buy": "buy", "sell": "sell", "unknown": ""}

Kind = Literal["book", "trades"]


@dataclass(frozen=True, slots=True)
class Row:
    """One validated CSV row. ``flag`` is ``is_snapshot`` (book files); ``trade_id``
    is the ``id`` column (trade files); ``side`` is bid/ask or buy/sell/""."""

    exchange: str
    symbol: str
    timestamp_ns: int
    local_ns: int
    flag: bool
    trade_id: str
    side: str
    price: str
    amount: str
    level: ParsedLevel


def parse_header(text: str) -> tuple[Kind, tuple[int, ...]]:
    """The file kind and the position of each expected column."""
    names = [n.strip() for n in text.split(",")]
    kinds: tuple[tuple[Kind, tuple[str, ...]], ...] = (
        ("book", BOOK_COLUMNS),
        ("trades", TRADE_COLUMNS),
    )
    for kind, columns in kinds:
        if set(columns) <= set(names):
            return kind, tuple(names.index(c) for c in columns)
    raise UnknownFormatError(f"not a Tardis incremental_book_L2/trades header: {text[:80]!r}")


def _micros(text: str, what: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise CorruptLineError(f"{what} {text!r} is not unix microseconds")
    return int(text) * 1000


def parse_row(text: str, kind: Kind, columns: tuple[int, ...]) -> Row:
    """Validate one data row of a file of ``kind``; :class:`CorruptLineError` if bad."""
    fields = text.split(",")
    if len(fields) <= max(columns):
        raise CorruptLineError(f"{len(fields)} fields, expected {max(columns) + 1}")
    exchange, symbol, ts, local, fourth, side, price, amount = (fields[i].strip() for i in columns)
    if not exchange or not symbol:
        raise CorruptLineError("empty exchange or symbol")
    if kind == "book":
        flag = _BOOLS.get(fourth)
        if flag is None or side not in ("bid", "ask"):
            raise CorruptLineError(f"bad is_snapshot/side {fourth!r}/{side!r}")
        trade_id, out_side = "", side
    else:
        flag, trade_id, out_side = False, fourth, _TRADE_SIDES.get(side, "?")
        if out_side == "?":
            raise CorruptLineError(f"bad trade side {side!r}")
    level = parse_level(price, amount)
    ts_ns, local_ns = _micros(ts, "timestamp"), _micros(local, "local_timestamp")
    return Row(exchange, symbol, ts_ns, local_ns, flag, trade_id, out_side, price, amount, level)


@dataclass(slots=True)
class _Group:
    """Rows of one venue message (same stream, local time and snapshot flag)."""

    norm: StreamNormalizer
    local_ns: int
    snapshot: bool
    timestamp_ns: int = 0
    bids: list[ParsedLevel] = field(default_factory=list)
    asks: list[ParsedLevel] = field(default_factory=list)


class TardisBook:
    """Groups ``incremental_book_L2`` rows into venue messages and normalizes them. No I/O."""

    def __init__(self, ctx: ReplayContext, columns: tuple[int, ...] = tuple(range(8))) -> None:
        self.ctx = ctx
        self.columns = columns
        self._group: _Group | None = None
        self._in_snapshot: dict[str, bool] = {}
        """Per stream: was its last group a snapshot (so more snapshot rows continue it)?"""
        self._seen: dict[str, StreamNormalizer] = {}

    def feed(self, row: Row) -> list[CaptureEvent]:
        """Add one row; returns the records of the group it closed, if any."""
        norm = _normalizer(self.ctx, row)
        if norm is None:
            return []
        self._seen[stream_key(norm.exchange, norm.symbol)] = norm
        out: list[CaptureEvent] = []
        group = self._group
        if group is None or self._starts_group(group, norm, row):
            out = self.flush()
            group = self._group = _Group(norm, row.local_ns, row.flag)
        group.timestamp_ns = max(group.timestamp_ns, row.timestamp_ns)
        (group.bids if row.side == "bid" else group.asks).append(row.level)
        return out

    @staticmethod
    def _starts_group(group: _Group, norm: StreamNormalizer, row: Row) -> bool:
        if group.norm is not norm:
            return True
        if group.snapshot and row.flag:
            return False  # snapshot rows continue the snapshot, whatever their time
        return (group.local_ns, group.snapshot) != (row.local_ns, row.flag)

    def flush(self) -> list[CaptureEvent]:
        """Emit the open group (call at the end of input)."""
        group, self._group = self._group, None
        if group is None:
            return []
        norm = group.norm
        key = stream_key(norm.exchange, norm.symbol)
        continued = self._in_snapshot.get(key, False) and norm.synced
        self._in_snapshot[key] = group.snapshot
        record: BookUpdate | None
        if group.snapshot and not continued:
            record = norm.snapshot(group.timestamp_ns, group.bids, group.asks)
        else:
            record = norm.update(group.timestamp_ns, group.bids, group.asks)
        return [] if record is None else [CaptureEvent(group.local_ns, record)]

    def lost(self, text: str) -> list[CaptureEvent]:
        """A row that did not parse: its stream (if readable, else every one) goes stale.

        The open group is emitted first when the row visibly belongs to another
        message (another stream or local time); otherwise it may be incomplete
        and is discarded.
        """
        fields = [f.strip() for f in text.split(",")]
        stream, local = None, None
        if len(fields) > max(self.columns[:4]):
            exchange = EXCHANGES.get(fields[self.columns[0]])
            symbol = (
                self.ctx.symbols.canonical(exchange, fields[self.columns[1]]) if exchange else None
            )
            stream = stream_key(exchange, symbol) if exchange and symbol else None
            local_text = fields[self.columns[3]]
            local = (
                int(local_text) * 1000 if local_text.isascii() and local_text.isdigit() else None
            )
        out: list[CaptureEvent] = []
        group = self._group
        if group is not None:
            same_stream = stream in (None, stream_key(group.norm.exchange, group.norm.symbol))
            if same_stream and local in (None, group.local_ns):
                self._group = None
            else:
                out = self.flush()
        for key, norm in self._seen.items():
            if stream in (None, key):
                norm.gap("unreadable row")
        return out


def _normalizer(ctx: ReplayContext, row: Row) -> StreamNormalizer | None:
    exchange = EXCHANGES.get(row.exchange)
    if exchange is None:
        ctx.summary.unknown_symbol(row.exchange.upper(), row.symbol, ctx.path, ctx.line)
        return None
    symbol = ctx.symbol(exchange, row.symbol)
    return None if symbol is None else ctx.normalizer(exchange, symbol)


def _trade(ctx: ReplayContext, row: Row) -> list[CaptureEvent]:
    norm = _normalizer(ctx, row)
    if norm is None:
        return []
    trade = norm.trade(row.timestamp_ns, row.trade_id, row.price, row.amount, row.side)
    return [] if trade is None else [CaptureEvent(row.local_ns, trade)]


def _read_file(path: str, ctx: ReplayContext) -> Iterator[CaptureEvent]:
    book: TardisBook | None = None
    kind: Kind = "book"
    try:
        for number, raw in iter_lines(path):
            ctx.path, ctx.line = path, number
            ctx.summary.lines += 1
            text = "" if isinstance(raw, CaptureError) else raw.decode("utf-8", "replace")
            try:
                if isinstance(raw, CaptureError):
                    raise raw
                if book is None:
                    kind, columns = parse_header(text)
                    book = TardisBook(ctx, columns)
                elif text.strip():
                    if "\ufffd" in text:
                        raise CorruptLineError("not UTF-8 text")
                    row = parse_row(text, kind, book.columns)
                    yield from book.feed(row) if kind == "book" else _trade(ctx, row)
            except UnknownFormatError as e:
                ctx.summary.record_error(e.at(path, number))
                return
            except CaptureError as e:
                ctx.summary.record_error(e.at(path, number))
                if book is not None and kind == "book":
                    yield from book.lost(text)
    except CaptureError as e:  # a truncated gzip: what was read is kept
        ctx.summary.record_error(e.at(path, None))
    if book is not None:
        yield from book.flush()


def read_tardis(
    paths: Iterable[str | Path],
    *,
    summary: ReplaySummary | None = None,
    symbols: SymbolMapper | None = None,
    context: ReplayContext | None = None,
) -> Iterator[CaptureEvent]:
    """Normalized events of Tardis CSV files (plain or gzip), merged by local time.

    ``summary``/``symbols``/``context``: as for :func:`~.cryptofeed.read_cryptofeed`.
    """
    ctx = context if context is not None else ReplayContext(summary, symbols)
    files = [str(p) for p in paths]
    ctx.summary.files.extend(files)
    counter = itertools.count()
    streams = [
        ((e.recv_ns, i, next(counter), e) for e in _read_file(p, ctx)) for i, p in enumerate(files)
    ]
    for *_, event in heapq.merge(*streams):
        ctx.summary.events += 1
        yield event
