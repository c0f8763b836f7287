"""Recorded market data -> the project's normalized stream (book records and trades).

Entry point: :func:`open_capture` (format detection, auxiliary files, merge by
receive time). Readers per format: :func:`read_cryptofeed`, :func:`read_tardis`,
:func:`read_native` / :func:`read_native_events`, and :class:`NativeCaptureWriter`.
Venue handlers (:mod:`.binance`, :mod:`.coinbase`, :mod:`.kraken`) and the
per-stream :class:`StreamNormalizer` are pure and usable by live connectors.
"""

from __future__ import annotations

from producers.captures.cryptofeed import read_cryptofeed
from producers.captures.detect import detect_format, open_capture
from producers.captures.errors import (
    CaptureError,
    CorruptLineError,
    RecordTooLargeError,
    TruncatedGzipError,
    UnknownFormatError,
    UnknownSymbolError,
)
from producers.captures.native import NativeCaptureWriter, read_native, read_native_events
from producers.captures.normalizer import StreamNormalizer
from producers.captures.summary import CaptureEvent, ReplaySummary, StreamStats
from producers.captures.symbols import SymbolMapper
from producers.captures.tardis import read_tardis

__all__ = [
    "CaptureError",
    "CaptureEvent",
    "CorruptLineError",
    "NativeCaptureWriter",
    "RecordTooLargeError",
    "ReplaySummary",
    "StreamNormalizer",
    "StreamStats",
    "SymbolMapper",
    "TruncatedGzipError",
    "UnknownFormatError",
    "UnknownSymbolError",
    "detect_format",
    "open_capture",
    "read_cryptofeed",
    "read_native",
    "read_native_events",
    "read_tardis",
]
