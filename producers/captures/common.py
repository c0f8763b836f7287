"""Shared state of one replay and the small parsing helpers every venue needs. No I/O."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Protocol

from core.types import BookUpdate, Exchange, Trade, stream_key
from producers.captures.errors import CaptureError, CorruptLineError
from producers.captures.normalizer import StreamNormalizer
from producers.captures.summary import ReplaySummary
from producers.captures.symbols import SymbolMapper

_SECONDS_RE = re.compile(r"^(\d{1,12})(?:\.(\d{0,18}))?$", re.ASCII)
_ISO_RE = re.compile(
    r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,12}))?(Z|[+-]\d\d:\d\d)?$", re.ASCII
)


def seconds_to_ns(value: Any) -> int:
    """Unix time in decimal seconds (``"1618678133.136361"``) -> ns, exactly (no float)."""
    text = value if isinstance(value, str) else _number_text(value)
    m = _SECONDS_RE.match(text.strip())
    if m is None:
        raise CorruptLineError(f"bad timestamp {value!r}")
    frac = (m[2] or "")[:9].ljust(9, "0")
    return int(m[1]) * 1_000_000_000 + int(frac)


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CorruptLineError(f"bad timestamp {value!r}")
    return f"{value:.9f}" if isinstance(value, float) else str(value)


def int_field(value: Any, what: str) -> int:
    """A JSON integer (not a bool, not a float) or :class:`CorruptLineError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise CorruptLineError(f"{what} is {value!r}, not an integer")
    return value


def millis_to_ns(value: Any) -> int:
    ms = int_field(value, "timestamp")
    if not 0 <= ms < 2**63 // 1_000_000:
        raise CorruptLineError(f"timestamp {ms} out of range")
    return ms * 1_000_000


def iso_to_ns(value: Any) -> int:
    """``"2021-04-17T16:43:30.244075Z"`` -> unix ns, exactly."""
    m = _ISO_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise CorruptLineError(f"bad ISO-8601 time {value!r}")
    tz = m[3] or "Z"
    try:
        dt = datetime.fromisoformat(m[1] + ("+00:00" if tz == "Z" else tz))
    except ValueError as e:
        raise CorruptLineError(f"bad ISO-8601 time {value!r}") from e
    seconds = int(dt.timestamp())
    if seconds < 0:
        raise CorruptLineError(f"time before 1970: {value!r}")
    return seconds * 1_000_000_000 + int((m[2] or "")[:9].ljust(9, "0"))


def as_list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise CorruptLineError(f"{what} is {type(value).__name__}, not a list")
    return value


def as_str(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise CorruptLineError(f"{what} is {value!r}, not a non-empty string")
    return value


class ReplayContext:
    """One replay's symbol mapper, normalizers, summary, and the location being read.

    Venue handlers get it at construction; the file layer sets ``path``/``line``
    before each message so unknown symbols are reported with their location.
    """

    def __init__(
        self, summary: ReplaySummary | None = None, symbols: SymbolMapper | None = None
    ) -> None:
        self.summary = summary if summary is not None else ReplaySummary()
        self.symbols = symbols if symbols is not None else SymbolMapper()
        self.normalizers: dict[str, StreamNormalizer] = {}
        self.path: str | None = None
        self.line: int | None = None

    def normalizer(self, exchange: Exchange, symbol: str, depth: int = 0) -> StreamNormalizer:
        """The stream's normalizer, created on first use (``depth`` applies then)."""
        key = stream_key(exchange, symbol)
        norm = self.normalizers.get(key)
        if norm is None:
            norm = StreamNormalizer(exchange, symbol, self.summary.stream(key), depth)
            self.normalizers[key] = norm
        elif depth:
            norm.book.depth = depth
        return norm

    def symbol(self, exchange: Exchange, native: Any) -> str | None:
        """Canonical symbol, or None after reporting the native name as unknown."""
        if not isinstance(native, str) or not native:
            raise CorruptLineError(f"symbol is {native!r}, not a non-empty string")
        canonical = self.symbols.canonical(exchange, native)
        if canonical is None:
            self.summary.unknown_symbol(exchange.name, native, self.path, self.line)
        return canonical

    def skip(self, kind: str) -> None:
        """Count a message read but not turned into events."""
        self.summary.skipped[kind] += 1


MALFORMED = (KeyError, TypeError, ValueError, IndexError, AttributeError)
"""What indexing a JSON value of the wrong shape raises; turned into CorruptLineError."""


@contextmanager
def book_guard(norm: StreamNormalizer) -> Iterator[None]:
    """A book message of a known stream that fails to parse is a gap on that stream."""
    try:
        yield
    except CaptureError as e:
        norm.gap(f"corrupt book message: {e.message}")
        raise
    except MALFORMED as e:
        norm.gap(f"malformed book message: {e!r}")
        raise CorruptLineError(f"malformed book message: {e!r}") from e


Emitted = list[BookUpdate | Trade]


class VenueHandler(Protocol):
    """What the capture readers feed; a live connector could feed the same handlers."""

    exchange: Exchange

    def on_message(self, msg: Any, recv_ns: int, source: str) -> Emitted:
        """One decoded WebSocket message received on connection ``source``."""
        ...

    def on_http(self, url: str, msg: Any, recv_ns: int, source: str) -> Emitted:
        """One decoded REST answer (GET ``url``)."""
        ...

    def on_connect(self, recv_ns: int, source: str) -> None:
        """A (re)connection of ``source``: what came on it before is no longer continuous."""
        ...

    def on_lost(self, raw: str, source: str) -> None:
        """A line of ``source`` that could not be decoded; ``raw`` is its text."""
        ...

    def on_end(self) -> None:
        """End of input: account for anything still buffered."""
        ...
