"""What a connector run did: connections, frames, records, resyncs, errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from producers.captures.summary import ReplaySummary

MAX_KEPT_ERRORS = 100


@dataclass
class ConnectorStats:
    """Counters of one ``run_connector`` call; per-stream detail is in ``summary``."""

    venue: str
    symbols: tuple[str, ...] = ()
    sequence_base: int = 0
    """First sequence number of every stream of this run (wall clock in microseconds)."""
    connects: int = 0
    """WebSocket handshakes that succeeded."""
    connect_failures: int = 0
    disconnects: int = 0
    """Connections lost (closed by the venue, idle, errors), stops excluded."""
    messages: int = 0
    """Frames received."""
    malformed: int = 0
    """Frames that were not JSON: counted, skipped."""
    handler_errors: int = 0
    """JSON frames the venue handler could not use (bad shape, bad number ...): skipped."""
    book_records: int = 0
    snapshot_records: int = 0
    """Book records with ``is_snapshot`` (the first of each stream and every resync)."""
    trade_records: int = 0
    snapshot_requests: int = 0
    """Resnapshot requests: REST fetches (Binance) or resubscriptions (Coinbase, Kraken)."""
    snapshot_failures: int = 0
    """REST snapshots that failed (HTTP error, timeout, unreadable)."""
    gave_up: bool = False
    last_error: str = ""
    errors: list[str] = field(default_factory=list)
    summary: ReplaySummary = field(default_factory=ReplaySummary)
    """Per-stream counters (gaps, resyncs, checksums, trades), unknown symbols, skipped kinds."""

    def note_error(self, text: str) -> None:
        self.last_error = text
        if len(self.errors) < MAX_KEPT_ERRORS:
            self.errors.append(text)

    @property
    def unknown_symbols(self) -> int:
        """Messages (or subscriptions) about symbols that are not subscribed or not listed."""
        return sum(u.count for u in self.summary.unknown_symbols.values())

    @property
    def resyncs(self) -> int:
        return self.summary.total("resyncs")

    @property
    def gaps(self) -> int:
        return self.summary.total("gaps")

    @property
    def checksum_failures(self) -> int:
        return self.summary.total("checksum_failures")

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "summary"}
        out["symbols"] = list(self.symbols)
        out["streams"] = self.summary.to_dict()["streams"]
        out["unknown_symbols"] = self.summary.to_dict()["unknown_symbols"]
        out["skipped"] = dict(self.summary.skipped)
        return out

    def format(self) -> str:
        """Human-readable report: totals, then one line per stream."""
        head = (
            f"{self.venue}: {self.connects} connections ({self.disconnects} lost, "
            f"{self.connect_failures} failed), {self.messages} frames ({self.malformed} malformed, "
            f"{self.handler_errors} unusable), {self.book_records} book records "
            f"({self.snapshot_records} snapshots), {self.trade_records} trades, "
            f"{self.snapshot_requests} resnapshot requests, {self.unknown_symbols} unknown-symbol "
            f"messages{', GAVE UP' if self.gave_up else ''}"
        )
        lines = [head, *self.summary.format().splitlines()[1:]]
        if self.last_error:
            lines.append(f"  last error: {self.last_error}")
        return "\n".join(lines)
