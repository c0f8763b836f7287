"""Time travel over WebSocket: ``{"op":"replay",...}`` streams a past window of a stream.

Per replay: the newest checkpoint at or before ``from`` (mdgw.history), the deltas
up to ``from`` applied silently, then a snapshot of the requested depth (the book
as it was at ``from``), then the deltas paced at ``speed`` (0 = as fast as the
client reads), each marked ``replay`` with the request id, then
``{"type":"replay_complete","id":...}``. With ``"to":"live"`` the replay keeps
reading until its book reaches the live book's sequence and then hands the client
to the live view: if the two views are at the same message sequence the next live
delta chains on directly, otherwise one live snapshot is sent (never a gap).

Each replay reads Kafka with its own consumer on its own thread; the number of
replays is bounded globally and per connection, starting them is rate-limited per
client, and a client that does not read slows only its own replay.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from core.book import ApplyResult, OrderBook
from core.types import BookUpdate, Trade, parse_stream_key
from core.views import DepthView
from gateway import authz
from gateway.budget import ReplayBudget, ReplayCaps
from gateway.hub import Hub
from gateway.limits import address_group
from gateway.protocol import ProtocolError, Request
from gateway.ratelimit import TokenBucket
from gateway.session import Session
from gateway.subscriptions import StreamKey, ViewKey
from mdgw import metrics
from mdgw.config import Config
from mdgw.history import (
    HistoryError,
    earliest_ns,
    find_checkpoint,
    offset_for_time,
    stream_records,
)
from mdgw.kafka.client import SourceFactory, sources_for
from mdgw.materializer import Materializer
from schemas import wire

log = logging.getLogger(__name__)

_DONE = object()
T = TypeVar("T")


class ReplayManager:
    """Starts, limits and cancels replays; one asyncio task per replay request."""

    def __init__(
        self,
        config: Config,
        hub: Hub,
        materializer: Materializer,
        *,
        sources: SourceFactory | None = None,
    ) -> None:
        self.config = config
        self.kafka = config.kafka
        self.sources = sources_for(config.kafka, sources)
        """Where history is read (tests pass a MemoryBroker)."""
        self.hub = hub
        self.clock = hub.time
        self.materializer = materializer
        g = config.gateway
        self.budget = ReplayBudget(
            ReplayCaps(
                replays=g.max_replays,
                per_connection=g.max_replays_per_connection,
                per_client=g.max_replays_per_client,
                readers=g.max_history_readers,
                symbols_per_replay=g.max_replay_symbols,
            )
        )
        self.pool = ThreadPoolExecutor(g.max_history_readers, thread_name_prefix="history")
        """Every history read runs here; the budget admits no more readers than threads."""
        self.lookback_ms = 2 * g.checkpoint_every_ms + 5_000
        self.active = 0
        self._buckets: dict[int, TokenBucket] = {}
        self._symbols: dict[int, dict[object, int]] = {}
        """session id -> {replay id: symbols}: running replays count toward the cap."""

    def __call__(self, session: Session, req: Request) -> None:
        if req.op == "cancel_replay":
            self.cancel(session, req.id)
            return
        cap = self.budget.caps.symbols_per_replay
        if len(req.symbols) > cap:
            raise ProtocolError("bad_request", f"at most {cap} symbols per replay", req.id)
        bucket = self._bucket(session)
        if not bucket.allow(self.clock.mono()):
            metrics.RATE_LIMITED.labels("replay").inc()
            raise ProtocolError("rate_limited", "too many replay requests", req.id)
        if req.id in session.replays:
            raise ProtocolError("bad_request", f"a replay with id {req.id!r} is running", req.id)
        self._authorize(session, req.channel, req.symbols, req.id)
        now = self.clock.wall_ns()
        if req.from_ns >= now:
            raise ProtocolError("bad_request", "from must be in the past", req.id)
        if req.to_ns is not None and req.to_ns > now + 1_000_000_000:
            raise ProtocolError("bad_request", 'to must be in the past, or "live"', req.id)
        for s in req.symbols:
            if self.hub.market.book(s) is None:
                raise ProtocolError("unknown_symbol", f"unknown symbol {s}", req.id)
        refused = self.budget.acquire(session.id, _client(session), len(req.symbols))
        if refused is not None:
            metrics.RATE_LIMITED.labels("replay").inc()
            raise ProtocolError("rate_limited", refused, req.id)
        session.send_control(
            "replay_started", id=req.id, channel=req.channel, symbols=list(req.symbols)
        )
        self.active += 1
        metrics.REPLAYS_ACTIVE.inc()
        self._symbols.setdefault(session.id, {})[req.id] = len(req.symbols)
        task = asyncio.create_task(self._run(session, req))
        session.replays[req.id] = task

    def _bucket(self, session: Session) -> TokenBucket:
        """This connection's replay-start bucket; buckets of closed connections are freed."""
        bucket = self._buckets.get(session.id)
        if bucket is None:
            if len(self._buckets) >= 2 * len(self.hub.sessions) + 64:
                alive = {s.id for s in self.hub.sessions}
                self._buckets = {k: b for k, b in self._buckets.items() if k in alive}
            bucket = self._buckets[session.id] = TokenBucket(1.0, 3)
        return bucket

    def _authorize(
        self, session: Session, channel: str, symbols: tuple[str, ...], req_id: object
    ) -> None:
        """The subscribe checks: claims, and the cap counting running replays' symbols."""
        authz.check_allowed(session.claims, channel, symbols, req_id)
        replaying = sum(self._symbols.get(session.id, {}).values())
        authz.check_capacity(
            self.hub.subs.count(session) + replaying,
            len(symbols),
            self.config.gateway.max_subscriptions,
            req_id,
        )

    def _authorize_join(
        self, session: Session, channel: str, stream: str, req: Request, *, new: bool
    ) -> None:
        """Joining the live stream is a subscription: same checks, with the claims of now."""
        authz.check_allowed(session.claims, channel, (stream,), req.id)
        authz.check_capacity(
            self.hub.subs.count(session),
            int(new),
            self.config.gateway.max_subscriptions,
            req.id,
        )

    def cancel(self, session: Session, req_id: object) -> None:
        targets = list(session.replays) if req_id is None else [req_id]
        for rid in targets:
            task = session.replays.get(rid)
            if task is not None:
                task.cancel()
        session.send_control("replay_cancelled", id=req_id)

    async def _run(self, session: Session, req: Request) -> None:
        try:
            runs = [
                self._book(session, req, s)
                if req.channel == "book"
                else self._trades(session, req, s)
                for s in req.symbols
            ]
            tasks = [asyncio.ensure_future(r) for r in runs]
            try:
                done = await asyncio.gather(*tasks)
            finally:  # one symbol failing ends the whole replay, not just its own part
                for t in tasks:
                    t.cancel()
            self._complete(session, req, [j for j in done if j is not None])
        except ProtocolError as e:
            session.send_control("error", id=req.id, code=e.code, message=e.message)
        except HistoryError as e:
            session.send_control("error", id=req.id, code="history_unavailable", message=str(e))
        except asyncio.CancelledError:
            pass
        except Exception:  # a replay failure must never reach the live path
            log.exception("replay %r failed", req.id)
            session.send_control("error", id=req.id, code="internal", message="replay failed")
        finally:
            self.active -= 1
            self.budget.release(session.id, _client(session), len(req.symbols))
            metrics.REPLAYS_ACTIVE.dec()
            session.replays.pop(req.id, None)
            running = self._symbols.get(session.id, {})
            running.pop(req.id, None)
            if not running:
                self._symbols.pop(session.id, None)

    # ---- reading Kafka on a thread -------------------------------------------------

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """A blocking history read on the history pool (never the loop's default one)."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _records(self, it_factory: Any) -> Any:
        """Run a blocking record iterator on a thread; yields records with backpressure."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        room = threading.Semaphore(2000)
        stop = threading.Event()

        def hand(item: object) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop has closed (shutdown): nobody waits for it
                stop.set()

        def pump() -> None:
            try:
                for rec in it_factory(stop):
                    while not room.acquire(timeout=0.2):
                        if stop.is_set():
                            return
                    hand(rec)
            except BaseException as e:  # handed to the consumer side
                hand(e)
            finally:
                hand(_DONE)

        loop.run_in_executor(self.pool, pump)  # admitted by the budget: a thread is free
        try:
            while True:
                rec = await queue.get()
                if rec is _DONE:
                    return
                room.release()
                if isinstance(rec, BaseException):
                    raise rec
                yield rec
        finally:
            stop.set()

    async def _pace(
        self, session: Session, speed: float, t0: float, from_ns: int, ingest_ns: int
    ) -> None:
        if speed > 0:
            due = t0 + (ingest_ns - from_ns) / 1e9 / speed
            delay = due - self.clock.mono()
            if delay > 0.0005:
                await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)
        high = self.hub.high_water // 2
        while session.buffered() > high:  # speed 0: as fast as this client reads
            await asyncio.sleep(0.005)
        if session.closing or not session.is_open():
            raise asyncio.CancelledError

    # ---- book ----------------------------------------------------------------------

    def _partition(self, stream: str) -> int:
        pos = self.materializer.positions.get(stream)
        if pos is None:
            raise HistoryError("unknown_symbol", f"{stream}: no history known yet")
        return pos.partition

    async def _book(
        self, session: Session, req: Request, stream: str
    ) -> tuple[ViewKey, DepthView] | None:
        """Replay one stream's book; with ``"to":"live"``, the live view it may join."""
        exchange, symbol = parse_stream_key(stream)
        partition = self._partition(stream)
        k = self.kafka
        src = self.sources
        cp = await self._read(
            lambda: find_checkpoint(k, stream, req.from_ns, self.lookback_ms, sources=src)
        )
        if cp is None:
            oldest = await self._read(lambda: earliest_ns(k, k.book_topic, partition, sources=src))
            if oldest is None or req.from_ns < oldest:
                raise HistoryError(
                    "before_retention",
                    f"{stream}: from is before the retained history"
                    + (f" (oldest record at {oldest} ns)" if oldest else ""),
                )
            raise HistoryError("no_checkpoint", f"{stream}: no checkpoint before from yet")
        book = OrderBook(exchange, symbol)
        book.apply(cp.book)
        view: DepthView | None = None
        t0 = self.clock.mono()

        def reader(stop: threading.Event) -> Iterator[BookUpdate | Trade]:
            return stream_records(
                k,
                k.book_topic,
                cp.partition,
                cp.offset,
                stream,
                stop,
                until_ns=req.to_ns,
                sources=src,
            )

        async for rec in self._records(reader):
            if not isinstance(rec, BookUpdate):
                continue
            if rec.ingest_ns <= req.from_ns:
                book.apply(rec)
                continue
            if view is None:
                view = self._start_view(session, req, book)
            await self._pace(session, req.replay_speed, t0, req.from_ns, rec.ingest_ns)
            result = book.apply(rec)
            if result is ApplyResult.GAP:
                session.send_control(
                    "status",
                    exchange=exchange.name,
                    symbol=symbol,
                    status="stale",
                    reason="sequence gap",
                    replay_id=req.id,
                )
            elif result is ApplyResult.SNAPSHOT and view.last_sequence > book.sequence:
                view.reset()
                self._send(session, req, view.snapshot())
            elif result in (ApplyResult.APPLIED, ApplyResult.SNAPSHOT):
                msg = view.on_update()
                if msg is not None:
                    self._send(session, req, msg)
            if req.to_ns is None:
                join = await self._try_join(req, stream, book, view)
                if join is not None:
                    return join
        if view is None:
            view = self._start_view(session, req, book)
        if req.to_ns is None:
            while (join := await self._try_join(req, stream, book, view)) is None:
                await asyncio.sleep(0.01)
            return join
        return None

    def _start_view(self, session: Session, req: Request, book: OrderBook) -> DepthView:
        view = DepthView(book, req.depth)
        self._send(session, req, view.snapshot())
        return view

    def _send(self, session: Session, req: Request, msg: BookUpdate) -> None:
        msg.gateway_ns = self.clock.wall_ns()
        frame = (
            wire.book_pb(msg, replay=req.id)
            if session.binary
            else wire.book_json(msg, replay=req.id)
        )
        session.send_data(frame)

    async def _try_join(
        self, req: Request, stream: str, book: OrderBook, view: DepthView
    ) -> tuple[ViewKey, DepthView] | None:
        """The live view to hand the client to, once the replayed book equals the live
        one (:meth:`_complete` joins it right after ``replay_complete``)."""
        live = self.hub.market.book(stream)
        if live is None or live.stale:
            return None
        while live.sequence < book.sequence:  # replay read ahead of the live consumer
            await asyncio.sleep(0.005)
        if live.sequence != book.sequence:
            return None
        key = ViewKey(False, stream, req.depth, False)
        if self.hub.slot(key) is None:
            return None
        return key, view

    def _complete(
        self, session: Session, req: Request, joins: list[tuple[ViewKey, DepthView]]
    ) -> None:
        """``replay_complete``, then the live views joined, in one callback: no live
        message reaches the client before it (a client moves its replayed books to the
        live names on ``replay_complete``; a live delta before it would find no book to
        chain on). The joins pass the subscribe checks first, before anything is sent."""
        for key, _ in joins:
            new = not self.hub.subs.has(session, key)
            self._authorize_join(session, "book", key.name, req, new=new)
        session.send_control("replay_complete", id=req.id, live=req.to_ns is None)
        for key, view in joins:
            self._join(session, key, view)

    def _join(self, session: Session, key: ViewKey, view: DepthView) -> None:
        """Subscribe the client to the live view: its next delta chains on the replayed
        messages if the two views are at the same message, else a live snapshot."""
        slot = self.hub.slot(key)
        seamless = (
            slot is not None
            and slot.view.last_sequence == view.last_sequence
            and slot.view.sent_bids == view.sent_bids
            and slot.view.sent_asks == view.sent_asks
        )
        self.hub.add_view(session, key, snapshot=not seamless)

    # ---- trades --------------------------------------------------------------------

    async def _trades(self, session: Session, req: Request, stream: str) -> None:
        k = self.kafka
        partition = self.materializer.trade_partitions.get(stream, self._partition(stream))
        src = self.sources
        start = await self._read(
            lambda: offset_for_time(k, k.trades_topic, partition, req.from_ns, sources=src)
        )
        if start is None:
            if req.to_ns is None:
                self._join_trades(session, stream, req)
            return
        t0 = self.clock.mono()
        last_seq = 0

        def reader(stop: threading.Event) -> Iterator[BookUpdate | Trade]:
            return stream_records(
                k, k.trades_topic, partition, start, stream, stop, until_ns=req.to_ns, sources=src
            )

        async for rec in self._records(reader):
            if not isinstance(rec, Trade) or rec.ingest_ns <= req.from_ns:
                continue
            await self._pace(session, req.replay_speed, t0, req.from_ns, rec.ingest_ns)
            now = self.clock.wall_ns()
            session.send_data(
                wire.trade_pb(rec, now, replay=req.id)
                if session.binary
                else wire.trade_json(rec, now, replay=req.id)
            )
            last_seq = rec.sequence
            if req.to_ns is None and self._trades_caught_up(stream, last_seq):
                self._join_trades(session, stream, req)
                return
        if req.to_ns is None:
            while not self._trades_caught_up(stream, last_seq):
                await asyncio.sleep(0.01)
            self._join_trades(session, stream, req)

    def _trades_caught_up(self, stream: str, last_seq: int) -> bool:
        counters = self.hub.market.counters(stream)
        return counters is None or counters.last_trade_sequence <= last_seq

    def _join_trades(self, session: Session, stream: str, req: Request) -> None:
        key = StreamKey("trades", stream)
        self._authorize_join(
            session, "trades", stream, req, new=not self.hub.subs.has(session, key)
        )
        self.hub.add_stream(session, key)


def _client(session: Session) -> str:
    """Whom per-client budgets count: the token subject, else the address group."""
    return f"sub:{session.subject}" if session.subject else f"ip:{address_group(session.remote)}"
