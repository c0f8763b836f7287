"""Rate limiters for the WebSocket side: token buckets and per-IP attempt windows."""

from __future__ import annotations

from collections import OrderedDict


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved; time is passed in."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp: float | None = None

    def allow(self, now: float, cost: float = 1.0) -> bool:
        """Take ``cost`` tokens if there are that many (else take none)."""
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class AttemptLimiter:
    """At most ``limit`` attempts per key per ``window`` seconds (fixed windows).

    Memory is bounded: the least recently seen keys are forgotten past ``max_keys``.
    """

    def __init__(self, limit: int, window: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window = window
        self.max_keys = max_keys
        self._seen: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def allow(self, key: str, now: float) -> bool:
        if self.limit <= 0:
            return True
        start, count = self._seen.pop(key, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        count += 1
        self._seen[key] = (start, count)
        if len(self._seen) > self.max_keys:
            self._seen.popitem(last=False)
        return count <= self.limit
