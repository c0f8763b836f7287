"""WebSocket frames the server writes itself (RFC 6455 §5.2), pure and I/O-free.

A server frame is never masked: a 2, 4 or 10 byte header, then the payload. The
gateway frames data messages itself so that a client's whole tick goes out in one
``transport.write`` (one ``send()``), and so that one encoded message can be framed
once and shared by every subscriber (``frame()`` is cached for common sizes).
Compressed connections are framed by ``websockets`` (deflate state is per client).
Tests compare every byte with RFC 6455's examples and with ``websockets.frames``.
"""

from __future__ import annotations

from collections.abc import Iterable

TEXT = 0x1
BINARY = 0x2
PING = 0x9
_FIN = 0x80

_HEADERS: dict[tuple[int, int], bytes] = {}
_CACHE_LIMIT = 100_000
"""Distinct (opcode, length) headers kept; a book message's size varies little."""


def header(opcode: int, length: int) -> bytes:
    """The header of a final, unmasked frame carrying ``length`` payload bytes."""
    key = (opcode, length)
    head = _HEADERS.get(key)
    if head is not None:
        return head
    if not 0 <= length < 1 << 63:
        raise ValueError(f"payload length {length} out of range")
    first = _FIN | opcode
    if length < 126:
        head = bytes((first, length))
    elif length < 1 << 16:
        head = bytes((first, 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + length.to_bytes(8, "big")
    if len(_HEADERS) < _CACHE_LIMIT:
        _HEADERS[key] = head
    return head


def frame(opcode: int, payload: bytes) -> bytes:
    """One whole frame."""
    return header(opcode, len(payload)) + payload


def frames(opcode: int, payloads: Iterable[bytes]) -> bytes:
    """Several whole frames of one opcode, joined for a single write."""
    parts: list[bytes] = []
    append = parts.append
    for payload in payloads:
        append(header(opcode, len(payload)))
        append(payload)
    return b"".join(parts)


def ping(payload: bytes) -> bytes:
    """A ping frame; control frames carry at most 125 bytes (RFC 6455 §5.5)."""
    if len(payload) > 125:
        raise ValueError("a ping payload is at most 125 bytes")
    return frame(PING, payload)
