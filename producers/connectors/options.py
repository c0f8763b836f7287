"""Tuning of a live connector: timeouts, backoff, buffers. Frozen, validated once.

Every network wait has a bound here; the defaults suit the real venues, the
tests shrink them to milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from producers.connectors.errors import ConnectorConfigError

KRAKEN_DEPTHS = (10, 25, 100, 500, 1000)
"""Book depths Kraken's v2 ``book`` channel accepts."""
BINANCE_SNAPSHOT_LIMITS = (5, 10, 20, 50, 100, 500, 1000, 5000)


@dataclass(frozen=True)
class ConnectorOptions:
    """Timeouts in seconds; every field has a safe default."""

    open_timeout: float = 10.0
    """TCP + TLS + WebSocket handshake."""
    idle_timeout: float = 30.0
    """No frame at all for this long: the connection is dead, reconnect.
    Coinbase and Kraken send heartbeats every second, Binance 100 ms depth diffs."""
    tick: float = 1.0
    """How often timers (overdue snapshot requests, idleness) are checked while no frame arrives."""
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    close_timeout: float = 5.0
    max_message_bytes: int = 8 * 1024 * 1024
    """Largest frame accepted (Kraken's instrument snapshot lists every pair)."""
    max_queue: int = 64
    """Frames buffered by the WebSocket library before reading pauses (backpressure)."""
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.5
    """Each delay is drawn from [(1 - jitter) * d, d]."""
    stable_after: float = 30.0
    """A connection that lived this long resets the backoff."""
    max_attempts: int = 0
    """Give up after this many failed attempts in a row (0: never)."""
    rest_timeout: float = 10.0
    """Binance REST depth snapshot, whole request."""
    max_rest_bytes: int = 16 * 1024 * 1024
    snapshot_limit: int = 1000
    """Binance ``GET /api/v3/depth`` limit."""
    snapshot_retry: float = 1.0
    """Delay before asking again for a snapshot that failed or came too old."""
    snapshot_timeout: float = 15.0
    """A snapshot request (REST or resubscribe) unanswered this long is sent again."""
    initial_snapshot_delay: float = 1.0
    """Binance: wait up to this long for the first diff before fetching the snapshot
    (the documented order is: buffer diffs first, then fetch)."""
    max_buffered_diffs: int = 10_000
    """Binance diffs kept per symbol while waiting for a snapshot."""
    kraken_depth: int = 100
    flush_timeout: float = 30.0
    """Kafka delivery wait at the end of a run."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, int | float) and value is not None and value < 0:
                raise ConnectorConfigError(f"connector option {f.name} must be >= 0, got {value}")
        if self.kraken_depth not in KRAKEN_DEPTHS:
            raise ConnectorConfigError(f"kraken_depth must be one of {KRAKEN_DEPTHS}")
        if self.snapshot_limit not in BINANCE_SNAPSHOT_LIMITS:
            raise ConnectorConfigError(f"snapshot_limit must be one of {BINANCE_SNAPSHOT_LIMITS}")
        if not 0.0 <= self.backoff_jitter <= 1.0 or self.backoff_factor < 1.0:
            raise ConnectorConfigError("backoff_jitter must be in [0, 1] and backoff_factor >= 1")
        if self.tick <= 0 or self.idle_timeout <= 0 or self.open_timeout <= 0:
            raise ConnectorConfigError("tick, idle_timeout and open_timeout must be > 0")
