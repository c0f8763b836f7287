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
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.streams import StreamReader

from gateway.outbox import PROBE_LEN, PROBE_MAGIC

_PONG_HEAD = bytes((0x80 | Opcode.PONG.value, 0x80 | PROBE_LEN))
"""FIN + pong opcode, then the mask bit + the payload length of a probe's answer."""
_PONG_FRAME = len(_PONG_HEAD) + 4 + PROBE_LEN
"""A client's pong to a probe: header, 4-byte mask (clients always mask), payload."""
_AT_EOF = StreamReader.at_eof.__code__
"""websockets' frame parser waits here, between two frames, for more bytes."""


def probe_answers(data: bytes) -> list[bytes] | None:
    """The unmasked payloads if ``data`` is nothing but probe pongs, else None."""
    size = len(data)
    if not size or size % _PONG_FRAME:
        return None
    out = []
    for at in range(0, size, _PONG_FRAME):
        if data[at : at + 2] != _PONG_HEAD:
            return None
        mask = int.from_bytes(data[at + 2 : at + 6] * 3, "big")
        body = int.from_bytes(data[at + 6 : at + _PONG_FRAME], "big")
        payload = (body ^ mask).to_bytes(PROBE_LEN, "big")
        if payload[:4] != PROBE_MAGIC:
            return None
        out.append(payload)
    return out


class GatewayConnection(ServerConnection):
    on_probe: Callable[[bytes], None] | None = None

    def data_received(self, data: bytes) -> None:
        on_probe = self.on_probe
        if on_probe is not None and data[:2] == _PONG_HEAD and self._between_frames():
            answers = probe_answers(data)
            if answers is not None:
                for payload in answers:
                    on_probe(payload)
                return
        super().data_received(data)

    def _between_frames(self) -> bool:
        """websockets' parser has consumed every byte so far and waits for a new frame
        (not in the middle of one): bytes read now start a frame."""
        proto = self.protocol
        if proto.state is not State.OPEN or proto.reader.buffer:
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
