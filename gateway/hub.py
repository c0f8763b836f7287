"""Fan-out: book events in, encoded-once frames out to every subscriber of a view.

A *view* is one (stream or aggregated symbol, depth, speed). Each view message is
encoded once per format in use and the same bytes are queued to every subscriber;
queues are written at the end of the consumer batch (one frame per message, or one
batch frame for clients that opted in), so there is no per-client await on the path.

Each view keeps its recent messages (``core.history``) so a client that reconnects
with ``since`` gets exactly what it missed (docs/protocol.md §4.10); a view whose last
subscriber left is kept ``resume_ms`` for that. The ``bbo`` channel has its own fast
path (``gateway.bbo``), run first for every record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from core import packed
from core.book import ApplyResult
from core.history import ViewHistory
from core.market import Market
from core.types import BookUpdate, Trade, parse_stream_key
from core.views import DepthSource, DepthView
from gateway import framing
from gateway.bbo import CHANNEL as BBO
from gateway.bbo import BboFanout
from gateway.candles import CandleChannel, CandleKey
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.outbox import DELTA, KEEP
from gateway.session import Session
from gateway.snapshots import SnapshotFrames
from gateway.subscriptions import StreamKey, Subscribers, Subscriptions, ViewKey
from mdgw import metrics, tracing
from schemas import wire

log = logging.getLogger(__name__)


class ViewSource(DepthSource, Protocol):
    """A book or aggregated book a view reads, with its staleness."""

    stale: bool
    stale_reason: str


NO_SUBSCRIBERS: Subscribers[Session] = Subscribers()


@dataclass(eq=False, slots=True)
class ViewSlot:
    """A view's state; its subscribers are in the registry under the same key."""

    key: ViewKey
    view: DepthView
    source: ViewSource
    history: ViewHistory[HistoryEntry]
    """Recent messages, for resumes (docs/protocol.md §4.10)."""
    stale: bool = False
    dirty: bool = False
    idle_since: int = 0
    """Monotonic ns since the view has had no subscriber (0: it has some); kept for
    ``resume_ms`` so a lone client that lost its connection can resume."""


HistoryEntry = tuple[Any, ...]
"""A delivered view message: its JSON and protobuf frames (None: nobody took that
format then), then, when one is missing, the message itself (``core.packed``, to
encode it on a resume). One flat tuple of atoms: thousands per view cost the
garbage collector nothing."""


def history_entry(msg: BookUpdate, json: bytes | None, pb: bytes | None) -> HistoryEntry:
    if json is not None and pb is not None:
        return (json, pb)
    return packed.pack(msg, (json, pb))


def entry_frame(entry: HistoryEntry, binary: bool, aggregated: bool) -> bytes:
    """The entry's frame in this format (encoded now if nobody took it when delivered)."""
    frame: bytes | None = entry[1] if binary else entry[0]
    if frame is None:
        frame = _encode_snapshot(packed.unpack(entry, 2), binary, aggregated)
    return frame


def status_fields(key: ViewKey) -> dict[str, str]:
    return stream_fields(key.name, key.aggregated)


def stream_fields(name: str, across_venues: bool) -> dict[str, str]:
    """What names a stream in a ``status``: a venue's stream, or a canonical symbol."""
    if across_venues:
        return {"symbol": name}
    exchange, symbol = parse_stream_key(name)
    return {"exchange": exchange.name, "symbol": symbol}


def _encode_snapshot(snap: BookUpdate, binary: bool, aggregated: bool) -> bytes:
    return (
        wire.book_pb(snap, aggregated=aggregated)
        if binary
        else wire.book_json(snap, aggregated=aggregated)
    )


FLUSH_SLICE_NS = 5_000_000
"""Writing to clients pauses after 5 ms to let handshakes and control messages run."""

CHECK_SLICE_NS = 5_000_000
"""A freshness check (``check_slow``) over thousands of clients runs in slices of 5 ms
with the loop's I/O between them: a ping waits for one slice, not the whole check."""

FRESH_CHUNK = 32
"""Clients with nothing old enough to look at, passed over per step of a freshness check."""

RESYNC_SHARE = 50
"""Resyncs in one freshness check stop after ``max_lag / RESYNC_SHARE`` (10 ms at 500 ms;
the check runs every ``max_lag / 5``, so a tenth of the loop at most): a gateway short of
CPU that resynced every drained client at once fell further behind and resynced them all
again (bench/README.md). The rest wait, longest behind first, for the next check."""


class Hub:
    """Owns the views and subscriptions; turns market events into client frames."""

    def __init__(
        self,
        market: Market,
        *,
        clock: Clock = SYSTEM_CLOCK,
        high_water: int = 1 << 20,
        slow_timeout: float = 5.0,
        resync_interval: float = 1.5,
        max_lag_ms: int = 500,
        resume_messages: int = 4096,
        resume_ms: int = 10_000,
    ) -> None:
        self.market = market
        self.time = clock
        """The gateway's clock, shared with the server and replay."""
        self.clock = clock.wall_ns
        """Wall clock (ns): the ``gateway_ts`` stamped on messages."""
        self.mono = clock.mono_ns
        """Monotonic clock (ns): ages and timeouts."""
        self.arrived_ns = 0
        """Monotonic ns the records being handled reached the process (0: not handling
        consumed records); a message's age for the freshness policy counts from here."""
        self.high_water = high_water
        self.slow_timeout = slow_timeout
        self.resync_interval = resync_interval
        """Least seconds between two resyncs of one client."""
        self.work_clock: Callable[[], int] = time.perf_counter_ns
        """Measures the time resyncs take (:data:`RESYNC_SHARE`); tests replace it."""
        self.max_lag_ns = max_lag_ms * 1_000_000
        self.resume_messages = resume_messages
        self.resume_ns = resume_ms * 1_000_000
        self.sessions: set[Session] = set()
        self.subs: Subscriptions[Session] = Subscriptions()
        """Who subscribes to what (the only place subscriptions are kept)."""
        self.views: dict[ViewKey, ViewSlot] = {}
        self.by_name: dict[str, list[ViewSlot]] = {}
        self.snapshot_frames = SnapshotFrames(_encode_snapshot, self.clock)
        """Snapshot frames encoded once per view version, like deltas."""
        self._touched: list[Session] = []
        self.on_written: Callable[[int], None] | None = None
        """Called after each flush with ``flushed``: data queued when ``queued_mark()``
        was at most that is written (the fanout hop's end)."""
        self.flushed = 0
        """Entries of the flush queue processed so far (it is first in, first out)."""
        self._resumed = False
        """The last flush ran out of its slice: the next one goes on in the same order."""
        self._continuing = False
        """A flush slice is scheduled for the next loop turn."""
        self._waiting: set[Session] = set()
        """Sessions with queued data held back while their transport drains."""
        self._watch: set[Session] = set()
        """Sessions with written data not yet confirmed delivered (freshness checks)."""
        self._behind: set[Session] = set()
        self._slow_steps: Iterator[None] | None = None
        """A ``check_slow`` under way (it runs in slices)."""
        self._judge_from = 0
        """Monotonic ns before which no client is judged by its probes' answers: the loop
        was held until a check period before (``loop_held``, ``_unsure``)."""
        self._rotation = 0
        self._hb_round: list[Session] = []
        self._hb_step = 1
        self._hb_ticks = 0
        """``heartbeat_slice`` calls so far: a round starts every ``slices`` of them."""
        self.frames_out = 0
        self._idle: set[ViewKey] = set()
        """Views kept without subscribers, for resumes (``drop_idle``)."""
        self.bbo = BboFanout(self)
        """The bbo channel (docs/protocol.md §4.8)."""
        self.candles = CandleChannel(self)
        """The candles channel: its builders ride on the registry and the outboxes here."""
        self.on_first_session: Callable[[], None] | None = None
        """Called when a session joins a hub that had none (the consumer's fetch pace)."""

    # ---- subscriptions -------------------------------------------------------------

    def source(self, key: ViewKey) -> ViewSource | None:
        m = self.market
        return m.aggregated(key.name) if key.aggregated else m.book(key.name)

    def slot(self, key: ViewKey) -> ViewSlot | None:
        """The view slot for key, created on first use; None if the source is unknown."""
        slot = self.views.get(key)
        if slot is None:
            src = self.source(key)
            if src is None:
                return None
            view = DepthView(src, key.depth)
            history: ViewHistory[HistoryEntry] = ViewHistory(
                self.resume_messages, self.resume_ns, view.last_sequence
            )
            slot = ViewSlot(key, view, src, history, stale=src.stale)
            self.views[key] = slot
            self.by_name.setdefault(key.name, []).append(slot)
        return slot

    def subscribers(self, key: ViewKey | StreamKey) -> Subscribers[Session]:
        return self.subs.get(key) or NO_SUBSCRIBERS

    def views_of(self, session: Session) -> list[ViewKey]:
        return [k for k in self.subs.of(session) if isinstance(k, ViewKey)]

    def add_view(self, session: Session, key: ViewKey, *, snapshot: bool = True) -> bool:
        """Subscribe a session; it gets the view's snapshot unless it already holds it."""
        slot = self.slot(key)
        if slot is None:
            return False
        self.subs.add(session, key)
        slot.idle_since = 0
        if slot.stale:
            session.send_control(
                "status", **status_fields(key), status="stale", reason="waiting for snapshot"
            )
        elif snapshot:
            self.send_snapshot(session, slot)
        return True

    def remove_view(self, session: Session, key: ViewKey) -> None:
        if self.subs.remove(session, key):
            self._drop_slot(key)

    def _drop_slot(self, key: ViewKey) -> None:
        """The view's last subscriber left: its state goes, after ``resume_ms`` when it
        keeps a history (``drop_idle``)."""
        slot = self.views.get(key)
        if slot is None:
            return
        if self.resume_ns and self.resume_messages and not slot.stale:
            slot.idle_since = self.mono() or 1
            self._idle.add(key)
            return
        self._forget_slot(slot)

    def keeps_idle_views(self) -> bool:
        """Views without subscribers are kept (for resumes) until ``drop_idle`` drops them."""
        return bool(self._idle)

    def drop_idle(self) -> None:
        """Forget views that have had no subscriber for ``resume_ms``."""
        cutoff = self.mono() - self.resume_ns
        for key in list(self._idle):
            slot = self.views.get(key)
            if slot is None or not slot.idle_since:
                self._idle.discard(key)
            elif slot.idle_since < cutoff:
                self._forget_slot(slot)

    def _forget_slot(self, slot: ViewSlot) -> None:
        key = slot.key
        del self.views[key]
        self._idle.discard(key)
        self.snapshot_frames.drop(key)
        slots = self.by_name.get(key.name, [])
        if slot in slots:
            slots.remove(slot)
        if not slots:
            self.by_name.pop(key.name, None)

    def add_stream(self, session: Session, key: StreamKey) -> bool:
        """Subscribe to trades or stats of a stream; False if already subscribed."""
        return self.subs.add(session, key)

    def remove_stream(self, session: Session, key: StreamKey) -> None:
        self.subs.remove(session, key)

    def add_session(self, session: Session) -> None:
        session.clock = self.mono
        if not self.sessions and self.on_first_session is not None:
            self.on_first_session()
        self.sessions.add(session)

    def remove_session(self, session: Session) -> None:
        for key in self.subs.drop(session):
            if isinstance(key, ViewKey):
                self._drop_slot(key)
            elif key.channel == BBO:
                self.bbo.board.close(key.name)
            elif isinstance(key, CandleKey):
                self.candles.forget(key)
        self.sessions.discard(session)
        self._waiting.discard(session)
        self._watch.discard(session)
        self._behind.discard(session)

    def send_snapshot(self, session: Session, slot: ViewSlot) -> None:
        key = slot.key
        frame = self.snapshot_frames.frame(
            key, slot.view.snapshot(), session.binary, key.aggregated
        )
        session.send_data(frame, self.mono())
        session.burst += len(frame)  # snapshots in flight do not count against high water

    def resume(self, key: ViewKey, since: int, binary: bool) -> list[bytes] | None:
        """The view's messages after ``since`` in this format (docs/protocol.md §4.10),
        or None when they are not all held (the caller sends a snapshot)."""
        slot = self.views.get(key)
        if slot is None or slot.stale:
            return None
        entries = slot.history.since(since, self.mono())
        if entries is None:
            return None
        return [entry_frame(e, binary, key.aggregated) for e in entries]

    def send_resumed(self, session: Session, frames: list[bytes]) -> None:
        """A resumed view's missed messages, written now in one write (in order, after
        anything queued), allowed above high water like a snapshot."""
        now = self.mono()
        opcode = framing.BINARY if session.binary else framing.TEXT
        for frame in frames:
            session.out.add(framing.frame(opcode, frame) if session.framed else frame, DELTA, now)
        session.flush(force=True)
        session.burst += sum(map(len, frames))

    def resync(self, session: Session, names: tuple[str, ...]) -> int:
        """Fresh snapshots of the session's book views on these streams/symbols."""
        sent = 0
        for key in self.views_of(session):
            if key.name in names:
                slot = self.views.get(key)
                if slot is not None and not slot.stale:
                    self.send_snapshot(session, slot)
                    sent += 1
        return sent

    # ---- market events -------------------------------------------------------------

    def on_book(self, stream: str, result: ApplyResult, agg_symbol: str | None) -> None:
        """After the market applied a book record: update views of the stream (and agg)."""
        if self.bbo.topics:  # the fast path first: the smallest message goes out first
            self.bbo.on_book(stream, result)
        slots = self.by_name.get(stream)
        if slots:
            self._update_slots(slots, result)
        if agg_symbol is not None:
            agg_slots = self.by_name.get(agg_symbol)
            if agg_slots:
                self._update_slots(agg_slots, ApplyResult.APPLIED)

    def _update_slots(self, slots: list[ViewSlot], result: ApplyResult) -> None:
        for slot in slots:
            if result is ApplyResult.GAP:
                self.mark_stale(slot, slot.source.stale_reason or "sequence gap")
            elif slot.stale:
                if result is ApplyResult.SNAPSHOT or not slot.source.stale:
                    self.recover(slot)
            elif result is ApplyResult.APPLIED or result is ApplyResult.SNAPSHOT:
                if slot.key.conflated:
                    slot.dirty = True
                else:
                    msg = slot.view.on_update()
                    if msg is not None:
                        self.deliver(slot, msg)

    def mark_stale(self, slot: ViewSlot, reason: str) -> None:
        if slot.stale:
            return
        slot.stale = True
        fields = status_fields(slot.key)
        for s in self.subscribers(slot.key):
            s.send_control("status", **fields, status="stale", reason=reason)

    def recover(self, slot: ViewSlot) -> None:
        """A stale view's source is whole again: reset it and send fresh snapshots."""
        slot.stale = False
        slot.dirty = False
        slot.view.reset()
        slot.history.reset(slot.view.last_sequence)
        for s in self.subscribers(slot.key):
            if s.behind_since is None:
                self.send_snapshot(s, slot)  # behind: check_slow sends one when drained

    def all_stale(self, reason: str) -> None:
        """Every view goes stale (Kafka unreachable): subscribers are told at once."""
        for slot in list(self.views.values()):
            self.mark_stale(slot, reason)

    def recover_all(self) -> None:
        """Kafka is back: views whose source is whole get fresh snapshots."""
        for slot in list(self.views.values()):
            if slot.stale and not slot.source.stale:
                self.recover(slot)

    def stream_lost(self, stream: str, reason: str) -> None:
        """The stream's book was dropped (partition revoked): subscribers go stale."""
        for slot in self.by_name.get(stream, []):
            self.mark_stale(slot, reason)
        self.bbo.stream_lost(stream, reason)

    def data_ns(self) -> int:
        """When a message made now from consumed records counts as queued: when they
        reached the process (time waiting for the loop is the client's lag too)."""
        return self.arrived_ns or self.mono()

    def deliver(self, slot: ViewSlot, msg: BookUpdate) -> None:
        msg.gateway_ns = self.clock()
        now = self.data_ns()
        agg = slot.key.aggregated
        # tracing hook: encode/broadcast spans when a sampled record caused this message
        span = tracing.encode_started(slot.key.name, slot.key.depth) if tracing.ENABLED else None
        subscribers = self.subscribers(slot.key)
        jframe = wire.book_json(msg, aggregated=agg) if subscribers.json else None
        pframe = wire.book_pb(msg, aggregated=agg) if subscribers.pb else None
        self.queue_delta(subscribers, jframe, pframe, now)
        if msg.is_snapshot:  # the view restarted its chain
            slot.history.reset(msg.sequence)
        else:
            slot.history.append(
                msg.sequence, msg.prev_sequence, history_entry(msg, jframe, pframe), now
            )
        if span is not None:  # tracing hook: encode ends, broadcast runs until flush()
            tracing.encode_finished(span, len(subscribers))

    def on_trade(self, trade: Trade) -> None:
        self.candles.on_trade(trade)
        subs = self.subs.get(StreamKey("trades", trade.stream))
        if subs is None:
            return
        wall = self.clock()
        # trades are never dropped (guarantee 5)
        self.queue_keep(
            subs,
            wire.trade_json(trade, wall) if subs.json else b"",
            wire.trade_pb(trade, wall) if subs.pb else b"",
        )

    def queue_delta(
        self,
        subs: Subscribers[Session],
        json_frame: bytes | None,
        pb_frame: bytes | None,
        now: int,
    ) -> None:
        """A topic's droppable message (book data, bbo), encoded once per format (None:
        no subscriber of that format), to each subscriber not behind; one behind counts
        it as dropped. Framed once for the plain clients; written with the next flush."""
        touched = self._touched
        for group, payload, opcode in (
            (subs.json, json_frame, framing.TEXT),
            (subs.pb, pb_frame, framing.BINARY),
        ):
            if not group or payload is None:
                continue
            framed = framing.frame(opcode, payload)
            for s in group:
                if s.behind_since is None:
                    # Outbox.add for a DELTA, inlined: this loop runs per client per message
                    pending = s.out.pending
                    if not pending:
                        s.out.pending_since = now
                        touched.append(s)
                    pending.append(framed if s.framed else payload)
                else:
                    s.dropped += 1

    def queue_keep(self, subs: Subscribers[Session], json_frame: bytes, pb_frame: bytes) -> None:
        """A topic's message, encoded once per format, to each subscriber, never dropped
        (like trades); written with the next flush. Framed once for the plain clients."""
        now = self.data_ns()
        touched = self._touched
        for group, payload, opcode in (
            (subs.json, json_frame, framing.TEXT),
            (subs.pb, pb_frame, framing.BINARY),
        ):
            if not group:
                continue
            framed = framing.frame(opcode, payload)
            for s in group:
                if s.out.add(framed if s.framed else payload, KEEP, now):
                    touched.append(s)

    def tick_conflated(self) -> None:
        """Timer (every conflation interval): one message per dirty conflated view."""
        for slot in list(self.views.values()):
            if slot.dirty and not slot.stale:
                slot.dirty = False
                msg = slot.view.flush()
                if msg is not None:
                    self.deliver(slot, msg)
        self.flush_slice()
        if self._idle:
            self.drop_idle()

    def flush(self, budget_ns: int = 0) -> int:
        """Write every queued frame (one write per client); a client whose transport
        still holds earlier bytes keeps its data queued (``waiting``) until it drains.

        The order rotates from one flush to the next, so no client is always served
        first. With ``budget_ns``, writing stops when it is spent and the rest stays
        queued (``backlog``): the caller lets handshakes and control messages run, then
        flushes again."""
        touched, self._touched = self._touched, []
        waiting = self._waiting
        if waiting:
            touched.extend(waiting)
            waiting.clear()
        if len(touched) > 1 and not self._resumed:  # a new pass: another client first
            self._rotation = k = (self._rotation + 7919) % len(touched)
            touched = touched[k:] + touched[:k]
        self._resumed = False
        frames = 0
        processed = len(touched)
        hw = self.high_water
        watch = self._watch
        deadline = self.mono() + budget_ns if budget_ns else 0
        for i, s in enumerate(touched):
            if deadline and not i & 63 and i and self.mono() > deadline:
                # the rest first next time, in this order (rotating again could send the
                # same clients to the back slice after slice)
                self._touched = touched[i:] + self._touched
                self._resumed = True
                processed = i
                break
            if s.framed:
                n, buffered = s.flush_framed()
            else:
                n = s.flush()
                buffered = s.buffered()
            if n > 0:
                frames += n
                watch.add(s)
                unsent = buffered
            elif n < 0:  # held: its transport still holds earlier bytes
                waiting.add(s)
                unsent = buffered + s.out.size()
            if n and s.behind_since is None and unsent > hw + s.burst:
                self.fall_behind(s, "buffer")
            if s.burst and buffered <= hw >> 2:
                s.burst = 0
        self.frames_out += frames
        self.flushed += processed
        if self.on_written is not None:
            self.on_written(self.flushed)
        if tracing.ENABLED:  # tracing hook: close the broadcast spans of what was written
            tracing.broadcast_flushed()
        return frames

    def flush_slice(self) -> None:
        """Write for at most :data:`FLUSH_SLICE_NS`; what is left goes on at the next loop
        turn, after the I/O that came meanwhile (handshakes, control messages). The hot
        path and every timer flush this way: a timer writing a whole backlog at once
        would hold the loop for as long as the backlog takes. One slice per turn: while
        one is scheduled, new data waits for it (a batch, a conflation tick and a
        heartbeat in one turn wrote a slice each)."""
        if self._continuing:
            return  # the slice already scheduled writes this too, after the I/O
        self.flush(FLUSH_SLICE_NS)
        if not self.backlog:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a synchronous caller (tests, tools): write the rest now
            self.flush()
            return
        self._continuing = True
        loop.call_soon(self._continue)

    def _continue(self) -> None:
        self._continuing = False
        self.flush_slice()

    def queued_mark(self) -> int:
        """``flushed`` will reach this once everything queued now is written (within the
        first slice of a pass, whose order is rotated, a client queued later may be
        written before one queued earlier: a measure, not a promise)."""
        return self.flushed + len(self._touched) + len(self._waiting)

    @property
    def backlog(self) -> bool:
        """Data is queued for some client and waits for the next flush."""
        return bool(self._touched)

    def queue_all(self, sessions: Iterable[Session], json_frame: bytes, pb_frame: bytes) -> None:
        """One frame per format to these sessions, written with their next flush
        (droppable: a heartbeat that waited behind a slow client's data means nothing)."""
        now = self.mono()
        touched = self._touched
        # [binary][framed]: frames for plain clients, bare payloads for the others
        choice = (
            (json_frame, framing.frame(framing.TEXT, json_frame)),
            (pb_frame, framing.frame(framing.BINARY, pb_frame)),
        )
        for s in sessions:
            if s.behind_since is None and s.out.add(choice[s.binary][s.framed], DELTA, now):
                touched.append(s)

    def heartbeat_slice(self, json_frame: bytes, pb_frame: bytes, slices: int) -> None:
        """Heartbeats to the next 1/``slices`` of the sessions: spread over the interval,
        so 10,000 clients never cost 10,000 writes in one loop turn. A round is ``slices``
        calls (one interval) however few the sessions: each gets one heartbeat a round."""
        slices = max(1, slices)
        if self._hb_ticks % slices == 0:
            self._hb_round = list(self.sessions)
            self._hb_step = max(1, -(-len(self._hb_round) // slices))
        self._hb_ticks += 1
        part = self._hb_round[-self._hb_step :]
        del self._hb_round[-self._hb_step :]
        self.queue_all((s for s in part if s in self.sessions), json_frame, pb_frame)
        self.flush_slice()

    def send_stats(self, now_ns: int) -> None:
        for key, subs in list(self.subs.channel("stats").items()):
            stats = self.market.stats(key.name, now_ns)
            if stats is not None:
                self.queue_keep(subs, wire.stats_json(stats), wire.stats_pb(stats))
        self.flush_slice()

    # ---- freshness (docs/protocol.md §4.6) -------------------------------------------

    def fall_behind(self, s: Session, reason: str) -> None:
        """The client is behind: its queued book messages go, no more are queued until
        it has drained; then ``check_slow`` resyncs it (or closes it)."""
        now = self.mono()
        s.behind_since = now / 1e9
        s.behind_reason = reason
        self._behind.add(s)
        held = s.unsent()
        dropped = s.out.drop_deltas()
        # Nothing in our queues or the kernel's (the lateness is past them: the peer's
        # buffers, its reading) and nothing dropped: it may go on without a resync if no
        # message is dropped for it until it has caught up (docs/protocol.md §4.6).
        s.dropped_before = s.dropped if not (held or dropped) else -1
        s.dropped += dropped
        metrics.BEHIND.labels(reason).inc()
        if dropped:
            metrics.DELTAS_DROPPED.inc(dropped)
        # told at once, after what it was already sent: its books pause until a resync
        # (or "caught_up" when it lost nothing); it never sits behind without knowing
        self.tell_streams(s, "behind", reason=reason, lag_ms=s.out.age(now) // 1_000_000)

    def tell_streams(self, s: Session, status: str, **fields: object) -> None:
        """One ``status`` per stream the client follows (book views and bbo), one write."""
        streams: dict[tuple[str, ...], dict[str, str]] = {}
        for key in self.subs.of(s):
            if isinstance(key, ViewKey):
                f = status_fields(key)
            elif key.channel == BBO:
                f = stream_fields(key.name, ":" not in key.name)
            else:
                continue
            streams[tuple(f.values())] = f
        if streams:
            s.send_controls([{**f, "status": status, **fields} for _, f in sorted(streams.items())])

    @property
    def check_period_s(self) -> float:
        """Seconds between two freshness checks (``check_slow``): a fifth of ``max_lag``."""
        return max(0.01, self.max_lag_ns / 5e9)

    def loop_held(self) -> None:
        """The loop was held (a long callback, a collection, no core) until now: the
        answers to probes that came meanwhile wait unread in its sockets, and an age
        counts the stall as if the clients had not read. For the next checks the loop
        reads those answers and probes what they did not cover, and a client that keeps
        up has answered; until then (two and a half check periods, the last of them a
        margin for the timer's jitter) no verdict rests on a probe (``_unsure``). Data
        still held in the process (and, with probes off, the kernel's send queue, asked
        at the check itself) is judged as always.

        A loop that is late all the time (overload) must still judge: after a grace,
        a check period of verdicts comes before the next grace."""
        now = self.mono()
        period = int(self.check_period_s * 1e9)
        if now < self._judge_from + period:
            return
        self._judge_from = now + int(2.5 * period)
        metrics.VERDICTS_PAUSED.inc()

    def _unsure(self, s: Session, now: int) -> bool:
        """``s``'s age rests on written data only a probe's answer confirms, and such
        answers may wait unread since a stall of the loop (``loop_held``); data it still
        holds unwritten past ``max_lag`` is sure."""
        out = s.out
        if now >= self._judge_from or not s.probe_ns or not out.marks:
            return False
        return not (out.pending and now - out.pending_since > self.max_lag_ns)

    def check_fresh(self) -> None:
        """Find clients whose oldest unread message is older than ``max_lag`` (all at
        once; ``check_slow`` runs the same steps in slices)."""
        for _ in self._fresh_steps():
            pass

    def _fresh_steps(self) -> Iterator[None]:
        """``check_fresh``, one step per client with something to look at (a probe, an
        ioctl, a verdict), one per :data:`FRESH_CHUNK` clients with nothing yet.

        With probes, a client whose data went quiet gets a probe of its own once its
        oldest unconfirmed write is a probe interval old; without, the kernel is asked
        (one ioctl) only about a client whose oldest unconfirmed write is older than
        half of ``max_lag``."""
        max_lag = self.max_lag_ns
        half = max_lag // 2
        mono = self.mono
        now = mono()
        cheap = 0
        for s in list(self._watch):  # a copy: other callbacks run between slices
            marks = s.out.marks
            if marks and now - marks[0][1] < (s.probe_ns or half):
                # the common case, first and cheap (10,000 clients every check): nothing
                # unconfirmed is old enough for a probe, an ioctl or a verdict yet. A step
                # (a look at the budget) and a clock read per client cost more than this
                # look, so they come once per FRESH_CHUNK such clients.
                cheap += 1
                if cheap == FRESH_CHUNK:
                    cheap = 0
                    yield
                    now = mono()
                continue
            cheap = 0
            yield  # before each client with work to do, as before
            out = s.out
            marks = out.marks
            if s.behind_since is not None or s.replays or s not in self.sessions:
                # a running replay streams history as fast as the client reads it, paced
                # by the replay itself: its age is not live data's (the high-water mark
                # still applies)
                continue
            now = mono()
            if marks:
                if s.probe_ns:
                    s.send_probe()  # due when the oldest unconfirmed write is an interval old
                elif now - marks[0][1] > half:
                    out.confirm(s.unsent())
            if not marks and not out.pending:
                self._watch.discard(s)
                continue
            if out.age(now) > max_lag and not self._unsure(s, now):
                self.fall_behind(s, "lag")
        for s in list(self._waiting):  # held back by a full kernel queue: nothing written
            if s.behind_since is None and s.out.age(self.mono()) > max_lag:
                self.fall_behind(s, "lag")
                yield

    def drained(self, s: Session, now: int) -> bool:
        """A client behind has received what was old: its transport is below a quarter of
        the high-water mark and the oldest data it has not confirmed is younger than half
        of ``max_lag`` (with probes: one probe interval, the check's own period and timer
        jitter)."""
        if s.buffered() > self.high_water // 4:
            return False
        out = s.out
        if s.probe_ns:
            s.send_probe()  # no data goes to a client behind: ask on its own
        elif out.marks:
            out.confirm(s.unsent())
        return out.age(now) <= self.max_lag_ns // 2

    def check_slow(self, close: Callable[[Session, int, str], None], budget_ns: int = 0) -> bool:
        """Find clients behind (``check_fresh``); resync those that have caught up, at
        most once per ``resync_interval`` each (a client that keeps falling behind would
        otherwise cost a full snapshot every few hundred ms) and for
        :data:`RESYNC_SHARE` of the time; close (1013) those that stay behind for
        ``slow_timeout``.

        With ``budget_ns`` the check stops once it has run that long and returns False:
        the caller lets the loop poll its sockets (a ping, a handshake must not wait for
        a check over 10,000 clients) and calls again to go on where it stopped. A new
        check starts only when the last one is done."""
        steps = self._slow_steps
        if steps is None:
            steps = self._slow_steps = self._slow_check(close)
        work = self.work_clock
        deadline = work() + budget_ns if budget_ns else 0
        for _ in steps:
            if deadline and work() > deadline:
                return False
        self._slow_steps = None
        return True

    def _slow_check(self, close: Callable[[Session, int, str], None]) -> Iterator[None]:
        """``check_slow``'s work, one client per step."""
        yield from self._fresh_steps()
        mono = self.mono()
        now = mono / 1e9
        due: list[Session] = []
        for s in list(self._behind):
            yield
            if s.behind_since is None or s.closing or s not in self.sessions:
                self._behind.discard(s)
                continue
            if self.drained(s, mono):
                if s.dropped == s.dropped_before:
                    self.caught_up(s)  # late, but nothing was dropped: its books are whole
                elif s.last_resync is None or now - s.last_resync >= self.resync_interval:
                    due.append(s)
                # else: caught up, but resynced lately; its next resync comes when due
            elif now - s.behind_since > self.slow_timeout and not self._unsure(s, mono):
                metrics.SLOW_DISCONNECTS.inc()
                self.remove_session(s)
                close(s, 1013, "slow consumer")
        due.sort(key=lambda s: s.behind_since or 0.0)
        work = self.work_clock
        share = self.max_lag_ns // RESYNC_SHARE
        spent = 0
        for i, s in enumerate(due):
            if i and spent > share:
                metrics.RESYNCS_DEFERRED.inc(len(due) - i)
                break
            yield
            if s.behind_since is None or s.closing or s not in self.sessions:
                continue  # changed while other callbacks ran
            t = work()
            self.resync_behind(s, now)
            spent += work() - t

    def caught_up(self, s: Session) -> None:
        """A client judged behind by its probe alone (nothing held in our queues or
        the kernel's) that lost no message while behind is current again as it is: a
        resync would only resend what it has."""
        s.behind_since = None
        self._behind.discard(s)
        metrics.SLOW_CAUGHT_UP.inc()
        self.tell_streams(s, "caught_up")

    def resync_behind(self, s: Session, now: float) -> None:
        """A drained client gets ``status resync`` and a fresh snapshot per book view."""
        s.behind_since = None
        s.last_resync = now
        s.resyncs += 1
        self._behind.discard(s)
        metrics.SLOW_RESYNCS.inc()
        with s.cork():  # every status and snapshot in one write
            for key in self.subs.of(s):
                if not isinstance(key, ViewKey):
                    if key.channel == BBO:
                        self.bbo.resync(s, key.name)
                    continue
                slot = self.views.get(key)
                if slot is None or slot.stale:
                    continue
                fields = status_fields(key)
                s.send_control("status", **fields, status="resync", reason="slow consumer")
                self.send_snapshot(s, slot)
