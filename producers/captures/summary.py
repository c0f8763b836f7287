"""What a replay emits (:class:`CaptureEvent`) and what it found (:class:`ReplaySummary`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from core.types import BookUpdate, Trade
from producers.captures.errors import CaptureError, UnknownSymbolError

MAX_KEPT_ERRORS = 1000
"""Errors kept with their text; past that only counted (``error_count``)."""
MAX_KEPT_GAP_REASONS = 50


@dataclass(frozen=True, slots=True)
class CaptureEvent:
    """One normalized record and when it was received, for paced replay."""

    recv_ns: int
    """Receive time recorded in the capture (unix ns); non-decreasing per input file."""
    message: BookUpdate | Trade
    """The normalized book record or trade, with its per-stream sequence set."""


@dataclass(slots=True)
class StreamStats:
    """Counters of one stream (``EXCHANGE:SYMBOL``)."""

    book_records: int = 0
    """Book records emitted (snapshots + deltas)."""
    last_sequence: int = 0
    """Sequence of the last book record."""
    snapshots: int = 0
    """Records emitted with ``is_snapshot=True`` (the first one and every resync)."""
    resyncs: int = 0
    """Snapshots after the first: the stream re-synchronized after a gap."""
    gaps: int = 0
    """Exchange-side continuity breaks (update-id gap, checksum failure, lost line, reconnect)."""
    applied_diffs: int = 0
    dropped_diffs: int = 0
    """Venue diffs not applied: before the first snapshot, older than it, or while out of sync."""
    checksums_ok: int = 0
    checksum_failures: int = 0
    crossed: int = 0
    """Records after which the local book was crossed (best bid >= best ask)."""
    trades: int = 0
    duplicate_trades: int = 0
    synced: bool = False
    """Whether the stream was in sync at the end of the replay."""
    gap_reasons: list[str] = field(default_factory=list)

    def note_gap(self, reason: str) -> None:
        self.gaps += 1
        if len(self.gap_reasons) < MAX_KEPT_GAP_REASONS:
            self.gap_reasons.append(reason)


@dataclass(slots=True)
class UnknownSymbol:
    """A native name that could not be mapped: reported, its records skipped."""

    exchange: str
    native: str
    first_seen: str
    """``path:line`` of its first occurrence."""
    count: int = 0


@dataclass(slots=True)
class ReplaySummary:
    """Per-stream counters, skipped message kinds, unknown symbols and errors of a replay.

    Filled while the event iterator is consumed; complete once it is exhausted.
    """

    files: list[str] = field(default_factory=list)
    auxiliary_files: list[str] = field(default_factory=list)
    """Files read only to help another (Binance REST snapshots, exchangeInfo)."""
    lines: int = 0
    """Lines (or native records) read."""
    events: int = 0
    streams: dict[str, StreamStats] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    """Messages read but not turned into events, by kind (``binance:bookTicker`` ...)."""
    unknown_symbols: dict[tuple[str, str], UnknownSymbol] = field(default_factory=dict)
    errors: list[CaptureError] = field(default_factory=list)
    error_count: int = 0
    error_kinds: Counter[str] = field(default_factory=Counter)

    def stream(self, key: str) -> StreamStats:
        stats = self.streams.get(key)
        if stats is None:
            stats = self.streams[key] = StreamStats()
        return stats

    def record_error(self, error: CaptureError) -> None:
        self.error_count += 1
        self.error_kinds[type(error).__name__] += 1
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(error)

    def unknown_symbol(
        self, exchange: str, native: str, path: str | None, line: int | None
    ) -> None:
        """Count one record of an unknown symbol; the first sight is also an error."""
        key = (exchange, native)
        entry = self.unknown_symbols.get(key)
        if entry is None:
            error = UnknownSymbolError(f"unknown {exchange} symbol {native!r}; its records skipped")
            error.at(path, line)
            self.record_error(error)
            entry = self.unknown_symbols[key] = UnknownSymbol(exchange, native, error.where)
        entry.count += 1
        self.skipped[f"{exchange.lower()}:unknown_symbol"] += 1

    def total(self, name: str) -> int:
        """Sum of one :class:`StreamStats` counter over all streams."""
        return sum(int(getattr(s, name)) for s in self.streams.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {
            "files": self.files,
            "auxiliary_files": self.auxiliary_files,
            "lines": self.lines,
            "events": self.events,
            "streams": {k: asdict(v) for k, v in sorted(self.streams.items())},
            "skipped": dict(self.skipped),
            "unknown_symbols": [asdict(u) for u in self.unknown_symbols.values()],
            "error_count": self.error_count,
            "error_kinds": dict(self.error_kinds),
            "errors": [str(e) for e in self.errors],
        }

    def format(self) -> str:
        """Human-readable report, one line per stream."""
        out = [
            f"{len(self.files)} file(s), {self.lines} lines, {self.events} events, "
            f"{len(self.streams)} streams, {self.error_count} errors"
        ]
        for key, s in sorted(self.streams.items()):
            out.append(
                f"  {key}: book={s.book_records} snap={s.snapshots} resync={s.resyncs} "
                f"gaps={s.gaps} applied={s.applied_diffs} dropped={s.dropped_diffs} "
                f"cksum={s.checksums_ok}/{s.checksums_ok + s.checksum_failures} "
                f"crossed={s.crossed} trades={s.trades} {_status(s)}"
            )
        for u in self.unknown_symbols.values():
            out.append(f"  unknown {u.exchange} symbol {u.native!r} x{u.count} ({u.first_seen})")
        if self.skipped:
            out.append(
                "  skipped: " + ", ".join(f"{k}={v}" for k, v in sorted(self.skipped.items()))
            )
        out.extend(f"  error: {e}" for e in self.errors[:20])
        return "\n".join(out)


def _status(stats: StreamStats) -> str:
    if stats.synced:
        return "synced"
    return "STALE" if stats.book_records or stats.dropped_diffs or stats.gaps else "no-book"
