"""Wiring of one gateway process: Kafka -> Materializer -> Market -> Hub -> WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import ssl
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, serve
from websockets.typing import Subprotocol

from core import native
from core.market import Market
from gateway.auth import TokenVerifier
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.connection import GatewayConnection
from gateway.gcpolicy import SurvivorFreeze
from gateway.hub import CHECK_SLICE_NS, Hub
from gateway.replay import ReplayManager
from gateway.server import JSON_PROTOCOL, PB_PROTOCOL, GatewayServer, close_later
from gateway.sharding import Shards
from gateway.stalls import StallWatch, note_gc
from mdgw import metrics, tracing
from mdgw.catchup import CatchUp, bootstrap_with_retry
from mdgw.config import Config
from mdgw.kafka.client import SourceFactory
from mdgw.kafka.sink import KafkaSink, RecordSink
from mdgw.kafka.source import Batch, Record, ThreadedConsumer
from mdgw.materializer import Materializer
from schemas import wire

log = logging.getLogger(__name__)


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def _every(
    seconds: float, fn: Any, *, until: Callable[[], Awaitable[object]] | None = None
) -> None:
    """Call ``fn`` every ``seconds``; first, each time, await ``until`` (a timer that only
    serves clients sleeps through a gateway with none: :class:`ClientTimers`)."""
    while True:
        if until is not None:
            await until()
        await asyncio.sleep(seconds)
        try:
            fn()
        except Exception:  # a timer must never die silently and stop the service
            log.exception("timer %s failed", getattr(fn, "__name__", fn))


class Gateway:
    """One gateway process, built from its parts in one place; ``start`` and ``stop``
    are its lifecycle.

    ``sources`` and ``sink`` default to the configured cluster (tests pass a
    :class:`mdgw.kafka.memory.MemoryBroker` as both); ``clock`` is the one the hub,
    the server and replay share."""

    def __init__(
        self,
        config: Config,
        *,
        worker_index: int = 0,
        reuse_port: bool = False,
        sources: SourceFactory | None = None,
        sink: RecordSink | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        g, k = config.gateway, config.kafka
        self.config = config
        self.worker_index = worker_index
        self.reuse_port = reuse_port
        self.sources = sources
        self.clock = clock
        self.sharded = g.mode == "sharded"
        self.market = Market(trades_per_stream=g.trades_per_stream)
        self.hub = Hub(
            self.market,
            clock=clock,
            high_water=g.high_water_bytes,
            slow_timeout=g.slow_timeout,
            resync_interval=g.resync_interval,
            max_lag_ms=g.max_lag_ms,
            resume_messages=g.resume_messages,
            resume_ms=g.resume_ms,
        )
        self.sink: RecordSink = sink if sink is not None else KafkaSink(k, linger_ms=5)
        writer = worker_index == 0 or self.sharded  # sharded: each owner writes its own streams
        self.materializer = Materializer(
            self.market,
            k,
            dlq=self.sink,
            on_book=self.hub.on_book,
            on_trade=self.hub.on_trade,
            snapshot_sink=self.sink if writer else None,
            snapshot_every_updates=g.snapshot_every_updates,
            snapshot_every_ms=g.snapshot_every_ms,
            checkpoint_every_ms=g.checkpoint_every_ms,
        )
        group = g.group_id if self.sharded else f"{g.group_id}-{worker_index}"
        self.consumer = ThreadedConsumer(k, group, sources=sources)
        self.replays = ReplayManager(config, self.hub, self.materializer, sources=sources)
        self.verifier = TokenVerifier(config.auth) if config.auth.jwt_enabled else None
        self.server = GatewayServer(
            g,
            self.hub,
            verifier=self.verifier,
            health=self.health,
            replays=self.replays,
            is_ready=self.is_ready,
        )
        self.ready = False
        """Caught up with Kafka: handshakes are accepted from then on."""
        self.port = 0
        self.started = clock.mono()
        self.tasks: list[asyncio.Task[None]] = []
        self.stalls = StallWatch(g.stall_ms / 1000, LAG_PERIOD)
        self.gc_policy = SurvivorFreeze(GatewayConnection.counts)
        self.listeners: list[Server] = []
        """The listening sockets' servers (``gateway.listen_sockets`` of them)."""

    def is_ready(self) -> bool:
        return self.ready

    async def start(self) -> None:
        """Bootstrap books from the snapshot topic, start consuming and serving."""
        config, g, k = self.config, self.config.gateway, self.config.kafka
        tracing.setup_gateway(config.telemetry)  # tracing hook: no-op unless telemetry.tracing
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        if self.sharded:
            shards = Shards(k, self.materializer, self.hub, loop, self.sources)
            self.consumer.subscribe(
                [k.book_topic, k.trades_topic], shards.on_assign, shards.on_revoke
            )
            catch_up = CatchUp({})
            # no catch-up to wait for: each shard loads its books as partitions come, and
            # the collector's start-up freeze and policy apply as in replica mode
            self._caught_up()
        else:  # replica: read every partition, from the compacted snapshots on
            result = await bootstrap_with_retry(k, self.materializer, self.consumer)
            catch_up = CatchUp(result.catch_up, started=t0)
        watch_gc()
        self.consumer.start(
            loop, self._batch_handler(catch_up), _drained_handler(self.hub, self.materializer)
        )
        self.listeners = await _serve(config, self.server, self.reuse_port)
        self.port = _bound_port(self.listeners[0], g.port)
        self.tasks = _timers(g, self.hub, self.server, self.market, self.sink, self.consumer)
        self.tasks.append(asyncio.create_task(_loop_lag(self.stalls, self.gc_policy)))
        self.stalls.start()
        if catch_up.done and not self.ready:
            self._caught_up()
        log.info(
            "gateway worker %d (%s) serving ws on %s:%d",
            self.worker_index,
            g.mode,
            g.host,
            self.port,
        )
        if self.verifier is None and self.worker_index == 0:
            log.warning(
                "WEBSOCKET AUTHENTICATION IS OFF: anyone who reaches port %d can stream. "
                "Set MDGW_AUTH_JWT_ENABLED=1 and a key (README: Security).",
                self.port,
            )

    def _caught_up(self) -> None:
        self.ready = True
        if self.config.gateway.gc_freeze:
            tune_gc()
            self.gc_policy.install()

    def _batch_handler(self, catch_up: CatchUp) -> Callable[[list[Record]], None]:
        """What the loop does with each consumed batch: apply it, track catch-up."""
        handle = self.materializer.handle
        hub, consumer = self.hub, self.consumer

        def on_batch(records: list[Record]) -> None:
            # a client's lag counts from when the records reached this process, not from
            # when the loop got to them (docs/protocol.md §4.6)
            batch = consumer.current
            if batch is not None:
                hub.arrived_ns = hub.mono() - (time.perf_counter_ns() - batch.received_ns)
            try:
                handle(records)
            finally:
                hub.arrived_ns = 0
            if catch_up.observe(records) and not self.ready:
                self._caught_up()

        return on_batch

    def health(self) -> dict[str, Any]:
        books = all_books(self.market)
        counters = self.materializer.counters
        return {
            "status": "healthy",
            "ready": self.ready,
            "connections": len(self.hub.sessions),
            "streams": len(books),
            "stale_streams": sum(1 for b in books if b.stale),
            "records_consumed": counters.consumed,
            "dlq": counters.dlq,
            "uptime_s": round(self.clock.mono() - self.started, 3),
        }

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown within ``timeout`` overall: 1001 to clients (a peer that
        does not read is aborted after a short grace), consumer closed, snapshots
        flushed with the time left (what cannot be flushed is logged; the next start
        re-reads deltas)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.server.shutting_down = True
        for task in self.tasks:
            task.cancel()
        self.stalls.stop()
        self.gc_policy.uninstall()
        if self.listeners:
            for ws in self.listeners:
                ws.close(close_connections=False)
            for s in list(self.hub.sessions):
                close_later(s, 1001, "server shutting down", grace=min(2.0, timeout / 4))
            with contextlib.suppress(TimeoutError):
                left_s = max(0.1, min(3.0, deadline - loop.time()))
                closed = asyncio.gather(*(ws.wait_closed() for ws in self.listeners))
                await asyncio.wait_for(closed, left_s)
        await asyncio.to_thread(self.consumer.close)
        self.replays.pool.shutdown(wait=False, cancel_futures=True)
        self.materializer.flush_snapshots()
        left = await asyncio.to_thread(self.sink.flush, max(0.5, deadline - loop.time()))
        if left:
            log.warning("shutdown: %d snapshot/DLQ records not acknowledged by Kafka", left)
        await asyncio.to_thread(tracing.force_flush)  # tracing hook: export the last spans


async def start_gateway(config: Config, **parts: Any) -> Gateway:
    """A started :class:`Gateway` (keyword arguments as its constructor's)."""
    gateway = Gateway(config, **parts)
    await gateway.start()
    return gateway


_gc_watched = False


def watch_gc() -> None:
    """Every collection's pause in ``gateway_gc_pause_seconds``: a full one over a heap of
    thousands of connections holds every client for tens of ms."""
    global _gc_watched
    if _gc_watched:  # one per process (tests start several gateways)
        return
    _gc_watched = True
    started = 0
    pauses = [metrics.GC_PAUSE.labels(str(g)) for g in range(3)]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter_ns()
        elif started:
            ns = time.perf_counter_ns() - started
            pauses[info["generation"]].observe(ns / 1e9)
            note_gc(ns)

    gc.callbacks.append(on_gc)


def tune_gc() -> None:
    """Books and code loaded at start-up leave the collector's scans: a full collection
    over them is a pause on the hot path. (Raising the thresholds too kept closed
    connections, which are reference cycles, alive for long: RSS grew; left as is.)"""
    gc.collect()
    gc.freeze()
    log.info("gc: %d start-up objects frozen", gc.get_freeze_count())


def _drained_handler(hub: Hub, mat: Materializer) -> Callable[[list[Batch]], None]:
    """After the batches queued at one wake-up are applied: one flush for all of them
    (a client gets one write however many batches touched it), then the hop metrics.
    A flush that runs out of its slice goes on in later loop turns: the batches' fanout
    and broadcast times are taken when what they queued is written (``Hub.on_written``)."""
    unwritten: deque[tuple[list[Batch], int, int]] = deque()
    """Batches applied, when, and the hub's ``queued_mark`` then."""

    def written(flushed: int) -> None:
        done = time.perf_counter_ns()
        while unwritten and unwritten[0][2] <= flushed:
            batches, applied, _ = unwritten.popleft()
            fanout = (done - applied) / 1e9
            for b in batches:
                n = len(b.records)
                # every record is measured; records handed over together share one observe
                metrics.observe_many(metrics.BROADCAST_LATENCY, (done - b.received_ns) / 1e9, n)
                metrics.observe_many(HOP_FANOUT, fanout, n)

    hub.on_written = written

    def on_drained(batches: list[Batch]) -> None:
        applied = time.perf_counter_ns()
        if batches:
            unwritten.append((batches, applied, hub.queued_mark()))
        hub.flush_slice()
        for b in batches:
            metrics.observe_many(HOP_HANDOFF, (b.loop_ns - b.received_ns) / 1e9, len(b.records))
        if not batches:  # a big batch goes on in the next turn: measured when it ends
            return
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


async def _serve(config: Config, server: GatewayServer, reuse_port: bool) -> list[Server]:
    """``gateway.listen_sockets`` servers on one port. libuv (uvloop) accepts one
    connection per listening socket per loop turn (libuv/libuv#3696): with one socket, a
    gateway whose loop turns take tens of ms under load took a connection per turn and
    1,000 clients waited in the accept queue (bench/README.md). With SO_REUSEPORT the
    kernel spreads connections over the sockets, and each turn accepts one per socket."""
    g = config.gateway
    count = g.listen_sockets if sys.platform.startswith("linux") else 1
    options: dict[str, Any] = {
        "create_connection": GatewayConnection,
        "process_request": server.process_request,
        "select_subprotocol": server.select_subprotocol,
        "subprotocols": [Subprotocol(JSON_PROTOCOL), Subprotocol(PB_PROTOCOL)],
        "compression": "deflate" if g.compression else None,
        "max_size": g.max_message_size,
        "ping_interval": g.ping_interval or None,
        "ping_timeout": g.connection_timeout or None,
        "open_timeout": g.handshake_timeout,
        "ssl": tls_context(g.tls_cert, g.tls_key),
        "origins": None,
        "backlog": 4096,  # thousands of clients connect at once after a restart
    }
    if count > 1 and not reuse_port and g.port:
        _check_port_free(g.host, g.port)
    shared = reuse_port or count > 1
    first = await serve(server.handler, g.host, g.port, reuse_port=shared or None, **options)
    port = _bound_port(first, g.port)
    listeners = [first]
    try:
        for _ in range(count - 1):
            listeners.append(await serve(server.handler, g.host, port, reuse_port=True, **options))
    except BaseException:
        for ws in listeners:
            ws.close()
        raise
    return listeners


def _bound_port(listener: Server, asked: int) -> int:
    """The port a listener got (``asked`` may be 0: any free port)."""
    return listener.sockets[0].getsockname()[1] if listener.sockets else asked


def _check_port_free(host: str, port: int) -> None:
    """OSError (address in use) if something listens on the port already: with
    SO_REUSEPORT a second gateway would otherwise join the first one's port silently.
    Binds every address the host resolves to, as asyncio's ``create_server`` does."""
    import socket

    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    for family, kind, proto, _name, addr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind(addr)


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

    checking = False  # a freshness check is under way in slices (it goes on where it stopped)
    period = hub.check_period_s
    last_turn = 0.0
    """Loop time this timer or a slice of its check last ran."""

    def held(now: float, expected: float) -> None:
        """Tell the hub when the loop ran this timer or slice a check period late: the
        probes' answers that came meanwhile are unread (``Hub.loop_held``)."""
        nonlocal last_turn
        if last_turn and now - last_turn > expected + period:
            hub.loop_held()
        last_turn = now

    def slow() -> None:
        held(asyncio.get_running_loop().time(), period)
        if not checking:
            check_more()

    def check_more() -> None:
        nonlocal checking
        loop = asyncio.get_running_loop()
        if checking:  # the next slice: one loop turn after the last
            held(loop.time(), 0.0)
        checking = not hub.check_slow(close_later, CHECK_SLICE_NS)
        if checking:
            loop.call_soon(check_more)

    pace_fetch = _fetch_pacer(hub, consumer)
    clients = ClientTimers(hub)

    def first_session() -> None:
        if consumer.idle:  # its books are up to kafka.idle_fetch_wait_ms behind
            server.books_current.clear()
        consumer.pace(False)
        clients.wake()

    hub.on_first_session = first_session
    consumer.on_caught_up = server.books_current.set

    def housekeeping() -> None:
        pace_fetch()
        sink.poll()
        server.expire_tokens()
        metrics.STALE_STREAMS.set(sum(1 for b in all_books(market) if b.stale))

    def views_kept() -> Awaitable[None]:  # the conflation tick also forgets idle views
        return clients.wait(hub.keeps_idle_views)

    return [
        asyncio.create_task(_broker_watch(consumer, hub)),
        asyncio.create_task(_every(g.conflation_ms / 1000, hub.tick_conflated, until=views_kept)),
        asyncio.create_task(_every(g.heartbeat_interval / slices, heartbeat, until=clients.wait)),
        asyncio.create_task(_every(1.0, stats, until=clients.wait)),
        asyncio.create_task(_every(0.25, hub.candles.tick, until=clients.wait)),
        asyncio.create_task(_every(period, slow, until=clients.wait)),
        asyncio.create_task(_every(0.5, housekeeping)),
        asyncio.create_task(
            _every(1.0, lambda: server.sent.fold_all(hub.sessions), until=clients.wait)
        ),
        asyncio.create_task(_lag_loop(consumer)),
    ]


class ClientTimers:
    """What the timers that only serve clients (heartbeats, freshness checks, conflation,
    candles, statistics) wait on while no WebSocket client is connected: each firing
    wakes the process, and they were ~40 % of the loop's CPU in a gateway with no client
    (bench/README.md, "Thirteenth pass"). The first client wakes them at once."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    async def wait(self, also: Callable[[], bool] | None = None) -> None:
        """Return at once while a client is connected (or ``also()`` holds); else when
        the first one connects."""
        while not self.hub.sessions and not (also is not None and also()):
            self._woken.clear()
            await self._woken.wait()


IDLE_AFTER_S = 5.0
"""Seconds without a WebSocket client before the consumer fetches in bulk."""


def _fetch_pacer(hub: Hub, consumer: ThreadedConsumer) -> Callable[[], None]:
    """The consumer fetches in bulk once no client has been connected for
    :data:`IDLE_AFTER_S` (nobody waits for its records: a fifth of the CPU per record,
    bench/README.md), and eagerly again from the moment one connects."""
    last_client = time.monotonic()

    def pace() -> None:
        nonlocal last_client
        now = time.monotonic()
        if hub.sessions:
            last_client = now
            consumer.pace(False)  # again each tick: a switch that failed is tried again
        elif now - last_client >= IDLE_AFTER_S:
            consumer.pace(True)

    return pace


LAG_PERIOD = 0.05
"""Seconds between two loop-lag timers (each a beat of the stall watch)."""


async def _loop_lag(stalls: StallWatch, gc_policy: SurvivorFreeze) -> None:
    """How late a timer fires = how long a control message or handshake waits; each
    firing is a beat of the stall watch and a turn of the collector policy."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + LAG_PERIOD
        await asyncio.sleep(LAG_PERIOD)
        metrics.LOOP_LAG.observe(max(0.0, loop.time() - due))
        stalls.beat()
        gc_policy.tick()


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


async def serve_gateway(config: Config, worker_index: int = 0, reuse_port: bool = False) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("gateway worker %d: hot path %s", worker_index, native.status)
    gateway = await start_gateway(config, worker_index=worker_index, reuse_port=reuse_port)
    await stop.wait()
    log.info("shutting down gateway worker %d", worker_index)
    await gateway.stop()
