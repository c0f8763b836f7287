"""The feed-rate lines the benchmark's feeding processes read on stdin.

``bench.latency`` drives the floor (``bench.latency_floor``) and the gateway without a
broker (``bench.memory_gateway``) by writing one rate per line (updates/s; 0 or less
stops the feed). A line that is not a finite number is reported on stderr and skipped:
a typo on a hand-driven run must not kill the process mid-measurement.
"""

from __future__ import annotations

import math
import sys


def parse_rate(line: bytes) -> float | None:
    """A feed rate line (updates/s), None if it is not a finite number."""
    try:
        rate = float(line)
    except ValueError:
        return None
    return rate if math.isfinite(rate) else None


def read_rate(line: bytes, who: str) -> float | None:
    """``parse_rate``, saying on stderr what was skipped (blank lines silently)."""
    if not line.strip():
        return None
    rate = parse_rate(line)
    if rate is None:
        print(f"{who}: not a rate, ignored: {line!r}", file=sys.stderr, flush=True)
    return rate
