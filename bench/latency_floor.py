"""The floor for ``bench.latency``: a plain picows broadcaster, no Kafka, no books.

``python -m bench.latency_floor --port P --streams S1,...`` serves ``/ws`` to the
same clients as the gateway (``bench.latency_client``): it answers ``subscribe``
with ``subscribed`` and ``ping`` with ``pong``, like the gateway. The feed rate
(messages/s over all streams) is read from stdin, one number per line (anything
else is reported on stderr and skipped). When a
message comes due (Poisson arrivals, as ``mdgw simulate`` paces), a feed thread
wakes the loop, which produces the messages due by then, round robin over the
streams; each is a JSON ``order_book_update`` of ``--frame-bytes`` (the size of the
gateway's depth-20 update) and sent as one text frame to each of the stream's
subscribers: one ``send`` per frame per client, what a plain broadcaster does.

Its ``ingest_ts`` is the message's arrival time (``--stamp due``, the default): the
moment an outside feed would have handed it over, as ``mdgw simulate`` stamps a
record when it hands it to Kafka. The wait until the loop gets to it (a pass over
the clients still running; with ``--wake tick``, its 1 ms timer too) is part of the
floor's latency, as the same wait is part of the gateway's. ``--stamp produced``
stamps the moment the frame is built instead, which leaves that wait out (how the
floor stamped before the nineteenth pass); either way the wait is counted, in µs, in
``late``.

``--feed kafka`` puts the same broadcaster behind Kafka: rates on stdin are ignored,
and a consumer thread (the gateway's Kafka client wrapper and settings, every
partition of the book topic from its end, as ``bench.kafka_floor``) hands each batch
of records to the loop, which sends one frame per book record of the floor's streams,
stamped with the record's own ``ingest_ts`` (the producer's). No books, no sequencing
checks, no per-client queues: what any Kafka-sourced broadcaster pays, and the floor
of a gateway fed by the same records (``bench.latency``'s ``kafkafed`` workload).

A client with more than ``--max-buffer`` bytes unsent has frames dropped (counted)
rather than the process's memory grow without bound under overload. A line ``?``
on stdin prints the counters (``{"produced": n, "sent": n, "dropped": n,
"skipped": n, "late": [bucket counts]}``) to stdout, as does EOF before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from typing import Any

import orjson
from picows import WSListener, WSMsgType, WSTransport, ws_create_server

from bench.kafka_floor import record_stamp
from bench.latency_stats import observe
from bench.rate_lines import read_rate
from producers.simulate_run import MAX_LAG_NS
from producers.simulator import PoissonArrivals

SEED = 2
"""``mdgw simulate`` paces with ``PoissonArrivals(seed=simulator.seed + 1)``, default seed 1."""


def stream_list(text: str) -> list[str]:
    """``--streams``: comma-separated ``EXCHANGE:SYMBOL`` names (an argparse type)."""
    streams = text.split(",")
    for s in streams:
        exchange, _, symbol = s.partition(":")
        if not exchange or not symbol:
            raise argparse.ArgumentTypeError(f"{s!r} is not EXCHANGE:SYMBOL")
    return streams


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
    def __init__(
        self, streams: list[str], frame_bytes: int, max_buffer: int, stamp_due: bool = True
    ) -> None:
        self.streams = streams
        self.stamp_due = stamp_due
        self.parts = [frame_parts(s, frame_bytes) for s in streams]
        self.subs: dict[str, list[WSTransport]] = {s: [] for s in streams}
        self.max_buffer = max_buffer
        self.rate = 0.0
        self.produced = 0
        self.sent = 0
        self.dropped = 0
        self.skipped = 0
        self.late: list[int] = []
        """Histogram (``latency_stats.bucket``, µs) of each message's wait from its arrival
        time to its frame being built."""
        self._arrivals: PoissonArrivals | None = None
        self._next = 0
        self._seq = 1_000_000
        self._index = {s: i for i, s in enumerate(streams)}
        self.unknown = 0
        """Records (``--feed kafka``) that are not a stamped book record of the floor's streams."""

    def counters(self) -> dict[str, Any]:
        return {
            "produced": self.produced,
            "sent": self.sent,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "unknown": self.unknown,
            "late": list(self.late),
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
        wall_offset = time.time_ns() - time.monotonic_ns()
        for due in arrivals.due(now_ns):
            i = self._next % len(self.streams)
            self._next += 1
            arrived = due + wall_offset
            built = time.time_ns()
            observe(self.late, (built - arrived) // 1000)
            self.broadcast(i, arrived if self.stamp_due else built)

    def records(self, values: list[bytes | None]) -> None:
        """``--feed kafka``: one frame per book record of the floor's streams, stamped
        with the producer's ``ingest_ts``; the wait since then (Kafka, the hand-off and
        the loop) is counted in ``late``."""
        built = time.time_ns()
        for value in values:
            found = record_stamp(value)
            i = None if found is None else self._index.get(found[0])
            if found is None or i is None:
                self.unknown += 1
                continue
            observe(self.late, (built - found[1]) // 1000)
            self.broadcast(i, found[1])

    def broadcast(self, i: int, stamp: int) -> None:
        """One message of stream ``i``: a frame built, sent to each of its subscribers."""
        self._seq += 1
        head, middle, tail = self.parts[i]
        frame = b"%s%d%s%d%s" % (head, self._seq, middle, stamp, tail)
        self.produced += 1
        text = WSMsgType.TEXT
        cap = self.max_buffer
        for t in self.subs[self.streams[i]]:
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


def feed_thread(floor: Floor, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
    """Wake the loop when the next message comes due, as a feed handing messages over
    from another thread does (the gateway's consumer thread): it sleeps until the arrival
    time, asks the loop to produce, and waits until it has. The loop's own timers (libuv's
    are whole milliseconds) would add ~0.5 ms to every message's age."""
    produced = threading.Event()

    def produce() -> None:
        floor.produce(time.monotonic_ns())
        produced.set()

    while not stop.is_set():
        arrivals = floor._arrivals
        delay = 0.01 if arrivals is None else (arrivals.next_ns - time.monotonic_ns()) / 1e9
        if delay > 0:
            stop.wait(min(delay, 0.01))  # then look again: the rate may have changed
            continue
        produced.clear()
        try:
            loop.call_soon_threadsafe(produce)
        except RuntimeError:  # the loop is closed: the process is exiting
            return
        produced.wait(1.0)


def kafka_thread(
    floor: Floor,
    loop: asyncio.AbstractEventLoop,
    stop: threading.Event,
    ready: threading.Event,
) -> None:
    """``--feed kafka``: consume the book topic from its end (the gateway's client wrapper
    and settings, from the environment as the gateway reads them) and hand each batch to
    the loop, as the gateway's consumer thread does; ``ready`` is set once assigned at
    the topic's end (what comes next is read)."""
    from bench.common import bare_source
    from mdgw.config import load_config

    cfg = load_config().kafka
    src = bare_source(cfg, "kafka-fed-floor", (cfg.book_topic,))
    ready.set()
    try:
        while not stop.is_set():
            batch = src.consume(2000, 0.1)  # the gateway's batch size
            if not batch:
                continue
            try:
                loop.call_soon_threadsafe(floor.records, [r.value for r in batch])
            except RuntimeError:  # the loop is closed: the process is exiting
                return
    finally:
        src.close()


async def main_async(args: argparse.Namespace) -> None:
    floor = Floor(args.streams, args.frame_bytes, args.max_buffer, args.stamp == "due")
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
    stop = threading.Event()
    from_kafka = args.feed == "kafka"
    feeder: threading.Thread | None = None
    if from_kafka:
        ready = threading.Event()
        feeder = threading.Thread(target=kafka_thread, args=(floor, loop, stop, ready), daemon=True)
        feeder.start()
        while not ready.is_set():
            if not feeder.is_alive():
                raise SystemExit("latency_floor: the Kafka feed did not start (see above)")
            await asyncio.sleep(0.05)
    elif args.wake == "feed":
        feeder = threading.Thread(target=feed_thread, args=(floor, loop, stop), daemon=True)
        feeder.start()
    print("ready", flush=True)

    async def read_rates() -> None:
        while line := await reader.readline():
            if line.strip() == b"?":  # the counters so far, for the caller's windows
                print(orjson.dumps(floor.counters()).decode(), flush=True)
            elif (rate := read_rate(line, "latency_floor")) is not None and not from_kafka:
                floor.set_rate(rate)  # a Kafka-fed floor's rate is its producer's

    task = asyncio.create_task(read_rates())
    if feeder is None:  # --wake tick
        while not task.done():
            await asyncio.sleep(0.001)
            floor.produce(time.monotonic_ns())
    else:
        await task
    stop.set()
    if feeder is not None:
        feeder.join(2.0)
    server.close()
    print(orjson.dumps(floor.counters()).decode(), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--streams", type=stream_list, required=True, help="EXCHANGE:SYMBOL,...")
    ap.add_argument("--frame-bytes", type=int, default=320)
    ap.add_argument("--max-buffer", type=int, default=1 << 20)
    ap.add_argument(
        "--stamp",
        choices=("due", "produced"),
        default="due",
        help="ingest_ts: the message's arrival time (default) or when its frame is built",
    )
    ap.add_argument(
        "--wake",
        choices=("feed", "tick"),
        default="feed",
        help="the loop produces when a feed thread wakes it at each arrival (default), or "
        "on a 1 ms timer (before the nineteenth pass)",
    )
    ap.add_argument(
        "--feed",
        choices=("rate", "kafka"),
        default="rate",
        help="messages at the rate read from stdin (default), or one per book record read "
        "from Kafka (the book topic of the environment's config, MDGW_KAFKA_*)",
    )
    args = ap.parse_args()
    import uvloop

    uvloop.install()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
