"""Exponential reconnect delays with jitter, bounded. Pure: the randomness is injected."""

from __future__ import annotations

import random
from collections.abc import Callable


class Backoff:
    """``initial * factor**n`` capped at ``maximum``, each drawn from [(1 - jitter) * d, d].

    Jitter spreads the reconnections of many clients after a venue-wide drop, so
    they do not all hit the venue (and its connection-rate limit) at once.
    """

    def __init__(
        self,
        initial: float,
        maximum: float,
        factor: float = 2.0,
        jitter: float = 0.5,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self.attempt = 0

    def next(self) -> float:
        """The delay before the next attempt; grows until ``reset``."""
        ceiling = min(self.maximum, self.initial * self.factor**self.attempt)
        if ceiling < self.maximum:
            self.attempt += 1  # stop counting at the cap: no float overflow after days of retries
        return ceiling * (1.0 - self.jitter * self._rand())

    def reset(self) -> None:
        self.attempt = 0
