"""What a snapshot costs: encoded once per view version, charged per snapshot sent.

``subscribe`` and ``resync`` are cheap to ask and dear to answer: one request
may name hundreds of books, each a full-depth snapshot to encode and send. So:

- :class:`SnapshotFrames` keeps the encoded frame of each view's current snapshot
  (per format), valid while the view hands out the same snapshot object (a
  ``DepthView`` caches it until its next change), so a thousand clients
  subscribing at once cost one encoding per view, as deltas do.
- :class:`SnapshotGate` charges a connection one token per snapshot a request
  would send (not one per request), from a bucket of ``rate`` per second and
  ``burst``; and refuses a connection whose unsent bytes are past the high-water
  mark: it cannot ask for more while it does not read what it has.

Both are pure (time is passed in); the server and the hub call them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable
from typing import Any

from gateway.protocol import ProtocolError
from gateway.ratelimit import TokenBucket

Encode = Callable[[Any, bool, bool], bytes]
"""(snapshot, binary, aggregated) -> frame."""


class SnapshotFrames:
    """Encoded snapshot frames per view key; re-encoded only when the snapshot changes."""

    def __init__(self, encode: Encode, clock: Callable[[], int]) -> None:
        self.encode = encode
        self.clock = clock
        self._frames: dict[Hashable, list[Any]] = {}
        """key -> [snapshot object, protobuf frame | None, JSON frame | None]."""
        self.encodings = 0

    def frame(self, key: Hashable, snapshot: Any, binary: bool, aggregated: bool) -> bytes:
        entry = self._frames.get(key)
        if entry is None or entry[0] is not snapshot:
            snapshot.gateway_ns = self.clock()  # stamped once, like a delta
            entry = self._frames[key] = [snapshot, None, None]
        slot = 1 if binary else 2
        frame = entry[slot]
        if frame is None:
            frame = entry[slot] = self.encode(snapshot, binary, aggregated)
            self.encodings += 1
        return frame

    def drop(self, key: Hashable) -> None:
        """Forget a view that has no subscriber left."""
        self._frames.pop(key, None)

    def __len__(self) -> int:
        return len(self._frames)


class SnapshotGate:
    """Per-connection snapshot budget; buckets of closed connections are pruned."""

    def __init__(
        self,
        rate: float,
        burst: int,
        high_water: int,
        alive: Callable[[], Collection[int]] = frozenset,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.high_water = high_water
        self.alive = alive
        """Ids of open connections: buckets of others are freed when the table grows."""
        self._buckets: dict[int, TokenBucket] = {}
        self._kept = 0
        """Buckets left after the last pruning."""

    def charge(
        self, connection: int, snapshots: int, buffered: int, now: float, req_id: object
    ) -> None:
        """Take ``snapshots`` tokens or raise ``rate_limited`` (nothing taken then)."""
        if snapshots <= 0:
            return
        if buffered > self.high_water:
            raise ProtocolError(
                "rate_limited", "unsent data past the high-water mark: read it first", req_id
            )
        bucket = self._buckets.get(connection)
        if bucket is None:
            # amortised: the open connections are listed only when the table has doubled
            # since the last pruning (listing them per new connection was O(n^2) at 10k)
            if len(self._buckets) >= 2 * self._kept + 64:
                alive = self.alive()
                self._buckets = {k: b for k, b in self._buckets.items() if k in alive}
                self._kept = len(self._buckets)
            bucket = self._buckets[connection] = TokenBucket(self.rate, self.burst)
        if snapshots > self.burst or not bucket.allow(now, snapshots):
            raise ProtocolError(
                "rate_limited",
                f"snapshots are limited to {self.rate:g}/s (burst {self.burst}) per connection",
                req_id,
            )

    def forget(self, connection: int) -> None:
        self._buckets.pop(connection, None)
