"""The floor for ``bench.latency``: a plain picows broadcaster, no Kafka, no books.

``python -m bench.latency_floor --port P --streams S1,...`` serves ``/ws`` to the
same clients as the gateway (``bench.latency_client``): it answers ``subscribe``
with ``subscribed`` and ``ping`` with ``pong``, like the gateway. The feed rate
(messages/s over all streams) is read from stdin, one number per line. Every
~1 ms the loop produces the messages that came due, round robin over the
streams; each is a JSON ``order_book_update`` of ``--frame-bytes`` (the size of
the gateway's depth-20 update) stamped with a fresh ``ingest_ts``
(``time.time_ns()`` when produced) and sent as one text frame to each of the
stream's subscribers: one ``send`` per frame per client, what a plain
broadcaster does. A client with more than ``--max-buffer`` bytes unsent has
frames dropped (counted) rather than the process's memory grow without bound
under overload. A line ``?`` on stdin prints the counters (``{"produced": n,
"sent": n, "dropped": n, "skipped": n}``) to stdout, as does EOF before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from picows import WSListener, WSMsgType, WSTransport, ws_create_server

from producers.simulate_run import MAX_LAG_NS
from producers.simulator import PoissonArrivals

SEED = 2
"""``mdgw simulate`` paces with ``PoissonArrivals(seed=simulator.seed + 1)``, default seed 1."""


def frame_parts(stream: str, size: int) -> tuple[bytes, bytes, bytes]:
    """(head, middle, tail) of a book update: ``head + seq + middle + ingest_ns + tail``,
    padded with levels so a frame is about ``size`` bytes."""
    exchange, symbol = stream.split(":", 1)
    head = (
        b'{"type":"order_book_update","exchange":"%s","symbol":"%s","timestamp":1764000000000000000,'
        b'"sequence":' % (exchange.encode(), symbol.encode())
    )
    levels: list[list[float]] = []
    ask_levels = [[97001.0, 0.42]]
    while True:
        middle = b',"prev_sequence":1,"bids":%s,"asks":%s,"checksum":1234567890,"ingest_ts":' % (
            orjson.dumps(levels),
            orjson.dumps(ask_levels),
        )
        tail = b',"gateway_ts":1764000000000000000}'
        total = len(head) + len(middle) + len(tail) + 7 + 19  # sequence, ingest_ts digits
        if total >= size or len(levels) > 50:
            return head, middle, tail
        levels.append([round(97000.5 - 0.5 * len(levels), 1), 1.23456])


class Floor:
    def __init__(self, streams: list[str], frame_bytes: int, max_buffer: int) -> None:
        self.streams = streams
        self.parts = [frame_parts(s, frame_bytes) for s in streams]
        self.subs: dict[str, list[WSTransport]] = {s: [] for s in streams}
        self.max_buffer = max_buffer
        self.rate = 0.0
        self.produced = 0
        self.sent = 0
        self.dropped = 0
        self.skipped = 0
        self._arrivals: PoissonArrivals | None = None
        self._next = 0
        self._seq = 1_000_000

    def counters(self) -> dict[str, int]:
        return {
            "produced": self.produced,
            "sent": self.sent,
            "dropped": self.dropped,
            "skipped": self.skipped,
        }

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self._arrivals = PoissonArrivals(rate, time.monotonic_ns(), seed=SEED) if rate > 0 else None

    def produce(self, now_ns: int) -> None:
        """Every message whose arrival time has come: the gaps of ``mdgw simulate``'s own
        Poisson arrivals, with its default seed, so the floor's feed has the same shape."""
        arrivals = self._arrivals
        if arrivals is None:
            return
        if now_ns - arrivals.next_ns > MAX_LAG_NS:  # far behind: drop the backlog, as it does
            self.skipped += arrivals.skip_to(now_ns)
        streams = self.streams
        text = WSMsgType.TEXT
        cap = self.max_buffer
        for _ in arrivals.due(now_ns):
            i = self._next % len(streams)
            self._next += 1
            self._seq += 1
            head, middle, tail = self.parts[i]
            frame = b"%s%d%s%d%s" % (head, self._seq, middle, time.time_ns(), tail)
            self.produced += 1
            for t in self.subs[streams[i]]:
                if t.underlying_transport.get_write_buffer_size() > cap:
                    self.dropped += 1
                    continue
                t.send(text, frame)
                self.sent += 1


class Listener(WSListener):  # type: ignore[misc]
    def __init__(self, floor: Floor) -> None:
        super().__init__()
        self.floor = floor
        self.mine: list[str] = []

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if frame.msg_type != WSMsgType.TEXT:
            return
        try:
            msg = orjson.loads(frame.get_payload_as_bytes())
        except orjson.JSONDecodeError:
            return
        op = msg.get("op") if isinstance(msg, dict) else None
        if op == "ping":
            pong = {"type": "pong", "id": msg.get("id"), "timestamp": time.time_ns()}
            transport.send(WSMsgType.TEXT, orjson.dumps(pong))
        elif op == "subscribe":
            names = [s for s in msg.get("symbols", []) if s in self.floor.subs]
            for s in names:
                self.floor.subs[s].append(transport)
            self.mine += names
            reply = {"type": "subscribed", "id": msg.get("id"), "channel": "book", "symbols": names}
            transport.send(WSMsgType.TEXT, orjson.dumps(reply))

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        for s in self.mine:
            subs = self.floor.subs[s]
            if transport in subs:
                subs.remove(transport)


async def main_async(args: argparse.Namespace) -> None:
    floor = Floor(args.streams.split(","), args.frame_bytes, args.max_buffer)
    server = await ws_create_server(
        lambda _request: Listener(floor),
        "127.0.0.1",
        args.port,
        backlog=4096,
        websocket_handshake_timeout=60,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)

    async def read_rates() -> None:
        while line := await reader.readline():
            if line.strip() == b"?":  # the counters so far, for the caller's windows
                print(orjson.dumps(floor.counters()).decode(), flush=True)
            else:
                floor.set_rate(float(line))

    task = asyncio.create_task(read_rates())
    while not task.done():
        await asyncio.sleep(0.001)
        floor.produce(time.monotonic_ns())
    server.close()
    print(orjson.dumps(floor.counters()).decode(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--streams", required=True)
    ap.add_argument("--frame-bytes", type=int, default=320)
    ap.add_argument("--max-buffer", type=int, default=1 << 20)
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
