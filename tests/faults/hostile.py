"""Hostile WebSocket clients, run as their own process against a gateway.

    python -m tests.faults.hostile --url ws://127.0.0.1:8080/ws --churn 2000

Everything at once: connections opened and dropped in a loop (raw TCP, handshake
then RST, subscribe then RST, clean close), half-open TCP connections that never
send a handshake, clients that subscribe to everything and never read, frames at
the size limit and one byte over, subscribe/unsubscribe floods, invalid UTF-8 in
text frames. Prints one JSON object with what the server did to each kind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

MAX_FRAME = 65_536


def _close_code(ws: ClientConnection) -> int | None:
    return ws.close_code


def _ping_of_size(size: int) -> str:
    """A valid ``ping`` control message of exactly ``size`` bytes of UTF-8."""
    head = '{"op":"ping","id":1,"pad":"'
    tail = '"}'
    return head + "x" * (size - len(head) - len(tail)) + tail


async def churn(
    url: str, host: str, port: int, n: int, rate: float, streams: list[str], out: dict[str, Any]
) -> None:
    """``n`` connections opened and dropped at ``rate`` per second (0: all at once, 50 in
    flight), four ways: TCP only, handshake then RST, subscribe then RST, clean close."""
    stats = {"tcp": 0, "ws_abort": 0, "ws_sub_abort": 0, "ws_close": 0, "refused": 0}
    sem = asyncio.Semaphore(50)
    t0 = time.monotonic()

    async def one(i: int) -> None:
        if rate > 0:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        async with sem:
            kind = i % 4
            try:
                if kind == 0:
                    _r, w = await asyncio.open_connection(host, port)
                    w.transport.abort()
                    stats["tcp"] += 1
                    return
                # half offer permessage-deflate (a zlib context each on the server)
                compression = "deflate" if i % 8 < 4 else None
                ws = await connect(url, compression=compression, open_timeout=10)
                if kind == 3:
                    await ws.close()
                    stats["ws_close"] += 1
                    return
                if kind == 2:
                    some = random.sample(streams, min(3, len(streams)))
                    msg = {"op": "subscribe", "id": i, "channel": "book", "symbols": some}
                    await ws.send(orjson.dumps({**msg, "depth": 20}).decode())
                    await asyncio.sleep(random.random() * 0.05)
                ws.transport.abort()  # RST: no close frame, no FIN handshake
                stats["ws_sub_abort" if kind == 2 else "ws_abort"] += 1
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
                stats["refused"] += 1

    await asyncio.gather(*(one(i) for i in range(n)))
    out["churn"] = stats


async def half_open(host: str, port: int, n: int, hold: float, out: dict[str, Any]) -> None:
    """TCP connections that never complete the handshake: the server must close them."""
    socks: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for i in range(n):
        r, w = await asyncio.open_connection(host, port)
        if i % 2:  # half of them start a request line and stop
            w.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        socks.append((r, w))
    t0 = time.monotonic()

    async def closed_after(r: asyncio.StreamReader) -> float | None:
        try:
            while await asyncio.wait_for(r.read(1024), hold):
                pass
        except TimeoutError:
            return None
        except OSError:
            pass
        return time.monotonic() - t0

    times = await asyncio.gather(*(closed_after(r) for r, _ in socks))
    for _, w in socks:
        w.transport.abort()
    done = [t for t in times if t is not None]
    out["half_open"] = {
        "opened": n,
        "closed_by_server": len(done),
        "max_close_s": round(max(done, default=0.0), 2),
    }


async def never_read(
    host: str, port: int, url: str, n: int, streams: list[str], hold: float, out: dict
) -> None:
    """Subscribe to every stream at full depth, then never read a byte."""
    conns: list[ClientConnection] = []
    for _ in range(n):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, port))
        sock.setblocking(False)
        ws = await connect(
            url + "?format=json", sock=sock, compression=None, max_size=None, max_queue=1
        )
        ws.transport.pause_reading()
        msg = {"op": "subscribe", "id": 1, "channel": "book", "symbols": streams, "depth": 0}
        await ws.send(orjson.dumps(msg).decode())
        conns.append(ws)
    await asyncio.sleep(hold)
    for ws in conns:
        ws.transport.abort()
    out["never_read"] = {"opened": n}


async def size_limit(url: str, out: dict[str, Any]) -> None:
    """Exactly 64 KiB is accepted (answered); one byte more closes with 1009."""
    async with connect(url + "?format=json", compression=None, max_size=None) as ws:
        await ws.send(_ping_of_size(MAX_FRAME))
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        while reply.get("type") not in ("pong", "error"):
            reply = orjson.loads(await asyncio.wait_for(ws.recv(), 10))
        at_limit = reply.get("type")
    ws = await connect(url + "?format=json", compression=None, max_size=None)
    try:
        await ws.send(_ping_of_size(MAX_FRAME + 1))
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed:
        pass
    out["size_limit"] = {"at_limit": at_limit, "over_limit_close": _close_code(ws)}


async def flood(
    url: str, n: int, per: int, streams: list[str], depth: int, out: dict[str, Any]
) -> None:
    """subscribe/unsubscribe as fast as the socket takes them (until closed 1008)."""

    async def one() -> int | None:
        ws = await connect(url + "?format=json", compression=None, max_size=None)
        try:
            for i in range(per):
                op = "subscribe" if i % 2 == 0 else "unsubscribe"
                msg = {"op": op, "id": i, "channel": "book", "symbols": streams, "depth": depth}
                await ws.send(orjson.dumps(msg).decode())
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            ws.transport.abort()
        return _close_code(ws)

    out["flood"] = {"close_codes": await asyncio.gather(*(one() for _ in range(n)))}


async def bad_utf8(url: str, n: int, out: dict[str, Any]) -> None:
    """Text frames that are not UTF-8: the protocol layer closes with 1007."""

    async def one() -> int | None:
        ws = await connect(url + "?format=json", compression=None)
        try:
            await ws.send(b'{"op":"ping","id":1,"x":"\xff\xfe\xc3\x28"}', text=True)
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        except (ConnectionClosed, TimeoutError):
            pass
        return _close_code(ws)

    out["bad_utf8"] = {"close_codes": await asyncio.gather(*(one() for _ in range(n)))}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    parts = urlsplit(args.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    streams = args.streams.split(",")
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    await asyncio.gather(
        churn(args.url, host, port, args.churn, args.churn_rate, streams, out),
        half_open(host, port, args.half_open, args.hold, out),
        never_read(host, port, args.url, args.never_read, streams, args.hold, out),
        size_limit(args.url, out),
        flood(args.url, args.floods, 400, streams, args.flood_depth, out),
        bad_utf8(args.url, args.bad_utf8, out),
    )
    out["seconds"] = round(time.monotonic() - t0, 2)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True)
    ap.add_argument("--streams", required=True)
    ap.add_argument("--churn", type=int, default=2000)
    ap.add_argument("--churn-rate", type=float, default=200.0, help="connections/s, 0: burst")
    ap.add_argument("--half-open", type=int, default=200)
    ap.add_argument("--never-read", type=int, default=20)
    ap.add_argument("--floods", type=int, default=10)
    ap.add_argument("--flood-depth", type=int, default=20, help="0: full-book snapshots")
    ap.add_argument("--bad-utf8", type=int, default=10)
    ap.add_argument("--hold", type=float, default=8.0, help="seconds half-open/never-read stay")
    ap.add_argument("--wait-go", action="store_true", help="print READY, start on a stdin line")
    args = ap.parse_args()
    if args.wait_go:  # the caller measures from "go", not from this interpreter's start-up
        print("READY", flush=True)
        sys.stdin.readline()
    result = asyncio.run(main(args))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
