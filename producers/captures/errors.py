"""Errors raised while reading recorded market data.

    CaptureError                 root; ``path`` and ``line`` say where (either may be None)
     +-- UnknownFormatError      the file is none of the formats we read
     +-- UnknownSymbolError      a native symbol (or venue) we cannot map; reported, never guessed
     +-- CorruptLineError        a line / record that does not parse or makes no sense
     |    +-- RecordTooLargeError    a native record longer than the bound
     +-- TruncatedGzipError      a gzip stream that ends early or does not inflate

Parsers deep inside the package raise these without a location; the file layer
that knows the path and line number fills it in with :meth:`CaptureError.at`.
A replay records them in its :class:`~producers.captures.summary.ReplaySummary`
and goes on where that is safe, so one bad line never hides the rest of a file.
"""

from __future__ import annotations

from pathlib import Path


class CaptureError(Exception):
    """Root of every error of this package; prints as ``path:line: message``."""

    def __init__(
        self, message: str, *, path: str | Path | None = None, line: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.path: str | None = None if path is None else str(path)
        self.line = line

    def at(self, path: str | Path | None, line: int | None) -> CaptureError:
        """Fill in the location where it is still unknown; returns self."""
        if self.path is None and path is not None:
            self.path = str(path)
        if self.line is None:
            self.line = line
        return self

    @property
    def where(self) -> str:
        """``path:line``, ``path`` or ``<input>``."""
        path = self.path or "<input>"
        return path if self.line is None else f"{path}:{self.line}"

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class UnknownFormatError(CaptureError):
    """The content is not a cryptofeed, Tardis or native capture."""


class UnknownSymbolError(CaptureError):
    """A venue's symbol (or a venue) with no canonical name; its records are skipped."""


class CorruptLineError(CaptureError):
    """One line or record that cannot be parsed or breaks the venue's rules."""


class RecordTooLargeError(CorruptLineError):
    """A native capture record whose length prefix exceeds the bound."""


class TruncatedGzipError(CaptureError):
    """A gzip file cut short (or corrupt); ``line`` is the last whole line read."""
