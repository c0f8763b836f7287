"""What every venue handler shares: the actions it asks of the runner, snapshot
request bookkeeping, and a base class holding the per-stream normalizers. No I/O.

A handler is pure: the runner gives it decoded frames with their receive time
and asks it what to send. Three kinds of output:

- records (:class:`~core.types.BookUpdate` / :class:`~core.types.Trade`) to publish,
  numbered by the capture package's :class:`StreamNormalizer`;
- :class:`Send`: a JSON message for the socket (subscribe, resubscribe);
- :class:`FetchSnapshot`: a REST depth snapshot to fetch (Binance).

"Need a resnapshot" is not a flag the runner must interpret: a stream whose
normalizer is out of sync is wanted in :class:`SnapshotRequests`, and
:meth:`HandlerBase.actions` turns due requests into Send / FetchSnapshot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.types import BookUpdate, Exchange, Trade
from producers.captures.common import ReplayContext
from producers.captures.normalizer import StreamNormalizer
from producers.captures.summary import ReplaySummary
from producers.connectors.errors import ConnectorError, MalformedMessageError, SnapshotFetchError
from producers.connectors.symbols import SubscribedSymbols, Subscription

log = logging.getLogger(__name__)

Record = BookUpdate | Trade
Emitted = list[Record]


@dataclass(frozen=True, slots=True)
class Send:
    """Send this JSON object on the WebSocket."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FetchSnapshot:
    """GET the venue's REST depth snapshot of ``native`` and hand it to ``on_snapshot``."""

    native: str


Action = Send | FetchSnapshot


class SnapshotRequests:
    """At most one snapshot request in flight per stream; overdue ones are sent again.

    ``want`` schedules (an earlier time wins), ``take_due`` hands out what is due
    and marks it sent, ``done`` clears it when the snapshot arrived, ``failed``
    reschedules it. A request sent more than ``timeout_ns`` ago is due again.
    """

    def __init__(self, timeout_ns: int) -> None:
        self.timeout_ns = timeout_ns
        self._due: dict[str, int] = {}
        self._sent: dict[str, int] = {}

    def want(self, key: str, at_ns: int) -> None:
        if key in self._sent:
            return
        current = self._due.get(key)
        if current is None or at_ns < current:
            self._due[key] = at_ns

    def mark_sent(self, key: str, now_ns: int) -> None:
        self._due.pop(key, None)
        self._sent[key] = now_ns

    def take_due(self, now_ns: int) -> list[str]:
        due = [k for k, t in self._due.items() if t <= now_ns]
        due += [k for k, t in self._sent.items() if now_ns - t >= self.timeout_ns]
        for key in due:
            self.mark_sent(key, now_ns)
        return sorted(set(due))

    def done(self, key: str) -> None:
        self._due.pop(key, None)
        self._sent.pop(key, None)

    def failed(self, key: str, retry_at_ns: int) -> None:
        self._sent.pop(key, None)
        self._due[key] = retry_at_ns

    def pending(self, key: str) -> bool:
        return key in self._due or key in self._sent

    def reset(self) -> None:
        self._due.clear()
        self._sent.clear()


class HandlerBase:
    """Normalizers of the subscribed streams (sequences start at ``sequence_base``),
    the capture package's replay context (symbol mapping, per-stream counters,
    unknown symbols) and the snapshot requests."""

    exchange: Exchange = Exchange.UNKNOWN
    depth: int = 0
    """Venue book depth kept locally (0: the whole book the venue sends)."""

    def __init__(
        self,
        subscription: Subscription,
        *,
        sequence_base: int = 0,
        snapshot_timeout_ns: int = 15_000_000_000,
        summary: ReplaySummary | None = None,
    ) -> None:
        if subscription.exchange is not self.exchange:
            raise ConnectorError(f"{type(self).__name__} got a {subscription.exchange.name} list")
        self.sub = subscription
        self.ctx = ReplayContext(summary, SubscribedSymbols(subscription))
        self.ctx.path = f"{self.exchange.name.lower()}:live"
        self.requests = SnapshotRequests(snapshot_timeout_ns)
        self.connections = 0
        """WebSocket sessions started (``subscriptions`` calls)."""
        self.snapshot_requests = 0
        """Resnapshot requests handed out (REST fetches or resubscriptions)."""
        self.dead: set[str] = set()
        """Canonical symbols the venue said it does not list: never requested again."""
        for symbol in subscription.canonical:
            norm = self.ctx.normalizer(self.exchange, symbol, self.depth)
            norm.sequence = norm.trade_sequence = sequence_base

    @property
    def summary(self) -> ReplaySummary:
        return self.ctx.summary

    def norm(self, symbol: str) -> StreamNormalizer:
        return self.ctx.normalizer(self.exchange, symbol)

    def url(self, base: str) -> str:
        """The WebSocket URL to open, from the venue's base URL."""
        raise NotImplementedError

    def subscriptions(self, now_ns: int) -> list[dict[str, Any]]:
        """Messages to send right after (re)connecting; starts a new session."""
        raise NotImplementedError

    def on_message(self, msg: Any, recv_ns: int) -> Emitted:
        """One decoded frame -> records; raises CaptureError for an unusable one."""
        raise NotImplementedError

    def decode(self, raw: str | bytes) -> Any:
        """One frame -> JSON value; :class:`MalformedMessageError` when it is not JSON."""
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise MalformedMessageError(f"{self.exchange.name}: frame is not JSON: {e}") from e

    def unsynced(self) -> list[str]:
        """Subscribed streams without a usable book (waiting for a snapshot)."""
        return [s for s in self.sub.canonical if s not in self.dead and not self.norm(s).synced]

    def on_disconnect(self) -> None:
        """The connection is gone; by default every book is stale until its next snapshot."""
        for symbol in self.sub.canonical:
            self.norm(symbol).gap("disconnected")
        self.requests.reset()

    def actions(self, now_ns: int) -> list[Action]:
        """What the snapshot requests that came due need sent or fetched."""
        due = [s for s in self.requests.take_due(now_ns) if s not in self.dead]
        self.snapshot_requests += len(due)
        return self.snapshot_actions(due) if due else []

    def snapshot_actions(self, symbols: list[str]) -> list[Action]:
        """How this venue gets fresh snapshots of ``symbols`` (canonical)."""
        raise NotImplementedError

    def snapshot_path(self, native: str) -> str:
        """Path and query of the REST snapshot of ``native`` (venues with FetchSnapshot)."""
        raise ConnectorError(f"{self.exchange.name} has no REST snapshots")

    def on_snapshot(self, native: str, body: Any, recv_ns: int) -> Emitted:
        raise ConnectorError(f"{self.exchange.name} has no REST snapshots")

    def on_snapshot_failed(self, native: str, error: SnapshotFetchError, now_ns: int) -> None:
        raise ConnectorError(f"{self.exchange.name} has no REST snapshots")

    def mark_dead(self, native: str, reason: str) -> None:
        """The venue refused ``native``: report it as unknown and stop asking for it."""
        self.summary.unknown_symbol(self.exchange.name, native, self.ctx.path, None)
        canonical = self.sub.to_canonical.get(native)
        if canonical is not None:
            self.dead.add(canonical)
            self.requests.done(canonical)
        self.summary.skipped[f"{self.exchange.name.lower()}:refused_symbol"] += 1
        log.warning("%s refused symbol %s: %s", self.exchange.name, native, reason)


def keep(records: Sequence[Record | None]) -> Emitted:
    """Drop the Nones the normalizer returns for dropped diffs and duplicate trades."""
    return [r for r in records if r is not None]
