"""Errors of the live exchange connectors.

    ConnectorError             root; ``retriable``: may trying again help?
     +-- ConnectorConfigError  bad venue, symbol, URL or option; raised before any I/O
     +-- MalformedMessageError a frame that is not JSON; counted and skipped
     +-- SnapshotFetchError    a REST depth snapshot failed (HTTP, timeout, bad body); retried
     +-- ConnectionLostError   the WebSocket could not open, went idle or dropped; reconnected
     +-- ConnectorGaveUpError  too many failed connection attempts in a row; carries the stats

Errors of the venue data itself (a level that is not a number, a trade without a
side) are the capture package's :class:`~producers.captures.errors.CaptureError`:
the handlers reuse its parsers, and the runner counts those too.
"""

from __future__ import annotations

from typing import Any


class ConnectorError(Exception):
    """Root of every error raised by :mod:`producers.connectors`."""

    retriable = False


class ConnectorConfigError(ConnectorError, ValueError):
    """The caller asked for something that cannot work (unknown venue, bad symbol ...)."""


class MalformedMessageError(ConnectorError):
    """A WebSocket frame that does not decode as JSON."""

    retriable = True


class SnapshotFetchError(ConnectorError):
    """A REST order-book snapshot could not be fetched or read."""

    retriable = True

    def __init__(self, message: str, *, status: int = 0, unknown_symbol: bool = False) -> None:
        super().__init__(message)
        self.status = status
        """HTTP status, 0 when no answer came."""
        self.unknown_symbol = unknown_symbol
        """The venue said the symbol does not exist: asking again will not help."""
        if unknown_symbol:
            self.retriable = False


class ConnectionLostError(ConnectorError):
    """The WebSocket could not be opened, stayed silent too long, or was closed."""

    retriable = True


class ConnectorGaveUpError(ConnectorError):
    """The venue stayed unreachable for ``max_attempts`` attempts in a row."""

    def __init__(self, message: str, stats: Any) -> None:
        super().__init__(message)
        self.stats = stats
        """The :class:`~producers.connectors.stats.ConnectorStats` of the run so far."""
