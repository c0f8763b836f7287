"""Operational routes: health, readiness, feeds, metrics (JSON and Prometheus).

``/health`` says the process runs; ``/ready`` says the books are loaded and Kafka
answers (orchestrators route traffic on it). ``/api/v1/feeds`` and
``/api/v1/metrics`` are for people and dashboards; ``/metrics`` for Prometheus.
"""

from __future__ import annotations

import os
import resource
import threading
import time

from litestar import Response, get
from litestar.di import NamedDependency

from api import present
from api.errors import NotReady
from api.models import FeedsBody, HealthBody, ReadyBody, SystemMetricsBody
from api.routes.market import COMMON, NOT_READY
from api.state import StateStore
from mdgw.metrics_http import render_metrics


@get("/health", summary="Liveness", description='`{"status":"healthy"}` while the process runs.')
async def health() -> HealthBody:
    return HealthBody(status="healthy")


@get(
    "/ready",
    summary="Readiness",
    description="200 once the books of the snapshot topic are loaded and Kafka is reachable.",
    responses={503: NOT_READY},
)
async def ready(store: NamedDependency[StateStore]) -> ReadyBody:
    reason = store.not_ready_reason()
    if reason is not None:
        raise NotReady(reason)
    return ReadyBody(
        status="ready",
        streams=len(store.market.streams()),
        bootstrap_seconds=store.bootstrap_seconds,
    )


@get(
    "/metrics",
    summary="Prometheus metrics",
    media_type="text/plain; version=0.0.4; charset=utf-8",
    description="Text exposition format (docs/protocol.md §7).",
)
async def prometheus() -> Response[bytes]:
    body, content_type = render_metrics()
    # An explicit header: Litestar would append a second "; charset=" to text/plain.
    return Response(content=body, headers={"content-type": content_type})


@get("/feeds", summary="Health of every stream", responses=COMMON)
async def feeds(store: NamedDependency[StateStore]) -> FeedsBody:
    market, now = store.market, present.now_ns()
    items = []
    for stream in market.streams():
        state = market.state(stream)
        if state is not None:
            items.append(present.feed_item(state.book, state.counters, store.lag_of(stream), now))
    return FeedsBody(feeds=items, lag_total=sum(store.lag.values()))


@get("/metrics", summary="System metrics of this process", responses=COMMON)
async def system_metrics(store: NamedDependency[StateStore]) -> SystemMetricsBody:
    market, c = store.market, store.counters
    books = [b for b in (market.book(s) for s in market.streams()) if b is not None]
    r = store.bootstrap_result
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    return SystemMetricsBody(
        uptime_s=round(time.monotonic() - store.started, 3),
        ready=store.not_ready_reason() is None,
        streams=len(books),
        stale_streams=sum(1 for b in books if b.stale),
        symbols=len(market.symbols()),
        records_consumed=c.consumed,
        records_applied=c.applied,
        dlq=c.dlq,
        gaps=c.gaps,
        rereads=c.rereads,
        dlq_by_reason=dict(c.by_reason),
        lag_total=sum(store.lag.values()),
        kafka_connected=store.kafka_ok,
        kafka_errors=store.kafka_errors,
        bootstrap_seconds=store.bootstrap_seconds,
        snapshots_loaded=r.loaded if r is not None else 0,
        rss_bytes=rss_bytes(),
        cpu_seconds=round(cpu.ru_utime + cpu.ru_stime, 3),
        threads=threading.active_count(),
    )


def rss_bytes() -> int:
    """Resident set size now (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak_kib) * 1024


ROUTES = [health, ready, prometheus]
API_ROUTES = [feeds, system_metrics]
