"""The gateway's time, injected once (hub, server, replay): tests pass a fake."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Clock:
    wall_ns: Callable[[], int] = time.time_ns
    """Wall clock: timestamps on messages (``gateway_ts``, pong), token expiry."""
    mono_ns: Callable[[], int] = time.monotonic_ns
    """Monotonic clock: ages, rates and timeouts."""

    def wall(self) -> float:
        """Wall clock in seconds (Unix time)."""
        return self.wall_ns() / 1e9

    def mono(self) -> float:
        """Monotonic clock in seconds."""
        return self.mono_ns() / 1e9


SYSTEM_CLOCK = Clock()
