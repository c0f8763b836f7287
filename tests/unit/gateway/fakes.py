"""A connection double for hub and session tests: it records the bytes a session
writes and parses them back as RFC 6455 server frames (unmasked)."""

from __future__ import annotations

from typing import Any

import orjson
from websockets.protocol import State


class FakeProtocol:
    """Stands in for websockets' sans-I/O protocol (used on compressed connections)."""

    def __init__(self) -> None:
        self.state = State.OPEN
        self._out: list[bytes] = []

    def send_text(self, data: bytes, fin: bool = True) -> None:
        self._out.append(bytes((0x81, len(data))) + data if len(data) < 126 else b"")

    def send_binary(self, data: bytes, fin: bool = True) -> None:
        self._out.append(bytes((0x82, len(data))) + data if len(data) < 126 else b"")

    def data_to_send(self) -> list[bytes]:
        out, self._out = self._out, []
        return out


class FakeTransport:
    def __init__(self) -> None:
        self.buffered = 0
        self.data = bytearray()
        self.writes = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.data += data
        self.writes += 1
        if self.buffered:  # like a real transport: what follows held bytes waits too
            self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def is_closing(self) -> bool:
        return self.closing

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class FakeConn:
    def __init__(self) -> None:
        self.protocol = FakeProtocol()
        self.transport = FakeTransport()


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of every whole frame in ``data``; fails on a masked or cut frame."""
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(data):
        first, second = data[i], data[i + 1]
        assert first & 0x80, "every frame is final"
        assert not second & 0x80, "server frames are never masked"
        length, i = second & 0x7F, i + 2
        if length == 126:
            length, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        payload = bytes(data[i : i + length])
        assert len(payload) == length, "frame cut short"
        out.append((first & 0x0F, payload))
        i += length
    return out


def frames_of(conn: FakeConn) -> list[tuple[int, bytes]]:
    return parse_frames(bytes(conn.transport.data))


def messages_of(conn: FakeConn) -> list[dict[str, Any]]:
    """Every JSON message written, batch arrays flattened."""
    out: list[dict[str, Any]] = []
    for opcode, payload in frames_of(conn):
        if opcode != 0x1:
            continue
        data = orjson.loads(payload)
        out.extend(data if isinstance(data, list) else [data])
    return out
