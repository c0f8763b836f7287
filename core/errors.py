"""Error hierarchy of the pure core.

    CoreError
     +-- InvalidLevelError     a price level is NaN, infinite, negative or zero-priced
     +-- CrossedBookError      a snapshot whose best bid >= best ask
     +-- InvalidUpdateError    an update that cannot apply (bad symbol, bad exchange, ...)
          +-- ChecksumMismatchError  a snapshot whose checksum does not match its own levels

Gaps in sequence numbers are *not* errors: they are normal results
(:class:`core.book.ApplyResult`) because feeds have them.
"""

from __future__ import annotations


class CoreError(Exception):
    """Root of every error raised by the core."""


class InvalidLevelError(CoreError):
    """A price level that no real book can hold."""


class CrossedBookError(CoreError):
    """A full book whose best bid is at or above its best ask."""


class InvalidUpdateError(CoreError):
    """An update whose fields make it impossible to apply."""


class ChecksumMismatchError(InvalidUpdateError):
    """A full book whose checksum (docs/protocol.md §5) disagrees with its own levels."""
