"""Ceiling reference: a minimal fan-out server with no book and no per-tick encoding.

``python -m bench.ceiling --port P --transport raw|websockets|picows`` serves
``/ws`` to the same load generator (``bench.loadgen --verify seq``) as the
gateway. Each stream's messages are protobuf ``order_book_update`` deltas of the
size the gateway sends (a depth-20 delta of 1-4 levels), encoded once at start
with consecutive sequence numbers. Every ``--tick-ms`` it takes the next
``rate x tick`` stream updates and queues each one's bytes to that stream's
subscribers, then writes one frame per message (or one ``MarketDataBatch`` frame
per client with ``?batch=true``) per client, as the gateway's hub does. The feed
rate is read from stdin, one number per line (updates/s, all streams), so
``bench.run`` can step it like the simulator.

Transports, for the websockets-vs-picows question:

- ``raw``: uvloop protocol with a hand-written handshake; frames pre-built once
  and the same bytes written to every subscriber: what this machine can push.
- ``websockets``: the websockets library, one ``protocol.send_binary`` +
  ``send_data`` per frame (the library's own broadcast path).
- ``picows``: picows, one ``transport.send`` per frame (framing in Cython).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import random
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from core.types import BookUpdate, parse_stream_key
from gateway.session import frame_header
from schemas import wire

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def messages(stream: str, count: int, rng: random.Random) -> list[bytes]:
    """``count`` encoded deltas of one stream, sequences chained from 1,000,000."""
    exchange, symbol = parse_stream_key(stream)
    out = []
    base = 1_000_000
    for i in range(count):
        nb, na = rng.choice(((1, 0), (1, 1), (2, 1), (2, 2), (0, 1)))
        bids = [(100.0 - 0.01 * rng.randrange(20), round(rng.random(), 5)) for _ in range(nb)]
        asks = [(100.5 + 0.01 * rng.randrange(20), round(rng.random(), 5)) for _ in range(na)]
        u = BookUpdate(exchange, symbol, 1_764_000_000_000_000_000 + i, base + i, bids, asks)
        u.is_snapshot = i == 0
        u.prev_sequence = base + i - 1 if i else 0
        u.checksum = rng.getrandbits(32)
        u.depth = 20
        u.ingest_ns = u.gateway_ns = 0
        out.append(wire.book_pb(u))
    return out


class Client:
    __slots__ = ("batch", "pending", "write")

    def __init__(self, write: Callable[[bytes], None], batch: bool) -> None:
        self.write = write
        self.batch = batch
        self.pending: list[bytes] = []


class FanOut:
    """Streams -> subscribers, and the tick that queues and writes."""

    def __init__(self, streams: list[str], per_stream: int, transport: str) -> None:
        rng = random.Random(7)
        self.streams = streams
        self.msgs = {s: messages(s, per_stream, rng) for s in streams}
        self.framed = {
            s: [frame_header(0x82, len(m)) + m for m in ms] for s, ms in self.msgs.items()
        }
        self.batched = {
            s: [b"\x0a" + _varint(len(m)) + m for m in ms] for s, ms in self.msgs.items()
        }
        self.pos = dict.fromkeys(streams, 0)
        self.subs: dict[str, list[Client]] = {s: [] for s in streams}
        self.transport = transport
        self.rate = 0.0
        self.delivered = 0
        self._carry = 0.0
        self._next = 0

    def subscribe(self, client: Client, symbols: list[str]) -> None:
        for s in symbols:  # the chain starts at the next message (loadgen: first one seen)
            if s in self.subs:
                self.subs[s].append(client)

    def unsubscribe(self, client: Client) -> None:
        for subs in self.subs.values():
            if client in subs:
                subs.remove(client)

    def _payload(self, client: Client, stream: str, i: int) -> bytes:
        if client.batch:
            return self.batched[stream][i]
        return self.framed[stream][i] if self.transport == "raw" else self.msgs[stream][i]

    def tick(self, seconds: float) -> None:
        self._carry += self.rate * seconds
        n, self._carry = int(self._carry), self._carry - int(self._carry)
        touched: dict[int, Client] = {}
        streams = self.streams
        for _ in range(n):
            s = streams[self._next % len(streams)]
            self._next += 7  # 7 is prime to 102: every stream in turn, not in order
            i = self.pos[s] = self.pos[s] + 1
            if i >= len(self.msgs[s]):
                continue  # pool exhausted: the run is longer than planned
            for c in self.subs[s]:
                c.pending.append(self._payload(c, s, i))
                touched[id(c)] = c
        for c in touched.values():
            self.flush(c)

    def flush(self, c: Client) -> None:
        pending, c.pending = c.pending, []
        if not pending:
            return
        self.delivered += len(pending)
        if c.batch:
            body = b"".join(pending)
            c.write(body)
        elif self.transport == "raw":
            c.write(b"".join(pending))
        else:
            for m in pending:
                c.write(m)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


# ---- transports -------------------------------------------------------------------------


class RawProtocol(asyncio.Protocol):
    """A WebSocket server endpoint reduced to what the benchmark needs."""

    def __init__(self, fan: FanOut) -> None:
        self.fan = fan
        self.buf = b""
        self.transport: Any = None
        self.client: Client | None = None
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep:
                return
            self.buf = rest
            self._upgrade(head)
        while self._frame():
            pass

    def _upgrade(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])
        }
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
        )
        self.upgraded = True
        batch = "true" in parse_qs(urlsplit(path).query).get("batch", [""])
        self.client = Client(self._write_batch if batch else self.transport.write, batch)

    def _write_batch(self, body: bytes) -> None:
        self.transport.write(frame_header(0x82, len(body)) + body)

    def _frame(self) -> bool:
        buf = self.buf
        if len(buf) < 6:
            return False
        opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
        off = 2
        if n == 126:
            n, off = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            n, off = int.from_bytes(buf[2:10], "big"), 10
        if len(buf) < off + 4 + n:
            return False
        mask, payload = buf[off : off + 4], buf[off + 4 : off + 4 + n]
        self.buf = buf[off + 4 + n :]
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if opcode == 8:
            self.transport.write(b"\x88\x02" + data[:2])
            self.transport.close()
        elif opcode == 1 and self.client is not None:
            _control(self.fan, self.client, data)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            self.fan.unsubscribe(self.client)


def _control(fan: FanOut, client: Client, data: bytes | str) -> None:
    msg = orjson.loads(data)
    if msg.get("op") == "subscribe":
        fan.subscribe(client, list(msg.get("symbols", [])))


async def serve_raw(fan: FanOut, port: int) -> Any:
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: RawProtocol(fan), "127.0.0.1", port, backlog=4096)


async def serve_websockets(fan: FanOut, port: int) -> Any:
    from websockets.asyncio.server import serve

    async def handler(conn: Any) -> None:
        query = parse_qs(urlsplit(conn.request.path).query)
        batch = "true" in query.get("batch", [""])
        proto = conn.protocol

        def write(data: bytes) -> None:
            if proto.state.name == "OPEN":
                proto.send_binary(data)
                conn.send_data()

        client = Client(write, batch)
        try:
            async for message in conn:
                _control(fan, client, message)
        except Exception:
            pass
        finally:
            fan.unsubscribe(client)

    return await serve(
        handler, "127.0.0.1", port, compression=None, ping_interval=None, backlog=4096
    )


async def serve_picows(fan: FanOut, port: int) -> Any:
    from picows import WSListener, WSMsgType, ws_create_server

    class Listener(WSListener):  # type: ignore[misc]
        def __init__(self, batch: bool) -> None:
            self.batch = batch
            self.client: Client | None = None

        def on_ws_connected(self, transport: Any) -> None:
            self.client = Client(lambda data: transport.send(WSMsgType.BINARY, data), self.batch)

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type == WSMsgType.TEXT and self.client is not None:
                _control(fan, self.client, frame.get_payload_as_bytes())
            elif frame.msg_type == WSMsgType.CLOSE:
                transport.send_close(frame.get_close_code())
                transport.disconnect()

        def on_ws_disconnected(self, transport: Any) -> None:
            if self.client is not None:
                fan.unsubscribe(self.client)

    def factory(request: Any) -> Any:
        batch = (
            "batch=true" in request.path.decode()
            if isinstance(request.path, bytes)
            else ("batch=true" in str(request.path))
        )
        return Listener(batch)

    return await ws_create_server(factory, "127.0.0.1", port, backlog=4096)


async def main_async(args: argparse.Namespace) -> None:
    streams = args.streams.split(",")
    fan = FanOut(streams, args.pool, args.transport)
    server = await {"raw": serve_raw, "websockets": serve_websockets, "picows": serve_picows}[
        args.transport
    ](fan, args.port)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)

    async def read_rates() -> None:
        while line := await reader.readline():
            fan.rate = float(line)

    task = asyncio.create_task(read_rates())
    tick = args.tick_ms / 1000
    last = loop.time()
    while not task.done():
        await asyncio.sleep(tick)
        now = loop.time()
        fan.tick(now - last)
        last = now
    server.close()
    print(orjson.dumps({"delivered": fan.delivered}).decode(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--transport", default="raw", choices=["raw", "websockets", "picows"])
    ap.add_argument("--streams", required=True)
    ap.add_argument("--pool", type=int, default=3000, help="messages pre-encoded per stream")
    ap.add_argument("--tick-ms", type=float, default=5.0)
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
