"""The only file I/O of the text readers: open plain or gzip (by magic bytes), yield lines."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from io import BufferedIOBase
from pathlib import Path

from producers.captures.errors import CorruptLineError, TruncatedGzipError

GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE_BYTES = 64 * 1024 * 1024
"""Longest line read whole (Binance's exchangeInfo answer is ~2 MB)."""


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_binary(path: str | Path) -> BufferedIOBase:
    """The file's bytes, inflated when it starts with the gzip magic."""
    if is_gzip(path):
        return gzip.open(path, "rb")
    return open(path, "rb")


def head(path: str | Path, size: int = 4096) -> bytes:
    """Up to ``size`` leading (inflated) bytes; what a gzip error leaves readable."""
    with open_binary(path) as f:
        try:
            return f.read(size)
        except (EOFError, gzip.BadGzipFile, zlib.error) as e:
            raise TruncatedGzipError(f"gzip data unreadable: {e}", path=path, line=0) from e


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes | CorruptLineError]]:
    """``(line number from 1, line without its end)``; an over-long line comes as an error.

    A gzip stream that ends early or does not inflate raises
    :class:`TruncatedGzipError` whose ``line`` is the last line read whole.
    """
    number = 0
    with open_binary(path) as f:
        try:
            while True:
                raw = f.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    while (rest := f.readline(MAX_LINE_BYTES)) and not rest.endswith(b"\n"):
                        pass
                    message = f"line longer than {MAX_LINE_BYTES} bytes"
                    yield number, CorruptLineError(message, path=path, line=number)
                    continue
                yield number, raw.rstrip(b"\r\n")
        except EOFError as e:
            raise TruncatedGzipError(
                f"gzip stream ends before its end marker (file cut short) after line {number}",
                path=path,
                line=number,
            ) from e
        except (gzip.BadGzipFile, zlib.error) as e:
            raise TruncatedGzipError(
                f"corrupt gzip data after line {number}: {e}", path=path, line=number
            ) from e
