"""Wiring of one gateway process: Kafka -> Materializer -> Market -> Hub -> WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, serve
from websockets.typing import Subprotocol

from core.market import Market
from gateway.auth import TokenVerifier
from gateway.connection import GatewayConnection
from gateway.hub import Hub
from gateway.replay import ReplayManager
from gateway.server import JSON_PROTOCOL, PB_PROTOCOL, GatewayServer, close_later
from gateway.sharding import Shards
from mdgw import metrics, tracing
from mdgw.catchup import CatchUp, bootstrap_with_retry
from mdgw.config import Config
from mdgw.kafka.client import SourceFactory
from mdgw.kafka.sink import KafkaSink, RecordSink
from mdgw.kafka.source import Batch, Record, ThreadedConsumer
from mdgw.materializer import Materializer
from schemas import wire

log = logging.getLogger(__name__)


@dataclass
class GatewayRuntime:
    """Everything a running gateway holds, for tests and the CLI."""

    config: Config
    market: Market
    hub: Hub
    server: GatewayServer
    materializer: Materializer
    consumer: ThreadedConsumer
    sink: RecordSink
    port: int = 0
    started: float = field(default_factory=time.monotonic)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    ws: Server | None = None
    """The websockets server."""


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def _every(seconds: float, fn: Any) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            fn()
        except Exception:  # a timer must never die silently and stop the service
            log.exception("timer %s failed", getattr(fn, "__name__", fn))


async def start_gateway(
    config: Config,
    *,
    worker_index: int = 0,
    reuse_port: bool = False,
    sources: SourceFactory | None = None,
    sink: RecordSink | None = None,
) -> GatewayRuntime:
    """Bootstrap books from the snapshot topic, start consuming and serving.

    ``sources`` and ``sink`` default to the configured cluster; tests pass a
    :class:`mdgw.kafka.memory.MemoryBroker` as both."""
    g, k = config.gateway, config.kafka
    tracing.setup_gateway(config.telemetry)  # tracing hook: no-op unless telemetry.tracing
    loop = asyncio.get_running_loop()
    market = Market(trades_per_stream=g.trades_per_stream)
    hub = Hub(
        market,
        high_water=g.high_water_bytes,
        slow_timeout=g.slow_timeout,
        max_lag_ms=g.max_lag_ms,
    )
    sink = sink if sink is not None else KafkaSink(k, linger_ms=5)
    sharded = g.mode == "sharded"
    writer = worker_index == 0 or sharded  # sharded: each owner writes its own streams
    mat = Materializer(
        market,
        k,
        dlq=sink,
        on_book=hub.on_book,
        on_trade=hub.on_trade,
        snapshot_sink=sink if writer else None,
        snapshot_every_updates=g.snapshot_every_updates,
        snapshot_every_ms=g.snapshot_every_ms,
        checkpoint_every_ms=g.checkpoint_every_ms,
    )
    t0 = time.perf_counter()
    if sharded:
        consumer = ThreadedConsumer(k, g.group_id, sources=sources)
        shards = Shards(k, mat, hub, loop, sources)
        consumer.subscribe([k.book_topic, k.trades_topic], shards.on_assign, shards.on_revoke)
        catch_up = CatchUp({})
        ready = [True]
    else:
        consumer, catch_up, ready = await _replica_consumer(config, worker_index, mat, sources, t0)
    runtime: GatewayRuntime
    verifier = TokenVerifier(config.auth) if config.auth.jwt_enabled else None
    server = GatewayServer(g, hub, verifier=verifier, health=lambda: health(runtime))
    on_batch = _batch_handler(mat, catch_up, ready, g.gc_freeze)
    consumer.start(loop, on_batch, _drained_handler(hub, mat))
    ws = await _serve(config, server, reuse_port)
    server.replay_handler = ReplayManager(config, hub, mat, sources=sources)
    port = ws.sockets[0].getsockname()[1] if ws.sockets else g.port
    runtime = GatewayRuntime(config, market, hub, server, mat, consumer, sink, port)
    runtime.ws = ws
    runtime.tasks = _timers(g, hub, server, market, sink, consumer)
    if catch_up.done and not ready[0]:
        ready[0] = True
        if g.gc_freeze:
            tune_gc()
    server.is_ready = lambda: ready[0]
    log.info("gateway worker %d (%s) serving ws on %s:%d", worker_index, g.mode, g.host, port)
    if verifier is None and worker_index == 0:
        log.warning(
            "WEBSOCKET AUTHENTICATION IS OFF: anyone who reaches port %d can stream. "
            "Set MDGW_AUTH_JWT_ENABLED=1 and a key (README: Security).",
            port,
        )
    return runtime


async def _replica_consumer(
    config: Config,
    worker_index: int,
    mat: Materializer,
    sources: SourceFactory | None,
    t0: float,
) -> tuple[ThreadedConsumer, CatchUp, list[bool]]:
    """Replica mode: read every partition, from the compacted snapshots on."""
    g, k = config.gateway, config.kafka
    consumer = ThreadedConsumer(k, f"{g.group_id}-{worker_index}", sources=sources)
    result = await bootstrap_with_retry(k, mat, consumer)
    return consumer, CatchUp(result.catch_up, started=t0), [False]


def _batch_handler(
    mat: Materializer,
    catch_up: CatchUp,
    ready: list[bool],
    gc_freeze: bool = False,
) -> Callable[[list[Record]], None]:
    """What the loop does with each consumed batch: apply it, track catch-up."""

    def on_batch(records: list[Record]) -> None:
        mat.handle(records)
        if catch_up.observe(records):
            ready[0] = True
            if gc_freeze:
                tune_gc()

    return on_batch


def tune_gc() -> None:
    """Books and code loaded at start-up leave the collector's scans: a full collection
    over them is a pause on the hot path. (Raising the thresholds too kept closed
    connections, which are reference cycles, alive for long: RSS grew; left as is.)"""
    gc.collect()
    gc.freeze()
    log.info("gc: %d start-up objects frozen", gc.get_freeze_count())


FLUSH_SLICE_NS = 10_000_000
"""Writing to clients pauses after 10 ms to let handshakes and control messages run."""


def _drained_handler(hub: Hub, mat: Materializer) -> Callable[[list[Batch]], None]:
    """After the batches queued at one wake-up are applied: one flush for all of them
    (a client gets one write however many batches touched it), then the hop metrics.
    A flush that runs out of its slice goes on in the next loop turn."""
    loop = asyncio.get_running_loop()
    scheduled = False

    def flush_slice() -> None:
        nonlocal scheduled
        hub.flush(FLUSH_SLICE_NS)
        if hub.backlog and not scheduled:
            scheduled = True
            loop.call_soon(continued)

    def continued() -> None:
        nonlocal scheduled
        scheduled = False
        flush_slice()

    def on_drained(batches: list[Batch]) -> None:
        applied = time.perf_counter_ns()
        flush_slice()
        done = time.perf_counter_ns()
        fanout = (done - applied) / 1e9
        for b in batches:
            n = len(b.records)
            # every record is measured; records handed over together share one bulk observe
            metrics.observe_many(metrics.BROADCAST_LATENCY, (done - b.received_ns) / 1e9, n)
            metrics.observe_many(HOP_HANDOFF, (b.loop_ns - b.received_ns) / 1e9, n)
            metrics.observe_many(HOP_FANOUT, fanout, n)
        apply_s = (applied - batches[0].loop_ns) / 1e9 / max(1, len(batches))
        metrics.observe_many(HOP_APPLY, apply_s, sum(len(b.records) for b in batches))
        ingest = mat.last_ingest_ns
        if ingest:
            last = batches[-1]
            kafka = (last.received_wall_ns - ingest) / 1e9
            metrics.observe_many(HOP_KAFKA, max(0.0, kafka), len(last.records))

    return on_drained


HOP_KAFKA = metrics.HOP_LATENCY.labels("kafka")
HOP_HANDOFF = metrics.HOP_LATENCY.labels("handoff")
HOP_APPLY = metrics.HOP_LATENCY.labels("apply")
HOP_FANOUT = metrics.HOP_LATENCY.labels("fanout")


async def _serve(config: Config, server: GatewayServer, reuse_port: bool) -> Any:
    g = config.gateway
    return await serve(
        server.handler,
        g.host,
        g.port,
        create_connection=GatewayConnection,
        process_request=server.process_request,
        select_subprotocol=server.select_subprotocol,
        subprotocols=[Subprotocol(JSON_PROTOCOL), Subprotocol(PB_PROTOCOL)],
        compression="deflate" if g.compression else None,
        max_size=g.max_message_size,
        ping_interval=g.ping_interval or None,
        ping_timeout=g.connection_timeout or None,
        open_timeout=g.handshake_timeout,
        ssl=tls_context(g.tls_cert, g.tls_key),
        reuse_port=reuse_port or None,
        origins=None,
        backlog=4096,  # thousands of clients connect at once after a restart
    )


def _timers(
    g: Any,
    hub: Hub,
    server: GatewayServer,
    market: Market,
    sink: RecordSink,
    consumer: ThreadedConsumer,
) -> list[asyncio.Task[Any]]:
    slices = 20
    """Heartbeats go to a 1/20 of the sessions every heartbeat_interval/20 seconds."""

    def heartbeat() -> None:
        now = time.time_ns()
        hub.heartbeat_slice(wire.heartbeat_json(now), wire.heartbeat_pb(now), slices)

    def stats() -> None:
        hub.send_stats(time.time_ns())

    def slow() -> None:
        hub.check_slow(lambda s, code, reason: close_later(s, code, reason))

    def housekeeping() -> None:
        sink.poll()
        server.expire_tokens()
        metrics.STALE_STREAMS.set(sum(1 for b in all_books(market) if b.stale))

    return [
        asyncio.create_task(_broker_watch(consumer, hub)),
        asyncio.create_task(_every(g.conflation_ms / 1000, hub.tick_conflated)),
        asyncio.create_task(_every(g.heartbeat_interval / slices, heartbeat)),
        asyncio.create_task(_every(1.0, stats)),
        asyncio.create_task(_every(max(0.01, g.max_lag_ms / 5000), slow)),
        asyncio.create_task(_every(0.5, housekeeping)),
        asyncio.create_task(_lag_loop(consumer)),
        asyncio.create_task(_loop_lag()),
    ]


async def _loop_lag(period: float = 0.05) -> None:
    """How late a timer fires = how long a control message or handshake waits."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + period
        await asyncio.sleep(period)
        metrics.LOOP_LAG.observe(max(0.0, loop.time() - due))


async def _broker_watch(consumer: ThreadedConsumer, hub: Hub) -> None:
    """Broker down: every view goes stale; broker back: fresh snapshots (books were kept)."""
    down = False
    while True:
        await asyncio.sleep(0.5)
        if consumer.broker_down:
            if not down:
                down = True
                hub.all_stale("kafka unreachable")
            await asyncio.to_thread(consumer.probe)
        elif down:
            down = False
            hub.recover_all()


async def _lag_loop(consumer: ThreadedConsumer) -> None:
    while True:
        await asyncio.sleep(5)
        lag = await asyncio.to_thread(consumer.lag)
        for (topic, part), n in lag.items():
            metrics.CONSUMER_LAG.labels(topic, str(part)).set(n)


def all_books(market: Market) -> list[Any]:
    return [b for s in market.streams() if (b := market.book(s)) is not None]


def health(rt: GatewayRuntime) -> dict[str, Any]:
    books = all_books(rt.market)
    return {
        "status": "healthy",
        "ready": rt.server.is_ready(),
        "connections": len(rt.hub.sessions),
        "streams": len(books),
        "stale_streams": sum(1 for b in books if b.stale),
        "records_consumed": rt.materializer.counters.consumed,
        "dlq": rt.materializer.counters.dlq,
        "uptime_s": round(time.monotonic() - rt.started, 3),
    }


async def stop_gateway(rt: GatewayRuntime, timeout: float = 10.0) -> None:
    """Graceful shutdown within ``timeout`` overall: 1001 to clients (a peer that does
    not read is aborted after a short grace), consumer closed, snapshots flushed with
    the time left (what cannot be flushed is logged; the next start re-reads deltas)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    rt.server.shutting_down = True
    for task in rt.tasks:
        task.cancel()
    ws = rt.ws
    assert ws is not None, "stop_gateway on a runtime start_gateway did not finish"
    ws.close(close_connections=False)
    for s in list(rt.hub.sessions):
        close_later(s, 1001, "server shutting down", grace=min(2.0, timeout / 4))
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(ws.wait_closed(), max(0.1, min(3.0, deadline - loop.time())))
    await asyncio.to_thread(rt.consumer.close)
    replays = rt.server.replay_handler
    if isinstance(replays, ReplayManager):
        replays.pool.shutdown(wait=False, cancel_futures=True)
    rt.materializer.flush_snapshots()
    left = await asyncio.to_thread(rt.sink.flush, max(0.5, deadline - loop.time()))
    if left:
        log.warning("shutdown: %d snapshot/DLQ records not acknowledged by Kafka", left)
    await asyncio.to_thread(tracing.force_flush)  # tracing hook: export the last spans


async def serve_gateway(config: Config, worker_index: int = 0, reuse_port: bool = False) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    rt = await start_gateway(config, worker_index=worker_index, reuse_port=reuse_port)
    await stop.wait()
    log.info("shutting down gateway worker %d", worker_index)
    await stop_gateway(rt)
