"""What ``mdgw top`` knows: scrapes parsed into samples, and rates over a window (pure).

A scrape of the gateway's ``/metrics`` (Prometheus text) becomes a :class:`Sample`
of totals (labels summed) and histogram buckets; the API's ``/api/v1/feeds`` becomes
:class:`StreamRow` values. :class:`Window` keeps the samples of the last few
seconds and turns counters into per-second rates between its oldest and newest
sample: the gateway serves ``/metrics`` from a copy up to a second old, so rates
over one refresh would jump between 0 and double. Time is passed in.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

LATENCY = "message_broadcast_latency_seconds"


class ScrapeError(Exception):
    """An answer that is not what the endpoint should serve."""


@dataclass(frozen=True)
class Sample:
    """One scrape: each sample name's value summed over its labels, and histogram buckets."""

    at: float
    totals: Mapping[str, float]
    buckets: Mapping[str, tuple[tuple[float, float], ...]] = field(default_factory=dict)
    """Histogram name -> cumulative ``(upper bound, count)`` summed over labels, sorted."""

    def get(self, name: str) -> float:
        return self.totals.get(name, 0.0)


def parse_metrics(text: str, at: float) -> Sample:
    """Prometheus text exposition -> :class:`Sample`; ScrapeError when it does not parse."""
    totals: dict[str, float] = {}
    buckets: dict[str, dict[float, float]] = {}
    try:
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.endswith("_created") or not math.isfinite(s.value):
                    continue
                if s.name.endswith("_bucket") and "le" in s.labels:
                    le = float(s.labels["le"])
                    per = buckets.setdefault(s.name.removesuffix("_bucket"), {})
                    per[le] = per.get(le, 0.0) + s.value
                else:
                    totals[s.name] = totals.get(s.name, 0.0) + s.value
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise ScrapeError(f"not Prometheus text: {e}") from e
    if not totals and not buckets:
        raise ScrapeError("no metrics in the answer")
    return Sample(at, totals, {k: tuple(sorted(v.items())) for k, v in buckets.items()})


@dataclass(frozen=True)
class StreamRow:
    """One stream of ``/api/v1/feeds`` (docs/protocol.md §6)."""

    stream: str
    status: str
    stale_reason: str
    updates: int
    age_ms: float | None
    lag: int | None
    gaps: int
    checksum_failures: int


def parse_feeds(body: Any) -> list[StreamRow]:
    """``/api/v1/feeds`` JSON -> rows (malformed items are skipped); ScrapeError if no list."""
    feeds = body.get("feeds") if isinstance(body, dict) else None
    if not isinstance(feeds, list):
        raise ScrapeError("no feeds list in the answer")
    rows = []
    for f in feeds:
        if not isinstance(f, dict) or not isinstance(f.get("stream"), str):
            continue
        rows.append(
            StreamRow(
                stream=f["stream"][:64],
                status=str(f.get("status", "?"))[:16],
                stale_reason=str(f.get("stale_reason") or "")[:40],
                updates=_int(f.get("updates")) or 0,
                age_ms=_num(f.get("age_ms")),
                lag=_int(f.get("lag")),
                gaps=_int(f.get("gaps")) or 0,
                checksum_failures=_int(f.get("checksum_failures")) or 0,
            )
        )
    return sorted(rows, key=lambda r: r.stream)


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class Window:
    """Samples of the last ``seconds``; rates between the oldest and the newest.

    A counter that went down means the process restarted: the history is dropped
    and rates start again from the new process.
    """

    def __init__(self, seconds: float = 5.0, watch: Iterable[str] = ()) -> None:
        self.seconds = seconds
        self.watch = tuple(watch)
        self.samples: deque[Sample] = deque()

    def add(self, sample: Sample) -> None:
        last = self.samples[-1] if self.samples else None
        if last is not None and any(sample.get(n) < last.get(n) for n in self.watch):
            self.samples.clear()  # restarted
        self.samples.append(sample)
        while len(self.samples) > 2 and sample.at - self.samples[1].at >= self.seconds:
            self.samples.popleft()

    @property
    def latest(self) -> Sample | None:
        return self.samples[-1] if self.samples else None

    def span(self) -> tuple[Sample, Sample] | None:
        if len(self.samples) < 2 or self.samples[-1].at <= self.samples[0].at:
            return None
        return self.samples[0], self.samples[-1]

    def rate(self, name: str) -> float | None:
        """Per second over the window; None until two samples."""
        pair = self.span()
        if pair is None:
            return None
        a, b = pair
        return max(0.0, b.get(name) - a.get(name)) / (b.at - a.at)

    def quantile(self, histogram: str, q: float) -> float | None:
        """The ``q`` quantile of the observations made within the window (bucket bound)."""
        pair = self.span()
        if pair is None:
            return None
        a = dict(pair[0].buckets.get(histogram, ()))
        b = pair[1].buckets.get(histogram, ())
        counts = [(le, n - a.get(le, 0.0)) for le, n in b]
        total = counts[-1][1] if counts else 0.0
        if total <= 0:
            return None
        for le, n in counts:
            if n >= q * total:
                return le
        return counts[-1][0]


class StreamRates:
    """Per-stream update rates from successive ``/api/v1/feeds`` answers."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self.history: deque[tuple[float, dict[str, int]]] = deque()

    def add(self, at: float, rows: list[StreamRow]) -> None:
        counts = {r.stream: r.updates for r in rows}
        if self.history and any(counts.get(s, n) < n for s, n in self.history[-1][1].items()):
            self.history.clear()  # the API restarted
        self.history.append((at, counts))
        while len(self.history) > 2 and at - self.history[1][0] >= self.seconds:
            self.history.popleft()

    def rate(self, stream: str) -> float | None:
        if len(self.history) < 2:
            return None
        (t0, a), (t1, b) = self.history[0], self.history[-1]
        if t1 <= t0 or stream not in a or stream not in b:
            return None
        return max(0, b[stream] - a[stream]) / (t1 - t0)


@dataclass
class TopState:
    """Everything one frame shows; :mod:`mdgw.top.run` fills it, :mod:`mdgw.top.view` draws it."""

    gateway_url: str
    api_url: str
    interval: float
    window: float = 5.0
    streams: list[StreamRow] = field(default_factory=list)
    gateway_error: str | None = "not scraped yet"
    api_error: str | None = "not scraped yet"
    feeds_error: str | None = "not scraped yet"
    now: float = 0.0
    """Wall-clock time of the frame (seconds since the epoch)."""

    def __post_init__(self) -> None:
        self.gateway = Window(self.window, COUNTERS)
        self.api = Window(self.window, ("api_requests_total",))
        self.stream_rates = StreamRates(self.window)

    def gateway_sample(self, text: str, at: float) -> None:
        self.gateway.add(parse_metrics(text, at))
        self.gateway_error = None

    def api_sample(self, text: str, at: float) -> None:
        self.api.add(parse_metrics(text, at))
        self.api_error = None

    def feeds_sample(self, body: Any, at: float) -> None:
        self.streams = parse_feeds(body)
        self.stream_rates.add(at, self.streams)
        self.feeds_error = None


COUNTERS = (
    "ws_connections_total",
    "ws_messages_sent_total",
    "ws_bytes_sent_total",
    "kafka_records_consumed_total",
)
"""Gateway counters whose decrease means the gateway restarted."""
