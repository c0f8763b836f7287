"""Many fast JSON WebSocket clients in one process (picows + orjson), for ``bench.latency``.

Each client connects to ``--url`` with ``?format=json``, subscribes to ``--per-client``
of the streams (client ``k`` of the whole run takes streams ``k, k+3, k+6`` of 9, so
every stream reaches a third of the clients) at depth 20 (``--depth``), speed raw
(``--channel bbo``: their best bid/offer), and records for every book message its age,
receive time minus ``ingest_ts`` (both ``time.time_ns()`` on this machine), into a
log-linear histogram per wall-clock second (``bench.latency_stats.bucket``). Per client
it keeps messages and the largest age per second, ``status`` ``resync`` and ``behind``
times and its close code. ``--pingers N``: the first N clients also send ``{"op":"ping","id":n}``
every ``--ping-ms`` and time the pong.

It stops by itself after ``--duration`` s (or at SIGUSR1/SIGTERM) and writes one
JSON object to ``--out`` (``"snapshot": -1``); SIGUSR2 writes the results so far
there without stopping (``"snapshot": n``, the n-th).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time
from typing import Any

import orjson
from picows import WSCloseCode, WSListener, WSMsgType, WSTransport, ws_connect

from bench.latency_stats import bucket

BOOK_PREFIX = b'{"type":"order_book_'
UPDATE_PREFIX = b'{"type":"order_book_update"'
BBO_PREFIX = b'{"type":"bbo"'
INGEST_KEY = b'"ingest_ts":'


class Recorder:
    """What one process saw: a latency histogram per second, counters, per-client series."""

    def __init__(self, clients: int) -> None:
        self.t0_s = int(time.time())
        self.hist: dict[int, list[int]] = {}
        self.negative = 0
        self.book_messages = 0
        self.updates = 0
        self.snapshots = 0
        self.update_bytes = 0
        self.other: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self.counts: list[list[int]] = [[] for _ in range(clients)]
        self.max_age_ms: list[list[int]] = [[] for _ in range(clients)]
        self.resync_ns: list[list[int]] = [[] for _ in range(clients)]
        self.behind_ns: list[list[int]] = [[] for _ in range(clients)]
        self.close: list[tuple[int, int] | None] = [None] * clients
        self.connected_ns = [0] * clients
        self.connect_ms = [-1.0] * clients
        self.group = [0] * clients
        """Which set of streams each client follows: clients with the same group are offered
        the same messages, so a fair share is judged among them."""
        self.errors: dict[str, int] = {}
        self.first_attempt_ns = 0
        self.ping_sent_ns: list[int] = []
        self.ping_rtt_us: list[int] = []

    def book(self, k: int, payload: bytes, now: int) -> None:
        i = payload.find(INGEST_KEY)
        if i < 0:
            return
        j = i + len(INGEST_KEY)
        end = payload.find(b",", j)
        if end < 0:
            end = payload.find(b"}", j)
        try:
            ingest = int(payload[j:end])
        except ValueError:
            return
        self.book_messages += 1
        # snapshots are larger: the frame size is updates' (every bbo is one)
        if payload.startswith(UPDATE_PREFIX) or payload.startswith(BBO_PREFIX):
            self.updates += 1
            self.update_bytes += len(payload)
        else:
            # A snapshot's ingest_ts is the book's last change: on a quiet stream that is
            # seconds ago, and it says nothing about how late the snapshot is. Ages are
            # the updates' (and bbo's) only.
            self.snapshots += 1
            return
        if not ingest:
            return
        age = (now - ingest) // 1000
        if age < 0:
            self.negative += 1
            age = 0
        sec = now // 1_000_000_000 - self.t0_s
        h = self.hist.get(sec)
        if h is None:
            h = self.hist[sec] = [0] * 800
        b = bucket(age)
        if b >= len(h):
            h.extend([0] * (b + 1 - len(h)))
        h[b] += 1
        counts = self.counts[k]
        if sec >= len(counts):
            counts.extend([0] * (sec + 1 - len(counts)))
            self.max_age_ms[k].extend([0] * (sec + 1 - len(self.max_age_ms[k])))
        counts[sec] += 1
        ms = age // 1000
        ages = self.max_age_ms[k]
        if ms > ages[sec]:
            ages[sec] = ms

    def control(self, k: int, payload: bytes, now: int) -> None:
        try:
            msg = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.other["bad_json"] = self.other.get("bad_json", 0) + 1
            return
        kind = str(msg.get("type")) if isinstance(msg, dict) else "list"
        self.other[kind] = self.other.get(kind, 0) + 1
        if kind == "status":
            st = str(msg.get("status"))
            self.status[st] = self.status.get(st, 0) + 1
            if st == "resync":
                self.resync_ns[k].append(now)
            elif st == "behind":
                told = self.behind_ns[k]
                if not told or now - told[-1] > 1_000_000:  # one per stream, read together
                    told.append(now)
        elif kind == "pong":
            n = msg.get("id")
            if isinstance(n, int) and 0 <= n < len(self.ping_sent_ns):
                self.ping_rtt_us[n] = (now - self.ping_sent_ns[n]) // 1000
        elif kind == "error":
            code = str(msg.get("code"))
            self.errors[f"error:{code}"] = self.errors.get(f"error:{code}", 0) + 1

    def result(self, clients: int) -> dict[str, Any]:
        def trim(xs: list[int]) -> list[int]:
            n = len(xs)
            while n and not xs[n - 1]:
                n -= 1
            return xs[:n]

        return {
            "clients": clients,
            "t0_s": self.t0_s,
            "first_attempt_ns": self.first_attempt_ns,
            "hist": {str(s): trim(h) for s, h in sorted(self.hist.items())},
            "negative_ages": self.negative,
            "book_messages": self.book_messages,
            "updates": self.updates,
            "snapshots": self.snapshots,
            "update_bytes": self.update_bytes,
            "other": self.other,
            "status": self.status,
            "errors": self.errors,
            "per_client": {
                "counts": self.counts,
                "max_age_ms": self.max_age_ms,
                "resync_ns": self.resync_ns,
                "behind_ns": self.behind_ns,
                "close": self.close,
                "connected_ns": self.connected_ns,
                "connect_ms": self.connect_ms,
                "group": self.group,
            },
            "pings": {"sent_ns": self.ping_sent_ns, "rtt_us": self.ping_rtt_us},
        }


class Client(WSListener):  # type: ignore[misc]
    """One connection: subscribe when connected, then classify every frame."""

    def __init__(self, rec: Recorder, k: int, sub: bytes) -> None:
        super().__init__()
        self.rec = rec
        self.k = k
        self.sub = sub
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.send(WSMsgType.TEXT, self.sub)

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        now = time.time_ns()
        t = frame.msg_type
        if t == WSMsgType.TEXT:
            payload = frame.get_payload_as_bytes()
            if payload.startswith(BOOK_PREFIX) or payload.startswith(BBO_PREFIX):
                self.rec.book(self.k, payload, now)
            else:
                self.rec.control(self.k, payload, now)
        elif t == WSMsgType.CLOSE:
            code = frame.get_close_code()
            self.rec.close[self.k] = (int(code), now)
            with contextlib.suppress(Exception):
                transport.send_close(code)
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.rec.close[self.k] is None:
            self.rec.close[self.k] = (int(WSCloseCode.ABNORMAL_CLOSURE), time.time_ns())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    streams = args.streams.split(",")
    rec = Recorder(args.clients)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    snaps = 0

    def snapshot() -> None:  # SIGUSR2: the results so far, for a caller deciding its next step
        nonlocal snaps
        snaps += 1
        write(args.out, rec.result(args.clients) | {"snapshot": snaps})

    loop.add_signal_handler(signal.SIGUSR2, snapshot)
    # signals are handled from here on: the caller waits for this before sending any
    open(f"{args.out}.ready", "w").close()
    deadline = loop.time() + args.duration
    gate = asyncio.Semaphore(args.concurrency)
    listeners: list[Client] = []
    sep = "&" if "?" in args.url else "?"
    url = f"{args.url}{sep}format=json"
    rec.first_attempt_ns = time.time_ns()

    async def connect(k: int) -> None:
        g = args.offset + k  # the client's index over the whole run
        groups = len(streams) // args.per_client or 1
        rec.group[k] = group = g % groups
        chosen = [streams[(group + groups * j) % len(streams)] for j in range(args.per_client)]
        req: dict[str, Any] = {"op": "subscribe", "id": 1, "channel": args.channel}
        req["symbols"] = chosen
        if args.channel == "book":
            req |= {"depth": args.depth, "speed": "raw"}
        sub = orjson.dumps(req)
        async with gate:
            t0 = time.monotonic()
            try:
                _, listener = await ws_connect(
                    lambda: Client(rec, k, sub),
                    url,
                    websocket_handshake_timeout=args.handshake_timeout,
                )
            except Exception as e:  # counted: a run reports refused clients, never dies
                name = type(e).__name__
                rec.errors[name] = rec.errors.get(name, 0) + 1
                return
        rec.connect_ms[k] = round((time.monotonic() - t0) * 1e3, 2)
        rec.connected_ns[k] = time.time_ns()
        listeners.append(listener)

    async def pinger(k: int) -> None:
        while not stop.is_set():
            await asyncio.sleep(args.ping_ms / 1000)
            lst = next((c for c in listeners if c.k == k), None)
            if lst is None or lst.transport is None or rec.close[k] is not None:
                continue
            n = len(rec.ping_sent_ns)
            rec.ping_sent_ns.append(time.time_ns())
            rec.ping_rtt_us.append(-1)
            lst.transport.send(WSMsgType.TEXT, b'{"op":"ping","id":%d}' % n)

    tasks = [asyncio.create_task(connect(k)) for k in range(args.clients)]
    pingers = [asyncio.create_task(pinger(k)) for k in range(min(args.pingers, args.clients))]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.1, deadline - loop.time()))
    stop.set()
    for t in [*tasks, *pingers]:
        t.cancel()
    await asyncio.gather(*tasks, *pingers, return_exceptions=True)
    for c in listeners:
        if c.transport is not None:
            with contextlib.suppress(Exception):
                c.transport.disconnect()
    return rec.result(args.clients) | {"snapshot": -1}


def write(path: str, result: dict[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/ws")
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--offset", type=int, default=0, help="index of this process's first client")
    ap.add_argument("--streams", required=True, help="comma-separated EXCHANGE:SYMBOL")
    ap.add_argument("--per-client", type=int, default=3)
    ap.add_argument("--channel", choices=("book", "bbo"), default="book")
    ap.add_argument("--depth", type=int, default=20, help="book channel's depth")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds, then stop")
    ap.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    ap.add_argument("--handshake-timeout", type=float, default=60.0)
    ap.add_argument("--pingers", type=int, default=0)
    ap.add_argument("--ping-ms", type=float, default=100.0)
    ap.add_argument("--out", required=True, help="JSON result file")
    args = ap.parse_args(argv)
    import uvloop

    uvloop.install()
    write(args.out, asyncio.run(run(args)))


if __name__ == "__main__":
    main()
