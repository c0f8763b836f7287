"""Probe pongs read without websockets' frame parser (gateway/connection.py), and
only when the bytes read really start a frame."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from gateway.connection import GatewayConnection, probe_answers, small_texts
from gateway.outbox import PROBE_MAGIC
from tests.unit.gateway.fakes import FakeTransport


def client_frame(opcode: int, payload: bytes, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """A masked client frame (RFC 6455 §5.2), payload under 126 bytes."""
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((0x80 | opcode, 0x80 | len(payload))) + mask + body


def probe(seq: int) -> bytes:
    return PROBE_MAGIC + seq.to_bytes(8, "big")


class Recording(GatewayConnection):
    """Every frame websockets parsed, in order; probe pongs then go on as in production
    (the rest stops here: there is no handler task behind this connection)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.parsed: list[Frame] = []

    def process_event(self, event: Any) -> None:  # type: ignore[override]
        self.parsed.append(event)
        if isinstance(event, Frame) and event.data[:4] == PROBE_MAGIC:
            super().process_event(event)


@pytest.fixture
def conn() -> Any:
    async def make() -> Recording:
        proto = ServerProtocol()
        proto.state = State.OPEN  # as after the opening handshake
        proto.parser = proto.parse()
        next(proto.parser)
        c = Recording(proto, object())
        c.transport = FakeTransport()  # type: ignore[assignment]
        c.answers = []  # type: ignore[attr-defined]
        c.on_probe = c.answers.append  # type: ignore[attr-defined]
        return c

    loop = asyncio.new_event_loop()
    try:
        yield loop.run_until_complete(make())
    finally:
        loop.close()


def test_a_probe_pong_skips_the_parser(conn: Any) -> None:
    conn.data_received(client_frame(0xA, probe(7)))
    assert conn.answers == [probe(7)]
    assert conn.parsed == []


def test_several_probe_pongs_in_one_read(conn: Any) -> None:
    conn.data_received(
        client_frame(0xA, probe(1)) + client_frame(0xA, probe(2), b"\x00\xff\x00\xff")
    )
    assert conn.answers == [probe(1), probe(2)]
    assert conn.parsed == []


def test_the_parser_is_untouched_for_what_follows(conn: Any) -> None:
    conn.data_received(client_frame(0xA, probe(1)))
    conn.data_received(client_frame(0x1, b'{"op":"ping"}'))
    assert [(f.opcode, f.data) for f in conn.parsed] == [(Opcode.TEXT, b'{"op":"ping"}')]


def test_a_pong_split_over_two_reads_goes_through_websockets(conn: Any) -> None:
    data = client_frame(0xA, probe(3))
    conn.data_received(data[:5])
    conn.data_received(data[5:])
    assert conn.answers == [probe(3)]
    assert [f.opcode for f in conn.parsed] == [Opcode.PONG]


def test_bytes_inside_a_frame_are_never_taken_for_a_pong(conn: Any) -> None:
    """The parser has read a binary frame's header and waits for the rest: the next
    read is exactly a probe pong's bytes, yet it is that frame's mask and payload."""
    lookalike = client_frame(0xA, probe(9), b"\x01\x02\x03\x04")
    assert probe_answers(lookalike) == [probe(9)]
    mask, masked = lookalike[:4], lookalike[4:]
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(masked))
    conn.data_received(bytes((0x82, 0x80 | len(payload))))  # binary frame, 14 bytes
    assert not conn._between_frames()
    conn.data_received(lookalike)
    assert conn.answers == []
    assert [(f.opcode, f.data) for f in conn.parsed] == [(Opcode.BINARY, payload)]
    assert conn._between_frames()


def test_keepalive_and_mixed_reads_go_through_websockets(conn: Any) -> None:
    keepalive = os.urandom(4)
    conn.data_received(client_frame(0xA, keepalive))
    both = client_frame(0xA, probe(4)) + client_frame(0x1, b"{}")
    conn.data_received(both)
    assert conn.answers == [probe(4)]
    assert [(f.opcode, f.data) for f in conn.parsed] == [
        (Opcode.PONG, keepalive),
        (Opcode.PONG, probe(4)),
        (Opcode.TEXT, b"{}"),
    ]


def test_not_open_goes_through_websockets(conn: Any) -> None:
    conn.protocol.state = State.CLOSING
    assert not conn._between_frames()


@pytest.mark.parametrize(
    "data",
    [
        b"",
        client_frame(0xA, probe(1))[:-1],
        client_frame(0x9, probe(1)),  # a ping, not a pong
        client_frame(0xA, b"mdgX" + bytes(8)),
        bytes((0x8A, 12)) + bytes(16),  # unmasked: websockets must refuse it
    ],
)
def test_probe_answers_refuses(data: bytes) -> None:
    assert probe_answers(data) is None


async def test_a_real_client_answers_probes_through_the_fast_path(monkeypatch) -> None:
    """websockets' client answers the gateway's probe pings by itself; each answer is
    read without the frame parser and confirms what the session wrote."""
    import orjson
    from websockets.asyncio.client import connect

    from gateway import connection
    from schemas import codec
    from tests.unit.gateway.memgw import KAFKA, STREAM, eventually, memory_gateway, url
    from tests.unit.kafka.memkafka import book

    fast: list[int] = []
    real = connection.probe_answers

    def counted(data: bytes) -> list[bytes] | None:
        out = real(data)
        if out is not None:
            fast.append(len(out))
        return out

    monkeypatch.setattr(connection, "probe_answers", counted)
    async with memory_gateway() as (rt, broker, states, _clock):
        async with connect(url(rt) + "?format=json") as ws:
            sub = {"op": "subscribe", "id": 1, "channel": "book", "symbols": [STREAM]}
            await ws.send(orjson.dumps(sub).decode())
            session = next(iter(rt.hub.sessions))
            part = broker.records(KAFKA.book_topic)[0].partition
            seq = states[-1][1].sequence
            for _ in range(5):  # one update per probe interval: each write carries a probe
                seq += 1
                broker.send(KAFKA.book_topic, STREAM, codec.encode(book(seq)), partition=part)
                await asyncio.sleep(0.12)
                while True:  # read what arrived; the client pongs as it reads
                    try:
                        await asyncio.wait_for(ws.recv(), 0.05)
                    except TimeoutError:
                        break
            await eventually(lambda: session.out.probe_at < 0 and session.out.probe_seq >= 2)
            answered = session.probe_answers
    assert sum(fast) >= 2
    # counted for ws_probes_total / ws_probe_answers_total: every probe answered
    assert answered == session.probes_with_data + session.probes_alone >= 2


# ---- pings answered in the read ------------------------------------------------------


def test_small_texts_unmasks_a_read_of_small_text_frames() -> None:
    a, b = b'{"op":"ping","id":1}', b'{"op":"ping","id":"x"}' + b" " * 90
    data = client_frame(0x1, a) + client_frame(0x1, b, b"\xff\x00\xa5\x5a")
    assert small_texts(data) == [a, b]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        client_frame(0x1, b'{"op":"ping"}')[:-1],  # cut short
        client_frame(0x1, b'{"op":"ping"}') + client_frame(0xA, probe(1)),  # then a pong
        client_frame(0x2, b'{"op":"ping"}'),  # binary
        bytes((0x01, 0x80 | 13)) + bytes(4) + b'{"op":"ping"}',  # not final: fragmented
        bytes((0xC1, 0x80 | 13)) + bytes(4) + b'{"op":"ping"}',  # RSV1: compressed
        bytes((0x81, 13)) + b'{"op":"ping"}',  # unmasked: websockets must refuse it
        bytes((0x81, 0x80 | 126, 0, 126)) + bytes(4 + 126),  # 126 bytes and more
    ],
)
def test_small_texts_refuses(data: bytes) -> None:
    assert small_texts(data) is None


def test_a_read_of_pings_is_answered_in_the_read_and_anything_else_is_not(conn: Any) -> None:
    handled: list[list[bytes]] = []

    def on_pings(texts: list[bytes]) -> bool:
        if all(t.startswith(b'{"op":"ping"') for t in texts):
            handled.append(texts)
            return True
        return False

    conn.on_pings = on_pings
    pings = client_frame(0x1, b'{"op":"ping","id":1}') + client_frame(0x1, b'{"op":"ping"}')
    conn.data_received(pings)
    assert handled == [[b'{"op":"ping","id":1}', b'{"op":"ping"}']] and conn.parsed == []
    sub = b'{"op":"subscribe","channel":"book","symbols":["KRAKEN:BTC-USD"]}'
    conn.data_received(client_frame(0x1, b'{"op":"ping","id":2}') + client_frame(0x1, sub))
    assert len(handled) == 1  # a read that is not all pings goes to websockets, in order
    assert [f.data for f in conn.parsed] == [b'{"op":"ping","id":2}', sub]
