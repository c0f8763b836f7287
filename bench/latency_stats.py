"""Pure pieces of ``bench.latency``: latency histograms, percentiles, /metrics parsing, windows.

Clients record every message's age (receive - ``ingest_ts``, µs) in a log-linear
histogram per wall-clock second (``bucket``: exact below 64 µs, then 32 buckets
per power of two, so any value is known to ~3 %). A workload's window is the
sum of the whole seconds inside it, over every client process; percentiles are
interpolated inside the bucket. No I/O here, so all of it is unit tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

SUB = 32
"""Buckets per power of two above 64 µs (relative resolution 1/32)."""


def bucket(us: int) -> int:
    """Histogram bucket of a non-negative latency in µs (negative values count as 0)."""
    if us < 64:
        return us if us > 0 else 0
    shift = us.bit_length() - 6
    return (shift << 5) + (us >> shift)


def bucket_bounds(idx: int) -> tuple[int, int]:
    """``[lo, hi)`` in µs of bucket ``idx`` (the inverse of :func:`bucket`)."""
    if idx < 64:
        return idx, idx + 1
    shift = idx // SUB - 1
    mant = idx - shift * SUB
    return mant << shift, (mant + 1) << shift


def observe(counts: list[int], us: int) -> None:
    """Count one latency of ``us`` µs in a bucket-count list (it grows as needed)."""
    idx = bucket(us)
    if idx >= len(counts):
        counts.extend([0] * (idx + 1 - len(counts)))
    counts[idx] += 1


def hist_ms(counts: Sequence[int]) -> dict[str, float]:
    """p50 / p99 / p99.9 in ms of a bucket-count list (keys ``p50``, ``p99``, ``p999``)."""
    return {
        label: hist_percentile(counts, q) / 1e3
        for q, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999"))
    }


def add_counts(into: list[int], counts: Sequence[int]) -> list[int]:
    """Element-wise sum of two bucket-count lists (``into`` grows as needed)."""
    if len(counts) > len(into):
        into.extend([0] * (len(counts) - len(into)))
    for i, n in enumerate(counts):
        if n:
            into[i] += n
    return into


def hist_percentile(counts: Sequence[int], q: float) -> float:
    """The ``q`` quantile (0..1) in µs of a bucket-count list, linear inside the bucket."""
    total = sum(counts)
    if total <= 0:
        return math.nan
    rank = q * total
    seen = 0
    for idx, n in enumerate(counts):
        if not n:
            continue
        if seen + n >= rank:
            lo, hi = bucket_bounds(idx)
            return lo + (hi - lo) * max(0.0, rank - seen) / n
        seen += n
    lo, hi = bucket_bounds(len(counts) - 1)
    return float(hi)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of raw values, linear between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


# ---- Prometheus exposition text ---------------------------------------------------------


def _labels(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split('",'):
        if "=" in part:
            k, v = part.split("=", 1)
            out[k.strip()] = v.strip().strip('"')
    return out


def prom_histogram(text: str, name: str, **match: str) -> dict[float, float]:
    """Cumulative buckets ``{le: count}`` of histogram ``name``, summed over the series whose
    labels include ``match`` (``hop="kafka"``); empty when the metric is absent."""
    out: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, _, value = line[len(prefix) :].rpartition("}")
        labels = _labels(labels_text)
        if any(labels.get(k) != v for k, v in match.items()) or "le" not in labels:
            continue
        try:
            le, n = float(labels["le"]), float(value.split()[0])
        except (ValueError, IndexError):
            continue
        out[le] = out.get(le, 0.0) + n
    return dict(sorted(out.items()))


def prom_sum(text: str, name: str, **match: str) -> float | None:
    """Sum of every sample of counter/gauge ``name`` matching ``match``; None when absent."""
    total: float | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        labels = _labels(rest.rstrip("}")) if rest else {}
        if any(labels.get(k) != v for k, v in match.items()):
            continue
        try:
            total = (total or 0.0) + float(value)
        except ValueError:
            continue
    return total


def hist_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    """What a cumulative histogram gained between two scrapes."""
    return {le: n - before.get(le, 0.0) for le, n in after.items()}


def prom_quantile(buckets: dict[float, float], q: float) -> float:
    """Quantile of cumulative Prometheus buckets, linear inside the bucket (histogram_quantile);
    a rank in the ``+Inf`` bucket answers the largest finite bound (read it as "over")."""
    if not buckets:
        return math.nan
    total = max(buckets.values())
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in sorted(buckets.items()):
        if n >= rank:
            if math.isinf(le):
                return prev_le
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return prev_le


def hop_summary(before: str, after: str, name: str, **match: str) -> dict[str, Any]:
    """p50/p99/p99.9 (ms) and count of one histogram between two scrapes; "n/a" if absent."""
    h0, h1 = prom_histogram(before, name, **match), prom_histogram(after, name, **match)
    if not h1:
        return {"count": "n/a", "p50_ms": "n/a", "p99_ms": "n/a", "p999_ms": "n/a"}
    d = hist_delta(h1, h0)
    out: dict[str, Any] = {"count": max(d.values(), default=0.0)}
    for q, label in ((0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms")):
        v = prom_quantile(d, q)
        out[label] = "n/a" if math.isnan(v) else round(v * 1e3, 4)
    return out


# ---- client results -> one window -------------------------------------------------------


TOLD_LOOKBACK_S = 5.0
"""A client told ``behind`` this long before a window (the gateway's ``slow_timeout``)
is still in the episode it was told about: resynced, caught up or closed within it."""

SLACK_S = 0.1
"""A window read a few ms after a whole second still covers that second."""


def window_seconds(t0: float, t1: float) -> range:
    """The whole epoch seconds inside ``[t0, t1)`` (give or take ``SLACK_S``)."""
    return range(math.ceil(t0 - SLACK_S), math.floor(t1 + SLACK_S))


def window(
    results: Iterable[dict[str, Any]],
    t0: float,
    t1: float,
    *,
    stale_s: float = 1.0,
    quiet_s: float = 2.0,
) -> dict[str, Any]:
    """Everything the client processes saw in the whole seconds of ``[t0, t1)``.

    Per client: messages received (the spread), its largest age, whether it was
    told (``status`` ``behind`` or ``resync`` in the window or ``TOLD_LOOKBACK_S``
    before it, or a close) and whether it is current: every message younger than
    ``stale_s`` and something received in the last ``quiet_s`` seconds of the
    window. A client neither current nor told sat behind silently.
    """
    secs = window_seconds(t0, t1)
    hist: list[int] = []
    per_client: list[int] = []
    served: list[tuple[int, int, int]] = []  # (group, connected_ns, messages) per client
    current = told = silent = closed = resynced = told_behind = 0
    closes: dict[str, int] = {}
    resync_msgs = 0
    book_messages = 0
    connected = 0
    t0n, t1n = int(t0 * 1e9), int(t1 * 1e9)
    for r in results:
        if "error" in r:
            continue
        base = int(r["t0_s"])
        for key, counts in r["hist"].items():
            if base + int(key) in secs:
                add_counts(hist, counts)
        pc = r["per_client"]
        for i, counts in enumerate(pc["counts"]):
            if not pc["connected_ns"][i]:
                continue
            connected += 1
            n = sum(counts[s - base] for s in secs if 0 <= s - base < len(counts))
            ages = pc["max_age_ms"][i]
            worst = max((ages[s - base] for s in secs if 0 <= s - base < len(ages)), default=0)
            tail = [s for s in secs if s >= secs.stop - quiet_s] if len(secs) else []
            recent = sum(counts[s - base] for s in tail if 0 <= s - base < len(counts))
            per_client.append(n)
            served.append((pc.get("group", [0] * len(pc["counts"]))[i], pc["connected_ns"][i], n))
            book_messages += n
            rs = [t for t in pc["resync_ns"][i] if t0n <= t < t1n]
            resync_msgs += len(rs)
            since = t0n - int(TOLD_LOOKBACK_S * 1e9)
            behind_ns = pc.get("behind_ns", [[]] * len(pc["counts"]))[i]
            bs = [t for t in [*behind_ns, *pc["resync_ns"][i]] if since <= t < t1n]
            if any(t0n <= t < t1n for t in behind_ns):
                told_behind += 1
            close = pc["close"][i]
            was_closed = bool(close) and close[1] < t1n
            if was_closed:
                closes[str(close[0])] = closes.get(str(close[0]), 0) + 1
                closed += 1
            if rs:
                resynced += 1
            if worst <= stale_s * 1e3 and recent > 0 and not was_closed:
                current += 1
            elif bs or was_closed:
                told += 1
            else:
                silent += 1
    span = max(1, len(secs))
    return {
        "seconds": len(secs),
        "clients": connected,
        "book_messages": book_messages,
        "delivered_per_s": book_messages / span,
        "age_ms": hist_ms(hist),
        "age_max_ms": (bucket_bounds(max_bucket(hist))[1] / 1e3) if hist else math.nan,
        "per_client": _spread(per_client) or {"min": 0, "median": 0, "max": 0},
        **fair_share(served),
        "resync_messages": resync_msgs,
        "clients_resynced": resynced,
        "clients_told_behind": told_behind,
        "closes": closes,
        "clients_closed": closed,
        "current": current,
        "told": told,
        "silent_behind": silent,
    }


def _spread(xs: Sequence[float]) -> dict[str, float]:
    """min / median (the upper one of an even count) / max; {} of nothing."""
    o = sorted(xs)
    return {"min": o[0], "median": o[len(o) // 2], "max": o[-1]} if o else {}


def fair_share(served: Sequence[tuple[int, int, int]], parts: int = 5) -> dict[str, Any]:
    """How evenly clients offered the same messages were served: ``served`` holds
    (group, connect time, messages) per client, a group being one set of streams.

    Streams differ in rate, so messages per client across groups mix the feed's shape
    into the spread; within a group every client was offered the same. ``share`` is a
    client's messages over its group's median (1.0 everywhere is a fair share);
    ``share_by_connect_order`` the median share of each fifth of the clients in the
    order they connected (first-come service would fall from the first to the last)."""
    by_group: dict[int, list[int]] = {}
    for g, _, n in served:
        by_group.setdefault(g, []).append(n)
    spreads = {g: _spread(ns) for g, ns in sorted(by_group.items())}
    shares = [(t, n / m if (m := spreads[g]["median"]) else 0.0) for g, t, n in served]
    shares.sort()
    k = max(1, len(shares) // parts)
    bounds = [(i * k, (i + 1) * k if i < parts - 1 else len(shares)) for i in range(parts)]
    order = [[x for _, x in shares[a:b]] for a, b in bounds]
    return {
        "per_group": {str(g): {"clients": len(by_group[g]), **sp} for g, sp in spreads.items()},
        "share": {q: round(v, 3) for q, v in _spread([x for _, x in shares]).items()},
        "share_by_connect_order": [round(_spread(xs)["median"], 3) if xs else None for xs in order],
    }


def max_bucket(counts: Sequence[int]) -> int:
    for i in range(len(counts) - 1, -1, -1):
        if counts[i]:
            return i
    return 0


def pings(results: Iterable[dict[str, Any]], t0: float, t1: float) -> dict[str, Any]:
    """Ping -> pong round trips (ms) of pings sent in ``[t0, t1)``, and the unanswered ones;
    ``slow``: the 20 slowest as (seconds after ``t0`` it was sent, ms), to tell one
    stall that every pinger saw at once from many separate delays."""
    rtts: list[float] = []
    timed: list[tuple[float, float]] = []
    sent = 0
    for r in results:
        p = r.get("pings") or {}
        for s, rtt in zip(p.get("sent_ns", []), p.get("rtt_us", []), strict=False):
            if t0 * 1e9 <= s < t1 * 1e9:
                sent += 1
                if rtt >= 0:
                    rtts.append(rtt / 1e3)
                    timed.append((round(s / 1e9 - t0, 3), rtt / 1e3))
    return {
        "sent": sent,
        "answered": len(rtts),
        "p50_ms": percentile(rtts, 0.5),
        "p99_ms": percentile(rtts, 0.99),
        "max_ms": max(rtts, default=math.nan),
        "slow": sorted(sorted(timed, key=lambda x: -x[1])[:20]),
    }


def connects(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """How long a client set took to connect: first attempt -> last connection (s)."""
    firsts, lasts, ok, failed = [], [], 0, 0
    for r in results:
        if "error" in r:  # a process that never reported: none of its clients connected
            failed += int(r.get("clients", 0))
            continue
        firsts.append(r["first_attempt_ns"])
        done = [t for t in r["per_client"]["connected_ns"] if t]
        ok += len(done)
        failed += r["clients"] - len(done)
        if done:
            lasts.append(max(done))
    span = (max(lasts) - min(firsts)) / 1e9 if firsts and lasts else math.nan
    return {"connected": ok, "failed": failed, "all_connected_s": span}
