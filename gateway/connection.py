"""The server connection: ``websockets``' own, plus probe pongs handed to the session.

``serve(create_connection=...)`` is websockets' documented way to customise a
connection; ``process_event`` is the method its own subclasses override to see
incoming frames. A pong whose payload starts with the probe prefix answers a probe
the session wrote (gateway/session.py); everything else goes on to websockets
(keep-alive pongs, data, close).

Every client that receives data answers a probe about every 100 ms, so pongs are
most of what a gateway reads: ``data_received`` recognises a read made only of
probe pongs, at a frame boundary, and hands them over without websockets' frame
parser (4.9 -> 2.0 µs per pong in process; bench/README.md).

A read made only of small text frames that are all ``ping`` requests is answered the
same way, in the read itself: through websockets a ping waits for its handler task's
turn, behind every callback queued before it (batches, flush slices), and the control
path must not queue behind fan-out (docs/protocol.md §4.2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.streams import StreamReader

from gateway.outbox import PROBE_LEN, PROBE_MAGIC

_OPEN = State.OPEN  # looked up once: an enum member via its class costs ~100 ns
_PONG_HEAD = bytes((0x80 | Opcode.PONG.value, 0x80 | PROBE_LEN))
"""FIN + pong opcode, then the mask bit + the payload length of a probe's answer."""
_PONG_FRAME = len(_PONG_HEAD) + 4 + PROBE_LEN
"""A client's pong to a probe: header, 4-byte mask (clients always mask), payload."""
_TEXT_FIRST = bytes((0x80 | Opcode.TEXT.value,))
"""FIN + text opcode: a whole, uncompressed text frame."""
_AT_EOF = StreamReader.at_eof.__code__
"""websockets' frame parser waits here, between two frames, for more bytes."""


def _unmask(mask: bytes, body: bytes) -> bytes:
    """A client frame's payload: ``body`` XOR the 4-byte ``mask`` repeated (RFC 6455)."""
    size = len(body)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(body, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")


def probe_answers(data: bytes) -> list[bytes] | None:
    """The unmasked payloads if ``data`` is nothing but probe pongs, else None."""
    size = len(data)
    if not size or size % _PONG_FRAME:
        return None
    out = []
    for at in range(0, size, _PONG_FRAME):
        if data[at : at + 2] != _PONG_HEAD:
            return None
        payload = _unmask(data[at + 2 : at + 6], data[at + 6 : at + _PONG_FRAME])
        if payload[:4] != PROBE_MAGIC:
            return None
        out.append(payload)
    return out


def small_texts(data: bytes) -> list[bytes] | None:
    """The unmasked payloads if ``data`` is nothing but whole, masked, unfragmented text
    frames of under 126 bytes each, else None."""
    out: list[bytes] = []
    at, size = 0, len(data)
    while at < size:
        if data[at] != _TEXT_FIRST[0] or size - at < 6 or not data[at + 1] & 0x80:
            return None
        length = data[at + 1] & 0x7F
        start = at + 6
        end = start + length
        if length >= 126 or end > size:
            return None
        out.append(_unmask(data[at + 2 : start], data[start:end]))
        at = end
    return out or None


class GatewayConnection(ServerConnection):
    opened = 0
    closed = 0
    """Connections of this process made and lost so far (WebSocket or not): what the
    collector policy (gateway/gcpolicy.py) expects to have died."""
    on_probe: Callable[[bytes], None] | None = None
    on_pings: Callable[[list[bytes]], bool] | None = None
    """Given the payloads of a read of small text frames: answers them at once and
    returns True if they are all pings; False leaves them to websockets."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        GatewayConnection.opened += 1
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        GatewayConnection.closed += 1
        super().connection_lost(exc)
        self.release()

    def release(self) -> None:
        """Drop the references that make a closed connection a reference cycle, so that
        it is freed when its last reference goes, not by a full collection over the whole
        heap (gateway/gcpolicy.py): the session's callbacks (bound to a session that
        holds this connection), and the subprotocol selector websockets' ``serve`` binds
        to the protocol as a closure over this connection (used by the handshake only)."""
        self.on_probe = None
        self.on_pings = None
        vars(self.protocol).pop("select_subprotocol", None)
        exc = getattr(self, "connection_exc", None)
        if exc is not None:  # a protocol error: its traceback's frames hold this connection
            exc.__traceback__ = None

    @staticmethod
    def counts() -> tuple[int, int]:
        """Connections open now and closed so far, in this process."""
        return GatewayConnection.opened - GatewayConnection.closed, GatewayConnection.closed

    def data_received(self, data: bytes) -> None:
        on_probe = self.on_probe
        if on_probe is not None and data[:2] == _PONG_HEAD and self._between_frames():
            answers = probe_answers(data)
            if answers is not None:
                for payload in answers:
                    on_probe(payload)
                return
        on_pings = self.on_pings
        if on_pings is not None and data[:1] == _TEXT_FIRST and self._between_frames():
            texts = small_texts(data)
            if texts is not None and on_pings(texts):
                return
        super().data_received(data)

    def _between_frames(self) -> bool:
        """websockets' parser has consumed every byte so far and waits for a new frame
        (not in the middle of one): bytes read now start a frame."""
        proto = self.protocol
        if proto.state is not _OPEN or proto.reader.buffer:
            return False
        gen = proto.parser  # parse() -> [frame parse ->] the read it waits in
        while (inner := getattr(gen, "gi_yieldfrom", None)) is not None:
            gen = inner
        return getattr(gen, "gi_code", None) is _AT_EOF

    # websockets annotates the parameter with its own internal Event union: same values
    def process_event(self, event: Request | Frame) -> None:  # type: ignore[override]
        if (
            isinstance(event, Frame)
            and event.opcode is Opcode.PONG
            and self.on_probe is not None
            and event.data[:4] == PROBE_MAGIC
        ):
            self.on_probe(bytes(event.data))
            return
        super().process_event(event)
