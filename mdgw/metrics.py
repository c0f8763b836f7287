"""Prometheus metrics of every process (docs/protocol.md §7), defined once.

Latency histograms have sub-millisecond buckets: the gateway's hot path is
measured in tens of microseconds. With ``PROMETHEUS_MULTIPROC_DIR`` set (the
gateway's ``--workers N``), prometheus-client aggregates all workers' values.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)

WS_CONNECTIONS_TOTAL = Counter("ws_connections_total", "WebSocket connections accepted")
WS_CONNECTIONS_ACTIVE = Gauge(
    "ws_connections_active", "WebSocket connections open now", multiprocess_mode="livesum"
)
WS_REFUSED = Counter("ws_connections_refused_total", "Handshakes refused", ["reason"])
BROADCAST_LATENCY = Histogram(
    "message_broadcast_latency_seconds",
    "Kafka record handed over by the client -> frames written to every subscriber",
    buckets=LATENCY_BUCKETS,
)
END_TO_END_LATENCY = Histogram(
    "end_to_end_latency_seconds",
    "Producer ingest_ns -> frames written (cross-process clocks on one host)",
    buckets=LATENCY_BUCKETS,
)
MESSAGES_SENT = Counter("ws_messages_sent_total", "Data and control messages sent")
BYTES_SENT = Counter("ws_bytes_sent_total", "Payload bytes sent to WebSocket clients")
PROBES = Counter(
    "ws_probes_total",
    "Probe pings written to learn what clients have read (how: with_data = in a data write, "
    "alone = a write of its own)",
    ["how"],
)
PROBE_ANSWERS = Counter("ws_probe_answers_total", "Pongs that answered a probe ping")
SLOW_RESYNCS = Counter("slow_consumer_resyncs_total", "Clients resynced after falling behind")
RESYNCS_DEFERRED = Counter(
    "slow_consumer_resyncs_deferred_total",
    "Resyncs due but left to the next freshness check: the check's time for them was spent",
)
VERDICTS_PAUSED = Counter(
    "slow_consumer_verdicts_paused_total",
    "Freshness checks paused after a stall of the gateway's own loop: the answers to its "
    "probes waited unread, so no client was judged behind until they were read",
)
SLOW_CAUGHT_UP = Counter(
    "slow_consumer_caught_up_total",
    "Clients that fell behind, lost nothing while behind and went on without a resync",
)
RESUMES = Counter(
    "ws_resumes_total",
    "Book subscriptions with since (outcome: resumed from history, or snapshot)",
    ["outcome"],
)
BEHIND = Counter(
    "slow_consumer_behind_total",
    "Clients found behind (reason: lag = older than max_lag_ms, buffer = past high water)",
    ["reason"],
)
DELTAS_DROPPED = Counter(
    "slow_consumer_dropped_messages_total", "Queued book messages dropped for clients behind"
)
HOP_LATENCY = Histogram(
    "gateway_hop_seconds",
    "Per-hop latency: kafka = producer ingest_ns -> consumer thread (wall clocks, one host); "
    "handoff = consumer thread -> event loop; apply = decode + books + views + encode of a "
    "batch; fanout = apply end -> the last of its clients written",
    ["hop"],
    buckets=LATENCY_BUCKETS,
)
LOOP_LAG = Histogram(
    "gateway_loop_lag_seconds",
    "Event-loop responsiveness: how late a 50 ms timer fires (what a control message waits)",
    buckets=LATENCY_BUCKETS,
)
GC_PAUSE = Histogram(
    "gateway_gc_pause_seconds",
    "Garbage-collector pauses of the event loop's thread, by generation (2 = full)",
    ["generation"],
    buckets=LATENCY_BUCKETS,
)
LOOP_STALLS = Counter(
    "gateway_loop_stalls_total",
    "Times the event loop was held past gateway.stall_ms (each logged with its stack)",
)
SLOW_DISCONNECTS = Counter("slow_consumer_disconnects_total", "Clients closed with 1013")
CLIENT_ERRORS = Counter("ws_client_errors_total", "Refused client messages", ["code"])
RECORDS_CONSUMED = Counter("kafka_records_consumed_total", "Records consumed", ["topic"])
RECORDS_APPLIED = Counter("kafka_records_applied_total", "Records applied", ["topic"])
DLQ_RECORDS = Counter("dlq_records_total", "Records sent to the dead-letter topic", ["reason"])
SEQUENCE_GAPS = Counter("sequence_gaps_total", "Sequence gaps seen (stream marked stale)")
CHECKSUM_FAILURES = Counter("checksum_failures_total", "Book checksum mismatches")
CONSUMER_LAG = Gauge(
    "kafka_consumer_lag",
    "Records behind the high watermark",
    ["topic", "partition"],
    multiprocess_mode="max",
)
STALE_STREAMS = Gauge("stale_streams", "Streams currently stale", multiprocess_mode="max")
KAFKA_FETCH_IDLE = Gauge(
    "kafka_fetch_idle",
    "1 while the consumer fetches in bulk: no client connected (kafka.idle_fetch_wait_ms)",
    multiprocess_mode="livesum",
)
KAFKA_FETCH_SWITCHES = Counter(
    "kafka_fetch_switches_total", "Switches between the eager and the idle fetch", ["to"]
)
SNAPSHOTS_WRITTEN = Counter("snapshots_written_total", "Books written to the snapshot topic")
API_REQUESTS = Counter("api_requests_total", "REST requests", ["method", "route", "status"])
RATE_LIMITED = Counter(
    "rate_limited_total", "Requests or messages refused by a rate limit", ["where"]
)
AUTH_FAILURES = Counter("auth_failures_total", "Refused credentials", ["where", "reason"])
TRACE_QUERIES = Counter(
    "trace_queries_total",
    "Trace view queries to Jaeger (result: ok, not_found, bad_request, off, timeout, "
    "unavailable, bad_answer, busy)",
    ["result"],
)
REPLAYS_ACTIVE = Gauge("replays_active", "Time-travel replays running", multiprocess_mode="livesum")


def observe_many(hist: Histogram, amount: float, count: int) -> None:
    """``count`` observations of one ``amount``, with the same result as ``count`` observe().

    The gateway measures every record of a consumed batch, and a batch's records
    share their hand-over time: one bucket increment per batch instead of one
    ``observe`` per record (~1.5 us each, a few % of the ingest path).
    """
    if count <= 0:
        return
    try:
        buckets, bounds, total = hist._buckets, hist._upper_bounds, hist._sum
    except AttributeError:  # another prometheus-client layout: the slow, certain way
        for _ in range(count):
            hist.observe(amount)
        return
    total.inc(amount * count)
    for i, bound in enumerate(bounds):
        if amount <= bound:
            buckets[i].inc(count)
            break
