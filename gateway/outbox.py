"""A client's outgoing data and how old it is: pure bookkeeping, no sockets, no clock.

Data for a client waits in ``pending`` (in this process, where book deltas can
still be dropped) until the session writes it; each write leaves a *mark*, the
byte offset where it ends and the time its oldest message was queued. Given how
many written bytes have not reached the peer yet (the transport's buffer plus the
kernel's send queue, docs/protocol.md §4.6), ``age`` is the age of the oldest
message the client has not received: what the freshness policy compares with
``max_lag_ms``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

DELTA = 1
"""Kind of a pending message that may be dropped when the client is behind (book data,
heartbeats): a fresh snapshot replaces it. Anything else (trades) is never dropped."""
KEEP = 0

PROBE_MAGIC = b"mdgw"
"""Prefix of the gateway's probe pings (websockets' keep-alive pings use 4 random bytes)."""
PROBE_LEN = len(PROBE_MAGIC) + 8
"""A probe's payload: the prefix and an 8-byte sequence number."""

_MAX_MARKS = 64
"""Marks kept per client; past that, neighbours merge (ages only get older: safe)."""


@dataclass(eq=False, slots=True)
class Outbox:
    pending: list[bytes] = field(default_factory=list)
    keep: list[int] = field(default_factory=list)
    """Indexes in ``pending`` of the messages never dropped (``KEEP``); the rest are
    droppable deltas (the common case costs no bookkeeping)."""
    pending_since: int = 0
    """When the oldest pending message was queued (ns; 0 when nothing is pending)."""
    written: int = 0
    """Bytes handed to the transport so far."""
    marks: deque[tuple[int, int]] = field(default_factory=deque)
    """(end offset of a write, when its oldest message was queued), oldest first."""
    probe_seq: int = 0
    probe_payload: bytes = b""
    """The outstanding (or last) probe's payload, what its pong must carry back."""
    probe_at: int = -1
    """Offset the outstanding probe confirms when answered (-1: none outstanding)."""
    probe_sent: int = 0
    """When the last probe was written (monotonic ns; 0: never)."""

    def add(self, payload: bytes, kind: int, now: int) -> bool:
        """Queue one message; True when it is the first of this tick (caller schedules)."""
        pending = self.pending
        first = not pending
        if first or now < self.pending_since:
            self.pending_since = now
        if kind == KEEP:
            self.keep.append(len(pending))
        pending.append(payload)
        return first

    def take(self) -> list[bytes]:
        """Everything pending, in order, for one write; the caller then calls ``wrote``."""
        out = self.pending
        self.pending = []
        self.keep = []
        return out

    def wrote(self, size: int, queued_at: int) -> None:
        """``size`` bytes were handed to the transport; their oldest message is from
        ``queued_at`` (pass 0 for writes that carry no data, e.g. control replies)."""
        self.written += size
        if not queued_at:
            return
        marks = self.marks
        # Bytes written earlier but queued later (a snapshot at subscribe, then data that
        # had waited for the loop) are unread while these are: their age is this one's.
        while marks and marks[-1][1] >= queued_at:
            marks.pop()
        if len(marks) >= _MAX_MARKS:
            _, at = marks.popleft()
            end2, at2 = marks.popleft()
            marks.appendleft((end2, min(at, at2)))
        marks.append((self.written, queued_at))
        self.pending_since = 0

    def size(self) -> int:
        """Bytes pending (payloads only)."""
        return sum(map(len, self.pending))

    def drop_deltas(self) -> int:
        """Drop pending droppable messages (the client is behind); returns how many."""
        pending, keep = self.pending, self.keep
        dropped = len(pending) - len(keep)
        if not dropped:
            return 0
        self.pending = [pending[i] for i in keep]
        self.keep = list(range(len(keep)))
        if not keep:
            self.pending_since = 0
        return dropped

    # ---- probes: a ping after the data; its pong says the client has read all before it --

    def probe_due(self, now: int, interval: int) -> bool:
        """No probe outstanding and the oldest unconfirmed write is ``interval`` old: a
        client receiving a message every few hundred ms is not probed after each one."""
        marks = self.marks
        return self.probe_at < 0 and bool(marks) and now - marks[0][1] >= interval

    def probe_with_data(self, now: int, interval: int) -> bool:
        """A probe may ride on this data write: none outstanding and none for an
        ``interval``. A client getting a message now and then has each one confirmed
        by a pong without a write of its own; a busy one gets one probe per interval."""
        return self.probe_at < 0 and now - self.probe_sent >= interval

    def next_probe(self) -> bytes:
        """The payload of a new probe ping; call ``probe_written`` once it is written."""
        self.probe_seq += 1
        self.probe_payload = PROBE_MAGIC + self.probe_seq.to_bytes(8, "big")
        return self.probe_payload

    def probe_written(self, now: int) -> None:
        self.probe_at = self.written
        self.probe_sent = now

    def answered(self, payload: bytes) -> bool:
        """A pong: True if it answers the outstanding probe (everything before it read)."""
        if self.probe_at < 0 or payload != self.probe_payload:
            return False
        self.delivered(self.probe_at)
        self.probe_at = -1
        return True

    def confirm(self, unsent: int) -> None:
        """``unsent`` of the written bytes have not reached the peer: forget older marks."""
        self.delivered(self.written - max(0, unsent))

    def delivered(self, delivered: int) -> None:
        """The peer has the first ``delivered`` bytes: forget the marks they cover."""
        marks = self.marks
        while marks and marks[0][0] <= delivered:
            marks.popleft()

    def oldest(self) -> int:
        """Queue time of the oldest message not yet confirmed delivered (0: none)."""
        if self.marks:
            return self.marks[0][1]
        return self.pending_since

    def age(self, now: int) -> int:
        """ns since the oldest undelivered message was queued (0 when all is delivered);
        call ``confirm`` first with a fresh unsent count."""
        oldest = self.oldest()
        return now - oldest if oldest else 0
