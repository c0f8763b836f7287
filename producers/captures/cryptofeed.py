"""cryptofeed raw captures -> normalized events.

One event per line (cryptofeed's ``raw_data_collection``), for example::

    wss://ws.kraken.com <-> 1618678132.368463                        connection opened
    wss://ws.kraken.com <- 1618678132.83097: {"event":"subscribe",...}   sent
    1618678142.592855: [993,[["354.11000000","0.89594024",...]],"trade","XMR/USD"]
    https://api.binance.com/api/v3/depth?symbol=NKNUSDT&limit=1000 -> 1633998512.320639: {...}
    configuration: {"trades":["NKN-USDT",...]}                     run configuration

:func:`parse_line` is pure. :func:`read_cryptofeed` reads several files (a
venue's WebSocket files and its ``*.http.*`` REST answers), merges their lines
in receive-time order and feeds each venue's handler (:mod:`.binance`,
:mod:`.coinbase`, :mod:`.kraken`). A line that does not parse is recorded in
the summary with its file and line; the venue handler is told (``on_lost``) so
a book that may have lost an update goes stale until its next snapshot.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import orjson

from core.types import EXCHANGE_BY_NAME, Exchange
from producers.captures.binance import BinanceHandler
from producers.captures.coinbase import CoinbaseHandler
from producers.captures.common import (
    MALFORMED,
    Emitted,
    ReplayContext,
    VenueHandler,
    seconds_to_ns,
)
from producers.captures.errors import (
    CaptureError,
    CorruptLineError,
    TruncatedGzipError,
    UnknownFormatError,
)
from producers.captures.files import head, iter_lines
from producers.captures.kraken import KrakenHandler
from producers.captures.summary import CaptureEvent, ReplaySummary
from producers.captures.symbols import SymbolMapper

LineKind = Literal["connect", "sent", "received", "http", "config"]
_HOSTS = {"binance": Exchange.BINANCE, "coinbase": Exchange.COINBASE, "kraken": Exchange.KRAKEN}


@dataclass(frozen=True, slots=True)
class RawLine:
    """One parsed capture line."""

    kind: LineKind
    recv_ns: int | None
    """Unix ns of the line; None for the ``configuration`` line."""
    url: str
    payload: Any
    """Decoded JSON (None for ``connect``)."""


def decode_json(text: str | bytes) -> Any:
    """orjson, with its errors as :class:`CorruptLineError`."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as e:
        raise CorruptLineError(f"bad JSON: {str(e)[:120]}") from None


def parse_line(text: str) -> RawLine | None:
    """Parse one line; None for a blank one, :class:`CorruptLineError` if malformed."""
    if not text.strip():
        return None
    head_, sep, body = text.partition(": ")
    if not sep:
        url, arrow, ts = text.rpartition(" <-> ")
        if not arrow or not url:
            raise CorruptLineError("not a cryptofeed capture line")
        return RawLine("connect", seconds_to_ns(ts), url, None)
    if head_ == "configuration":
        return RawLine("config", None, "", decode_json(body))
    markers: tuple[tuple[str, LineKind], ...] = ((" <- ", "sent"), (" -> ", "http"))
    for marker, kind in markers:
        url, arrow, ts = head_.rpartition(marker)
        if arrow:
            return RawLine(kind, seconds_to_ns(ts), url, decode_json(body))
    return RawLine("received", seconds_to_ns(head_), "", decode_json(body))


def exchange_of(path: str | Path) -> Exchange | None:
    """The venue of a capture file: from its name (``KRAKEN.ws.50.0``) or its first URL."""
    prefix = Path(path).name.split(".")[0].upper()
    named = EXCHANGE_BY_NAME.get(prefix)
    if named is not None:
        return named
    text = head(path).lower()
    hits = {ex for host, ex in _HOSTS.items() if host.encode() in text}
    return hits.pop() if len(hits) == 1 else None


_Item = tuple[int, int, int, RawLine | CaptureError, str]
"""(recv_ns, file index, line number, parsed line or error, message text of a bad line)."""


def _file_items(path: str, index: int, summary: ReplaySummary) -> Iterator[_Item]:
    last_ns = 0
    try:
        for number, raw in iter_lines(path):
            summary.lines += 1
            if isinstance(raw, CaptureError):
                yield last_ns, index, number, raw, ""
                continue
            try:
                line = parse_line(raw.decode("utf-8"))
            except UnicodeDecodeError:
                error = CorruptLineError("not UTF-8 text", path=path, line=number)
                yield last_ns, index, number, error, ""
                continue
            except CaptureError as e:
                text = raw.decode("utf-8", "replace")
                body = text.partition(": ")[2] or text  # the message part, for on_lost
                yield last_ns, index, number, e.at(path, number), body
                continue
            if line is None:
                continue
            last_ns = line.recv_ns if line.recv_ns is not None else last_ns
            yield last_ns, index, number, line, ""
    except CaptureError as e:  # truncated gzip: what was read is kept
        yield last_ns, index, 2**62, e.at(path, None), ""


def read_cryptofeed(
    paths: Iterable[str | Path],
    *,
    summary: ReplaySummary | None = None,
    symbols: SymbolMapper | None = None,
    context: ReplayContext | None = None,
) -> Iterator[CaptureEvent]:
    """Normalized events of cryptofeed capture files, merged in receive-time order.

    ``summary`` (filled while iterating) collects per-stream counts and errors;
    ``context`` (instead of summary/symbols) shares streams with another reader.
    """
    ctx = context if context is not None else ReplayContext(summary, symbols)
    handlers: dict[Exchange, VenueHandler] = {
        Exchange.BINANCE: BinanceHandler(ctx),
        Exchange.COINBASE: CoinbaseHandler(ctx),
        Exchange.KRAKEN: KrakenHandler(ctx),
    }
    files: list[tuple[str, VenueHandler]] = []
    for path in map(str, paths):
        ctx.summary.files.append(path)
        try:
            exchange = exchange_of(path)
        except (OSError, CaptureError) as e:
            ctx.summary.record_error(UnknownFormatError(f"unreadable: {e}", path=path))
            continue
        if exchange is None:
            ctx.summary.record_error(UnknownFormatError("cannot tell the exchange", path=path))
            continue
        files.append((path, handlers[exchange]))
    merged = heapq.merge(*(_file_items(p, i, ctx.summary) for i, (p, _) in enumerate(files)))
    for recv_ns, index, number, item, raw in merged:
        path, handler = files[index]
        ctx.path, ctx.line = path, number
        if isinstance(item, CaptureError):
            ctx.summary.record_error(item)
            if not isinstance(item, TruncatedGzipError):  # (the file's last item)
                handler.on_lost(raw, path)
            continue
        for message in _dispatch(ctx, handler, item, path):
            ctx.summary.events += 1
            yield CaptureEvent(recv_ns, message)
    for handler in handlers.values():
        handler.on_end()


def _dispatch(ctx: ReplayContext, handler: VenueHandler, line: RawLine, source: str) -> Emitted:
    recv_ns = line.recv_ns or 0
    try:
        if line.kind == "received":
            return handler.on_message(line.payload, recv_ns, source)
        if line.kind == "http":
            return handler.on_http(line.url, line.payload, recv_ns, source)
        if line.kind == "connect":
            handler.on_connect(recv_ns, source)
        else:
            ctx.skip(f"cryptofeed:{line.kind}")
    except CaptureError as e:
        ctx.summary.record_error(e.at(ctx.path, ctx.line))
    except MALFORMED as e:
        error = CorruptLineError(f"malformed {handler.exchange.name} message: {e!r}")
        ctx.summary.record_error(error.at(ctx.path, ctx.line))
    return []
