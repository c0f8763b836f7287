"""Load generator: many verifying WebSocket clients in one process (run several).

Each client subscribes to ``--per-client`` random streams and checks every book
message (``prev_sequence`` chain and the §5 checksum, via mdgw_client), and
samples latency: ``gateway_ts - ingest_ts`` (gateway hop) and receive time minus
``ingest_ts`` (producer -> client). Prints one JSON object with the totals.

``--verify seq`` is the throughput mode: clients check the ``prev_sequence``
chain of every book message but keep no book (no checksum), except every
``--full-every``-th client, which still verifies everything. Every mode also
reports book messages per wall-clock second (``per_second``) and the receive
time of each latency sample (``sample_t_ns``), so a run whose feed rate changes
in steps can be cut into windows by the caller (``bench.run``).

    python -m bench.loadgen --url ws://127.0.0.1:8080/ws --clients 500 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import signal
import sys
import time
from typing import Any

import orjson
from mdgw_client import MarketDataClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from schemas import market_data_pb2 as pb


class Totals:
    def __init__(self) -> None:
        self.connected = 0
        self.failed = 0
        self.messages = 0
        self.book_messages = 0
        self.breaks = 0
        self.checksum_failures = 0
        self.closed_by_server = 0
        self.gateway_lat: list[int] = []
        self.e2e_lat: list[int] = []
        self.sample_t: list[int] = []
        self.connect_s: list[float] = []
        self.errors: dict[str, int] = {}
        self.per_second: dict[int, int] = {}
        """Book messages received per wall-clock second (time.time() // 1)."""
        self.status: dict[str, int] = {}
        """``status`` messages by status (stale, resync): data the server had to drop."""
        self.incident_t: list[int] = []
        """Receive times of breaks, checksum failures and status stale/resync messages."""
        self.first_attempt = 0.0
        self.last_connected = 0.0
        self.full_clients = 0
        self.final_books: dict[str, dict[str, int]] = {}
        """--final-books: per stream, each distinct final book (JSON levels) -> clients."""

    def count(self, now_ns: int, n: int = 1) -> None:
        sec = now_ns // 1_000_000_000
        self.per_second[sec] = self.per_second.get(sec, 0) + n

    def sample(self, now_ns: int, gateway_ts: int, ingest: int) -> None:
        self.gateway_lat.append(gateway_ts - ingest)
        self.e2e_lat.append(now_ns - ingest)
        self.sample_t.append(now_ns)

    def connected_now(self, t0: float) -> None:
        self.connected += 1
        now = time.time()
        self.connect_s.append(time.monotonic() - t0)
        self.last_connected = max(self.last_connected, now)


async def one_client(
    args: argparse.Namespace,
    streams: list[str],
    totals: Totals,
    rng: random.Random,
    start_at: float,
    stop_at: float,
) -> None:
    client = MarketDataClient(
        args.url,
        fmt=args.format,
        batch=args.batch,
        reconnect=False,
        compression="deflate" if args.compression else None,
        open_timeout=60,
        ping_interval=None,
        close_timeout=2,
    )
    t0 = time.monotonic()
    totals.first_attempt = totals.first_attempt or time.time()
    try:
        await client.connect()
    except Exception as e:  # counted: the run reports failures rather than dying
        totals.failed += 1
        totals.errors[type(e).__name__] = totals.errors.get(type(e).__name__, 0) + 1
        return
    totals.connected_now(t0)
    totals.full_clients += 1
    chosen = rng.sample(streams, min(args.per_client, len(streams)))
    await client.subscribe(args.channel, chosen, depth=args.depth, speed=args.speed)
    sample = args.sample
    n = 0
    try:
        async with asyncio.timeout(max(0.1, stop_at - time.monotonic())):
            async for ev in client.events():
                totals.messages += 1
                if ev.kind == "book":
                    totals.book_messages += 1
                    totals.count(ev.received_ns)
                    n += 1
                    if time.monotonic() >= start_at and n % sample == 0:
                        d: dict[str, Any] = ev.data
                        ingest = d.get("ingest_ts") or 0
                        if ingest:
                            totals.sample(ev.received_ns, d["gateway_ts"], ingest)
                elif ev.kind == "status":
                    st = str(ev.data.get("status"))
                    totals.status[st] = totals.status.get(st, 0) + 1
                    totals.incident_t.append(ev.received_ns)
                elif ev.kind in ("break", "checksum_failure"):
                    totals.incident_t.append(ev.received_ns)
            totals.closed_by_server += 1
    except TimeoutError:
        pass
    finally:
        totals.breaks += client.sequence_breaks
        totals.checksum_failures += client.checksum_failures
        if args.final_books:
            for stream in chosen:
                book = client.book(stream)
                if book is not None and book.valid:
                    state = json.dumps([book.top_bids(), book.top_asks()])
                else:  # counted, so a test sees how many ended without a valid book
                    state = "none" if book is None else "invalid"
                seen = totals.final_books.setdefault(stream, {})
                seen[state] = seen.get(state, 0) + 1
        await client.close()


class SeqChecker:
    """Throughput mode: the ``prev_sequence`` chain of every book message, no book kept."""

    def __init__(self, totals: Totals, start_at: float, sample: int) -> None:
        self.totals = totals
        self.last: dict[str, int] = {}
        self.start_at = start_at
        self.sample = sample
        self.n = 0

    def book(
        self, key: str, snapshot: bool, seq: int, prev: int, gw: int, ing: int, now: int
    ) -> None:
        t = self.totals
        t.book_messages += 1
        last = self.last
        if snapshot or key not in last:  # the chain starts at a snapshot (or the first seen)
            last[key] = seq
        else:
            if prev != last[key] or seq <= prev:
                t.breaks += 1
                t.incident_t.append(now)
                del last[key]  # counted once; the chain restarts at the next snapshot
            else:
                last[key] = seq
        self.n += 1
        if ing and self.n % self.sample == 0 and time.monotonic() >= self.start_at:
            t.sample(now, gw, ing)

    def status(self, msg: dict[str, Any]) -> None:
        st = str(msg.get("status"))
        self.totals.status[st] = self.totals.status.get(st, 0) + 1
        self.totals.incident_t.append(time.time_ns())
        key = f"{msg.get('exchange', '')}:{msg.get('symbol', '')}"
        self.last.pop(key, None)

    def json_frame(self, frame: str | bytes, now: int) -> None:
        data = orjson.loads(frame)
        msgs = data if isinstance(data, list) else (data,)
        n = 0
        for m in msgs:
            kind = m.get("type", "")
            if kind == "order_book_update" or kind == "order_book_snapshot":
                n += 1
                self.book(
                    f"{m['exchange']}:{m['symbol']}",
                    kind == "order_book_snapshot",
                    m["sequence"],
                    m.get("prev_sequence", 0),
                    m.get("gateway_ts", 0),
                    m.get("ingest_ts", 0),
                    now,
                )
            elif kind == "status":
                self.status(m)
        self.totals.messages += len(msgs)
        if n:
            self.totals.count(now, n)

    def pb_frame(self, frame: bytes, batch: bool, now: int) -> None:
        msgs = (
            pb.MarketDataBatch.FromString(frame).messages
            if batch
            else (pb.MarketDataMessage.FromString(frame),)
        )
        n = 0
        for m in msgs:
            if m.WhichOneof("message") == "order_book_update":
                u = m.order_book_update
                n += 1
                self.book(
                    f"{_EXCHANGES.get(u.exchange, '')}:{u.symbol}",
                    u.is_snapshot,
                    u.sequence_number,
                    u.prev_sequence_number,
                    u.gateway_ns,
                    u.ingest_ns,
                    now,
                )
        self.totals.messages += len(msgs)
        if n:
            self.totals.count(now, n)


_EXCHANGES = {1: "BINANCE", 2: "COINBASE", 3: "KRAKEN"}


async def seq_client(
    args: argparse.Namespace,
    streams: list[str],
    totals: Totals,
    rng: random.Random,
    start_at: float,
    stop_at: float,
) -> None:
    """A client of ``--verify seq``: raw websockets, sequence chain only."""
    sep = "&" if "?" in args.url else "?"
    url = f"{args.url}{sep}format={args.format}" + ("&batch=true" if args.batch else "")
    t0 = time.monotonic()
    totals.first_attempt = totals.first_attempt or time.time()
    try:
        ws = await connect(
            url,
            max_size=None,
            open_timeout=60,
            ping_interval=None,
            close_timeout=2,
            compression="deflate" if args.compression else None,
        )
    except Exception as e:  # counted: the run reports failures rather than dying
        totals.failed += 1
        totals.errors[type(e).__name__] = totals.errors.get(type(e).__name__, 0) + 1
        return
    totals.connected_now(t0)
    chosen = rng.sample(streams, min(args.per_client, len(streams)))
    sub = {"op": "subscribe", "id": 1, "channel": args.channel, "symbols": chosen}
    sub.update(depth=args.depth, speed=args.speed)
    checker = SeqChecker(totals, start_at, args.sample)
    binary = args.format == "protobuf"
    try:
        await ws.send(orjson.dumps(sub).decode())
        async with asyncio.timeout(max(0.1, stop_at - time.monotonic())):
            async for frame in ws:
                now = time.time_ns()
                if isinstance(frame, str) or not binary:
                    checker.json_frame(frame, now)
                else:
                    checker.pb_frame(frame, args.batch, now)
            totals.closed_by_server += 1
    except TimeoutError:
        pass
    except ConnectionClosed:
        totals.closed_by_server += 1
    finally:
        await ws.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        pass
    streams = args.streams.split(",")
    rng = random.Random(args.seed)
    totals = Totals()
    t_start = time.monotonic()
    stop_at = t_start + args.ramp + args.duration
    start_at = t_start + args.ramp + args.warmup
    tasks: list[asyncio.Task[None]] = []
    # SIGUSR1 ends the run early (bench.run stops the clients when its steps are done)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, lambda: [t.cancel() for t in tasks]
    )
    for i in range(args.clients):
        full = args.verify == "full" or (args.full_every and i % args.full_every == 0)
        fn = one_client if full else seq_client
        tasks.append(asyncio.create_task(fn(args, streams, totals, rng, start_at, stop_at)))
        if args.connect_rate and i % args.connect_rate == args.connect_rate - 1:
            await asyncio.sleep(1.0)
        elif i % 50 == 49:
            await asyncio.sleep(0)
    connected_at = time.monotonic()
    await asyncio.gather(*tasks, return_exceptions=True)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "clients": args.clients,
        "connected": totals.connected,
        "failed": totals.failed,
        "errors": totals.errors,
        "messages": totals.messages,
        "book_messages": totals.book_messages,
        "breaks": totals.breaks,
        "checksum_failures": totals.checksum_failures,
        "closed_by_server": totals.closed_by_server,
        "status": totals.status,
        "full_verify_clients": totals.full_clients,
        "gateway_lat_ns": totals.gateway_lat,
        "e2e_lat_ns": totals.e2e_lat,
        "sample_t_ns": totals.sample_t,
        "incident_t_ns": totals.incident_t,
        "per_second": {str(k): v for k, v in sorted(totals.per_second.items())},
        "connect_s_max": max(totals.connect_s, default=0.0),
        "first_attempt": totals.first_attempt,
        "last_connected": totals.last_connected,
        "spawn_s": connected_at - t_start,
        "measure_s": args.duration - args.warmup,
        "client_rss_kib": rss_kib,
        "final_books": totals.final_books,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--url", required=True)
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--streams", required=True, help="comma-separated EXCHANGE:SYMBOL")
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--channel", default="book")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--speed", default="raw")
    ap.add_argument("--format", default="protobuf", choices=["json", "protobuf"])
    ap.add_argument("--batch", action="store_true")
    ap.add_argument("--compression", action="store_true")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--ramp", type=float, default=0.0, help="seconds reserved for connecting")
    ap.add_argument("--connect-rate", type=int, default=0, help="connections per second (0=max)")
    ap.add_argument("--sample", type=int, default=1, help="latency sample every Nth message")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--verify",
        default="full",
        choices=["full", "seq"],
        help="full: sequences and checksums (a local book per subscription); "
        "seq: the prev_sequence chain only (throughput runs)",
    )
    ap.add_argument(
        "--full-every",
        type=int,
        default=0,
        help="with --verify seq, every Nth client still verifies fully (0 = none)",
    )
    ap.add_argument(
        "--final-books",
        action="store_true",
        help="report every verifying client's books as they were at the end (tests "
        "stop the feed first and compare them with the server's)",
    )
    args = ap.parse_args(argv)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
