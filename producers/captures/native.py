"""The project's own capture format: length-prefixed ``MarketDataMessage`` records.

Layout (all integers big-endian)::

    b"MDGWCAP1\\n"                                  file header, once
    <uint32 length> <uint64 recv_ns> <length bytes>   one record, repeated

The bytes are a serialized ``marketdata.MarketDataMessage`` (``schemas/``); a
record longer than :data:`MAX_RECORD_BYTES` is refused on write and read.
The reader accepts gzip-compressed files too (by magic bytes). Framing errors
(a record cut short, an absurd length) end the file's replay: after them the
next record boundary is unknown. A record whose bytes do not decode is
reported and skipped; its neighbours are still read.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from io import BufferedIOBase
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from core.types import BookUpdate, Trade
from producers.captures.errors import (
    CaptureError,
    CorruptLineError,
    RecordTooLargeError,
    TruncatedGzipError,
    UnknownFormatError,
)
from producers.captures.files import open_binary
from producers.captures.summary import CaptureEvent, ReplaySummary
from schemas.codec import decode, encode
from schemas.errors import SchemaError

MAGIC = b"MDGWCAP1\n"
MAX_RECORD_BYTES = 16 * 1024 * 1024
_HEADER = struct.Struct(">IQ")


class NativeCaptureWriter:
    """Writes a native capture file; use as a context manager or call :meth:`close`."""

    def __init__(self, path: str | Path, *, max_record_bytes: int = MAX_RECORD_BYTES) -> None:
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes
        self.records = 0
        self._file: BinaryIO = open(self.path, "wb")  # noqa: SIM115 - closed by close()
        self._file.write(MAGIC)

    def write(self, recv_ns: int, payload: bytes) -> None:
        """Append one record: ``recv_ns`` (unix ns) and a serialized ``MarketDataMessage``."""
        if len(payload) > self.max_record_bytes:
            raise RecordTooLargeError(
                f"record of {len(payload)} bytes exceeds {self.max_record_bytes}",
                path=self.path,
                line=self.records + 1,
            )
        if not 0 <= recv_ns < 2**64:
            raise CaptureError(f"recv_ns {recv_ns} does not fit uint64", path=self.path)
        self._file.write(_HEADER.pack(len(payload), recv_ns))
        self._file.write(payload)
        self.records += 1

    def write_event(self, event: CaptureEvent) -> None:
        """Append a normalized event, encoded with ``schemas.codec``."""
        self.write(event.recv_ns, encode(event.message))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> NativeCaptureWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def iter_records(
    stream: BinaryIO | BufferedIOBase, *, max_record_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, bytes]]:
    """``(recv_ns, payload)`` of a stream positioned after the header. Errors carry
    the record number as ``line`` (the caller adds the path)."""
    number, offset = 0, len(MAGIC)
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        number += 1
        if len(header) < _HEADER.size:
            raise CorruptLineError(f"record header cut short at byte {offset}", line=number)
        length, recv_ns = _HEADER.unpack(header)
        if length > max_record_bytes:
            raise RecordTooLargeError(
                f"record length {length} at byte {offset} exceeds {max_record_bytes}", line=number
            )
        payload = stream.read(length)
        if len(payload) < length:
            raise CorruptLineError(
                f"record at byte {offset} cut short: {len(payload)} of {length} bytes", line=number
            )
        offset += _HEADER.size + length
        yield recv_ns, payload


def read_native(
    path: str | Path, *, max_record_bytes: int = MAX_RECORD_BYTES
) -> Iterator[tuple[int, bytes]]:
    """``(recv_ns, payload)`` per record of a native capture (plain or gzip).

    Raises :class:`UnknownFormatError` without the header, :class:`CorruptLineError`
    / :class:`RecordTooLargeError` / :class:`TruncatedGzipError` at a broken record.
    """
    with open_binary(path) as f:
        try:
            if f.read(len(MAGIC)) != MAGIC:
                raise UnknownFormatError("no MDGWCAP1 header", path=path, line=1)
            yield from iter_records(f, max_record_bytes=max_record_bytes)
        except CaptureError as e:
            raise e.at(path, None) from None
        except (EOFError, OSError, zlib.error) as e:
            raise TruncatedGzipError(f"gzip data unreadable: {e}", path=path) from e


def read_native_events(
    path: str | Path, *, summary: ReplaySummary | None = None
) -> Iterator[CaptureEvent]:
    """Decoded events of a native capture (``schemas.codec``), counted in ``summary``.

    Records are already normalized and pass through unchanged; a book record
    whose ``prev_sequence`` is not its stream's last sequence is counted as a
    gap (until the next snapshot). Heartbeats and statistics are counted as skipped.
    """
    summary = summary if summary is not None else ReplaySummary()
    summary.files.append(str(path))
    for number, (recv_ns, payload) in enumerate(_records(path, summary), 1):
        summary.lines += 1
        try:
            message = decode(payload)
        except SchemaError as e:
            summary.record_error(CorruptLineError(f"record {number}: {e}", path=path, line=number))
            continue
        if not isinstance(message, BookUpdate | Trade):
            summary.skipped[f"native:{type(message).__name__}"] += 1
            continue
        _count(summary, message)
        summary.events += 1
        yield CaptureEvent(recv_ns, message)


def _records(path: str | Path, summary: ReplaySummary) -> Iterator[tuple[int, bytes]]:
    try:
        yield from read_native(path)
    except CaptureError as e:
        summary.record_error(e)


def _count(summary: ReplaySummary, message: BookUpdate | Trade) -> None:
    stats = summary.stream(message.stream)
    if isinstance(message, Trade):
        stats.trades += 1
        return
    follows = stats.book_records == 0 or message.prev_sequence == stats.last_sequence
    if message.is_snapshot:
        stats.resyncs += stats.snapshots > 0
        stats.snapshots += 1
        stats.synced = True
    elif not follows:
        stats.note_gap(f"sequence {message.sequence} after {stats.last_sequence}")
        stats.synced = False
    stats.book_records += 1
    stats.last_sequence = message.sequence
