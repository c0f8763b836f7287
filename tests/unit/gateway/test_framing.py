"""gateway.framing byte for byte: RFC 6455 §5.7's examples and websockets' own frames."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode

from gateway import framing
from tests.unit.gateway.fakes import parse_frames


def test_rfc6455_single_frame_unmasked_text() -> None:
    assert framing.frame(framing.TEXT, b"Hello") == bytes.fromhex("810548656c6c6f")


def test_rfc6455_unmasked_ping() -> None:
    assert framing.ping(b"Hello") == bytes.fromhex("890548656c6c6f")


def test_rfc6455_256_bytes_binary_uses_the_16_bit_length() -> None:
    data = bytes(256)
    assert framing.frame(framing.BINARY, data) == bytes.fromhex("827e0100") + data


def test_rfc6455_64_kib_binary_uses_the_64_bit_length() -> None:
    data = bytes(65536)
    assert framing.frame(framing.BINARY, data) == bytes.fromhex("827f0000000000010000") + data


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_length_boundaries_match_websockets(length: int) -> None:
    data = bytes(range(256)) * (length // 256 + 1)
    data = data[:length]
    for opcode, ws_opcode in ((framing.TEXT, Opcode.TEXT), (framing.BINARY, Opcode.BINARY)):
        ours = framing.frame(opcode, data)
        assert ours == Frame(ws_opcode, data).serialize(mask=False)


@given(st.lists(st.binary(max_size=300), max_size=20), st.booleans())
def test_joined_frames_equal_websockets_frames_one_by_one(
    payloads: list[bytes], text: bool
) -> None:
    opcode, ws_opcode = (framing.TEXT, Opcode.TEXT) if text else (framing.BINARY, Opcode.BINARY)
    joined = framing.frames(opcode, payloads)
    assert joined == b"".join(Frame(ws_opcode, p).serialize(mask=False) for p in payloads)
    assert parse_frames(joined) == [(opcode, p) for p in payloads]


def test_ping_payload_limit() -> None:
    with pytest.raises(ValueError):
        framing.ping(bytes(126))


def test_negative_length_is_refused() -> None:
    with pytest.raises(ValueError):
        framing.header(framing.TEXT, -1)
