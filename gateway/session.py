"""One client connection's bookkeeping and its write path.

Writes go straight into the connection's protocol object and transport, the way
``websockets.broadcast`` does it: no per-client task, no await on the hot path.
A session whose transport buffer passes the high-water mark is marked *behind*:
its book deltas are dropped until it drains, then it is resynced with snapshots.

``flush`` writes a tick's data frames with **one** ``transport.write``: on an
uncompressed connection it frames them itself (a server frame is an unmasked
2-10 byte header + payload, RFC 6455 §5.2), otherwise it lets the protocol frame
(and deflate) each one and joins the output. Measured (bench/README.md): a
``write`` per frame was a ``send()`` syscall per frame and ~55 % of the gateway's
time at 1,000 clients.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.protocol import State

from schemas import wire

_ids = itertools.count(1)
_TEXT, _BINARY = 0x81, 0x82
"""First header byte of a final (FIN) text / binary frame."""
_HEADERS: dict[tuple[int, int], bytes] = {}


def frame_header(first: int, length: int) -> bytes:
    """The header of an unmasked server frame carrying ``length`` payload bytes."""
    key = (first, length)
    head = _HEADERS.get(key)
    if head is None:
        if length < 126:
            head = bytes((first, length))
        elif length < 65536:
            head = bytes((first, 126)) + length.to_bytes(2, "big")
        else:
            head = bytes((first, 127)) + length.to_bytes(8, "big")
        if length < 65536 and len(_HEADERS) < 200_000:
            _HEADERS[key] = head
    return head


@dataclass(eq=False, slots=True)
class Session:
    """A connected client: identity, choices, subscriptions, counters."""

    conn: Any
    """The websockets ServerConnection (duck-typed so tests can pass a fake)."""
    binary: bool
    batch: bool
    remote: str = ""
    subject: str = ""
    token_exp: float | None = None
    compression: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    connected_at: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.monotonic)
    views: set[Any] = field(default_factory=set)
    """Keys of the views this session subscribes to."""
    trade_streams: set[str] = field(default_factory=set)
    stats_streams: set[str] = field(default_factory=set)
    pending: list[bytes] = field(default_factory=list)
    messages_sent: int = 0
    bytes_sent: int = 0
    behind_since: float | None = None
    resyncs: int = 0
    last_resync: float | None = None
    """monotonic time of the last slow-consumer resync."""
    dropped: int = 0
    tokens: float = 0.0
    tokens_at: float = field(default_factory=time.monotonic)
    strikes: int = 0
    replays: dict[Any, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    closing: bool = False
    """Verified JWT claims (may restrict symbols and channels)."""

    def is_open(self) -> bool:
        return self.conn.protocol.state is State.OPEN

    def buffered(self) -> int:
        """Bytes written but not yet sent to the peer."""
        transport = self.conn.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def _write(self, frame: bytes, text: bool) -> None:
        proto = self.conn.protocol
        if proto.state is not State.OPEN:
            return
        if text:
            proto.send_text(frame)
        else:
            proto.send_binary(frame)
        self.conn.send_data()
        self.messages_sent += 1
        self.bytes_sent += len(frame)

    def send_control(self, kind: str, **fields: Any) -> None:
        """A JSON control reply, written now (before any queued data)."""
        self.flush()
        self._write(wire.control(kind, **fields), True)

    def send_data(self, frame: bytes) -> None:
        """Write one data message now, in this session's format."""
        self.flush()
        if self.batch and self.binary:
            frame = wire.batch_pb((frame,))
        self._write(frame, not self.binary)

    def queue(self, frame: bytes) -> None:
        """Add a data message to this tick's output; ``flush`` writes it."""
        self.pending.append(frame)

    def flush(self) -> int:
        """Write queued data: one frame each, or one batch frame if the client opted in."""
        pending = self.pending
        if not pending:
            return 0
        self.pending = []
        text = not self.binary
        if self.batch and self.binary:
            # Always a MarketDataBatch: a client cannot tell one from a bare message by parsing.
            frames = [wire.batch_pb(pending)]
        elif self.batch and len(pending) > 1:
            frames = [wire.batch_json(pending)]
        else:
            frames = pending
        self._write_all(frames, text)
        return len(pending)

    def _write_all(self, frames: list[bytes], text: bool) -> None:
        """Several data frames, one ``transport.write`` (see the module docstring)."""
        conn = self.conn
        proto = conn.protocol
        if proto.state is not State.OPEN:
            return
        transport = conn.transport
        queued = getattr(proto, "writes", None)  # None: not a websockets protocol (a test fake)
        if transport is None or queued is None or (len(frames) == 1 and self.compression):
            for frame in frames:
                self._write(frame, text)
            return
        if queued:  # anything the protocol queued (a pong) goes first
            conn.send_data()
        size = 0
        if self.compression:
            send = proto.send_text if text else proto.send_binary
            for frame in frames:
                send(frame)
                size += len(frame)
            chunks = proto.data_to_send()
            transport.write(b"".join(chunks))
        else:
            first = _TEXT if text else _BINARY
            parts: list[bytes] = []
            for frame in frames:
                parts.append(frame_header(first, len(frame)))
                parts.append(frame)
                size += len(frame)
            transport.write(b"".join(parts))
        self.messages_sent += len(frames)
        self.bytes_sent += size
