"""One client connection: its choices, counters, and the write path to its socket.

Data frames are framed by ``gateway.framing`` and a client's whole tick goes out
in **one** ``transport.write`` (one ``send()``): a write per frame was ~55 % of the
gateway's time at 1,000 clients (bench/README.md). Compressed connections let
``websockets`` frame and deflate (its sans-I/O ``send_*`` + ``data_to_send``).

Freshness (docs/protocol.md §4.6): data waits in the session's ``Outbox`` while the
transport still holds earlier bytes, so what is old can be dropped there instead
of piling up in buffers nobody can edit; the kernel's send queue is bounded
(``SO_SNDBUF``). What the client has actually read is learnt from *probes*: a ping
written after a tick's data (at most one outstanding, at most one per
``probe_ns``); its pong (every WebSocket client answers pings) means everything
before it was read, wherever it waited (our buffers, the kernel's, the peer's
receive buffer, the client library's queue). Without probes the kernel's send
queue (``SIOCOUTQ``) is the measure, blind to the peer's receive buffer.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from websockets.protocol import State

from gateway import framing
from gateway.outbox import Outbox
from schemas import wire

_ids = itertools.count(1)
_INT = struct.Struct("i")
_OUTQ = termios.TIOCOUTQ  # == SIOCOUTQ on Linux: bytes in the socket's send queue
OPEN = State.OPEN
"""``State.OPEN`` once: an enum member looked up on its class costs ~100 ns on CPython
3.11, and the write path asks once per client per write."""


class Transport(Protocol):
    def write(self, data: bytes) -> None: ...
    def get_write_buffer_size(self) -> int: ...
    def is_closing(self) -> bool: ...
    def get_extra_info(self, name: str, default: Any = None) -> Any: ...
    def abort(self) -> None: ...


class WireProtocol(Protocol):
    """The part of ``websockets``' sans-I/O protocol a session uses (public API)."""

    state: State

    def send_text(self, data: bytes, fin: bool = True) -> None: ...
    def send_binary(self, data: bytes, fin: bool = True) -> None: ...
    def data_to_send(self) -> list[bytes]: ...


class Connection(Protocol):
    """A ``websockets`` ServerConnection as far as a session needs it."""

    @property
    def protocol(self) -> WireProtocol: ...

    @property
    def transport(self) -> Transport | None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def kernel_unsent(fd: int) -> int:
    """Bytes still in the socket's send queue (not yet acknowledged by the peer)."""
    try:
        return int(_INT.unpack(fcntl.ioctl(fd, _OUTQ, b"\0\0\0\0"))[0])
    except OSError:
        return 0


def socket_fd(transport: Transport | None, sndbuf: int) -> int:
    """The connection's file descriptor (-1 if none), with its send buffer bounded."""
    if transport is None:
        return -1
    sock = transport.get_extra_info("socket")
    if sock is None:
        return -1
    try:
        if sndbuf > 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        return int(sock.fileno())
    except (OSError, AttributeError, ValueError):
        return -1


@dataclass(eq=False, slots=True)
class Session:
    """A connected client: identity, choices, counters (its subscriptions are in the
    hub's registry, ``gateway.subscriptions``)."""

    conn: Connection
    """The websockets ServerConnection (tests pass a fake)."""
    binary: bool
    batch: bool
    remote: str = ""
    subject: str = ""
    token_exp: float | None = None
    compression: bool = False
    id: int = field(default_factory=lambda: next(_ids))
    connected_at: float = field(default_factory=time.time)
    last_activity: float = field(default_factory=time.monotonic)
    out: Outbox = field(default_factory=Outbox)
    fd: int = -1
    """Socket file descriptor for the send-queue query (-1: unknown, counts as 0)."""
    probe_ns: int = 0
    """Interval of probe pings after data (0: freshness from the kernel's queue only)."""
    clock: Callable[[], int] = time.monotonic_ns
    """Monotonic ns (the hub gives its own)."""
    messages_sent: int = 0
    bytes_sent: int = 0
    probes_alone: int = 0
    probe_answers: int = 0
    """Probe pings written on their own, and the pongs that answered one (folded into
    ``ws_probes_total`` and ``ws_probe_answers_total``; those in a data write are
    ``probes_with_data``)."""
    burst: int = 0
    """Bytes of snapshots just written (subscribe, resync): allowed above high water until
    the transport is back under a quarter of it."""
    behind_since: float | None = None
    behind_reason: str = ""
    resyncs: int = 0
    last_resync: float | None = None
    """monotonic time of the last slow-consumer resync."""
    dropped: int = 0
    dropped_before: int = 0
    """``dropped`` when the client last fell behind with nothing held in our queues or
    the kernel's (-1 otherwise): the same once it has caught up means it lost nothing
    while behind, and needs no resync."""
    tokens: float = 0.0
    tokens_at: float = field(default_factory=time.monotonic)
    strikes: int = 0
    replays: dict[Any, Any] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    """Verified JWT claims (may restrict symbols and channels)."""
    closing: bool = False
    framed: bool = False
    """Data is queued as whole frames (no compression, no batching): the hub frames each
    message once for all such subscribers and a flush only joins them."""
    corked: list[tuple[bytes, int, int]] | None = None
    """Writes held by :meth:`cork` (bytes, messages, queued at), sent as one."""

    def __post_init__(self) -> None:
        self.framed = not self.compression and not self.batch

    @property
    def probes_with_data(self) -> int:
        """Probe pings written in a data write: every probe made is written at once,
        in a data write or on its own."""
        return self.out.probe_seq - self.probes_alone

    @property
    def pending(self) -> list[bytes]:
        return self.out.pending

    def is_open(self) -> bool:
        return self.conn.protocol.state is OPEN

    def buffered(self) -> int:
        """Bytes written to the transport that it has not handed to the kernel yet."""
        transport = self.conn.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def unsent(self) -> int:
        """Written bytes the peer has not received: transport buffer + kernel send queue."""
        return self.buffered() + (kernel_unsent(self.fd) if self.fd >= 0 else 0)

    # ---- writing -------------------------------------------------------------------

    def send_control(self, kind: str, **fields: Any) -> None:
        """A JSON control reply, written now (after any queued data, to keep order)."""
        self.send_controls([fields], kind)

    def send_controls(self, messages: list[dict[str, Any]], kind: str = "status") -> None:
        """Several JSON control messages of one ``kind`` in one write (after queued data)."""
        self.flush(force=True)
        self._write([wire.control(kind, **m) for m in messages], True, 0)

    def send_data(self, frame: bytes, now: int = 0) -> None:
        """Write one data message now, in this session's format (after queued data);
        ``now`` is the monotonic ns it counts as queued at (default: the clock now)."""
        self.flush(force=True)
        if self.batch and self.binary:
            frame = wire.batch_pb((frame,))
        self._write([frame], not self.binary, now or self.clock())

    def flush(self, force: bool = False) -> int:
        """Write queued data: one frame each, or one batch frame if the client opted in.

        Unless ``force``d, data stays queued while the transport still holds earlier
        bytes (the kernel's queue is full): returns -1 then, and the hub retries."""
        out = self.out
        if not out.pending:
            return 0
        if not force and self.buffered():
            return -1
        queued_at = out.pending_since
        pending = out.take()
        if self.framed:  # queued already framed (shared by every subscriber): just join
            self._send(b"".join(pending), len(pending), queued_at)
            return len(pending)
        text = not self.binary
        if self.batch and self.binary:
            # Always a MarketDataBatch: a client cannot tell one from a bare message by parsing.
            frames = [wire.batch_pb(pending)]
        elif self.batch and len(pending) > 1:
            frames = [wire.batch_json(pending)]
        else:
            frames = pending
        self._write(frames, text, queued_at)
        return len(pending)

    def flush_framed(self) -> tuple[int, int]:
        """:meth:`flush` for a ``framed`` session (the common case, once per client per
        pass), in one call: (frames written, or -1 if held; bytes the transport still
        holds after). Same effect as ``flush()`` then ``buffered()``; the hub's pass calls
        this instead: in process it takes about a fifth off the pass's time per client
        (bench/README.md, "Sixteenth pass")."""
        transport = self.conn.transport
        if transport is None:
            return self.flush(), 0
        out = self.out
        buffered = transport.get_write_buffer_size()
        if not out.pending or buffered:
            return (-1 if out.pending else 0), buffered
        if (
            self.corked is not None
            or self.conn.protocol.state is not OPEN
            or transport.is_closing()
        ):  # rare: the general path says what happens to the data
            return self.flush(), transport.get_write_buffer_size()
        queued_at = out.pending_since
        pending = out.take()
        n = len(pending)
        self._put(transport, pending[0] if n == 1 else b"".join(pending), n, queued_at)
        return n, transport.get_write_buffer_size()

    def _write(self, frames: list[bytes], text: bool, queued_at: int) -> None:
        """Frames, one ``transport.write``; counted for the freshness marks."""
        conn = self.conn
        proto = conn.protocol
        transport = conn.transport
        if proto.state is not OPEN or transport is None or transport.is_closing():
            return
        if self.compression:
            send = proto.send_text if text else proto.send_binary
            for frame in frames:
                send(frame)
            data = b"".join(proto.data_to_send())
        else:
            data = framing.frames(framing.TEXT if text else framing.BINARY, frames)
        self._send(data, len(frames), queued_at)

    @contextlib.contextmanager
    def cork(self) -> Iterator[None]:
        """Everything written inside goes out in one ``transport.write`` at the end, in
        order: a resync's statuses and snapshots cost one send, not two per book."""
        if self.corked is not None:  # already corked: the outer cork sends
            yield
            return
        self.corked = []
        try:
            yield
        finally:
            parts, self.corked = self.corked, None
            if parts:
                # the write's age is its oldest message's (0: control replies only)
                ats = [at for _, _, at in parts if at]
                data = b"".join(d for d, _, _ in parts)
                self._send(data, sum(n for _, n, _ in parts), min(ats) if ats else 0)

    def _send(self, data: bytes, frames: int, queued_at: int) -> None:
        """Framed bytes, one ``transport.write``; counted for the freshness marks."""
        if self.corked is not None:
            self.corked.append((data, frames, queued_at))
            return
        transport = self.conn.transport
        if self.conn.protocol.state is not OPEN or transport is None:
            return
        if transport.is_closing():
            return
        self._put(transport, data, frames, queued_at)

    def _put(self, transport: Transport, data: bytes, frames: int, queued_at: int) -> None:
        """One write to an open transport, a probe on the end if one is due; counted
        for the freshness marks."""
        out = self.out
        probe = 0
        if queued_at and self.probe_ns:
            now = self.clock()
            if out.probe_with_data(now, self.probe_ns):
                data += framing.ping(out.next_probe())
                probe = now
        transport.write(data)
        out.wrote(len(data), queued_at)
        if probe:
            out.probe_written(probe)
        self.messages_sent += frames
        self.bytes_sent += len(data)

    def send_probe(self) -> None:
        """A probe ping on its own (a client behind that gets no data still answers)."""
        out = self.out
        now = self.clock()
        if not out.probe_due(now, self.probe_ns):  # the usual answer, and the cheapest
            return
        transport = self.conn.transport
        if self.conn.protocol.state is not OPEN or transport is None:
            return
        if transport.is_closing():
            return
        data = framing.ping(out.next_probe())
        transport.write(data)
        out.wrote(len(data), 0)
        out.probe_written(now)
        self.probes_alone += 1

    def on_pong(self, payload: bytes) -> None:
        """A pong to a probe: the client has read everything written before it."""
        if self.out.answered(payload):
            self.probe_answers += 1
