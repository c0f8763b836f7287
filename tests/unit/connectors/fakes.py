"""Local fake venues for the connector tests: a true book, a WebSocket (+ HTTP) server.

Each fake keeps the venue's book exactly (Decimal prices on a tick grid, bids
below 100, asks above, never crossed), plays a per-connection *plan* of steps
(updates, trades, lost messages, malformed frames, unknown symbols, socket
closes) and answers the client's subscribe messages the way the venue's docs
say. The tests then compare what the connector published with the fake's book
and with the trades it delivered.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from core.book import ApplyResult, OrderBook
from core.types import BookUpdate, Exchange, Trade, parse_stream_key
from mdgw.kafka.sink import MemorySink
from schemas import codec

Step = tuple[Any, ...]
Level = tuple[Decimal, Decimal]
_NUM = re.compile(r'"#num:([-0-9.E]+)"')


def num(text: str) -> str:
    """Mark a number so :func:`dumps` writes it bare, digits as given (Kraken v2)."""
    return f"#num:{text}"


def dumps(obj: Any) -> str:
    """JSON with :func:`num` markers turned into bare numbers."""
    return _NUM.sub(r"\1", json.dumps(obj, separators=(",", ":")))


def iso(ns: int) -> str:
    """Unix ns -> RFC 3339 with microseconds, as Kraken and Coinbase write times."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000 // 1000:06d}Z"


class FakeBook:
    """One symbol's true book: ``price -> qty`` per side, quantized Decimals."""

    def __init__(self, rng: random.Random, levels: int = 15, price_places: int = 2) -> None:
        self.rng = rng
        self.tick = Decimal(1).scaleb(-price_places)
        self.q_unit = Decimal(1).scaleb(-8)
        self.mid = Decimal(100)
        self.levels = levels
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        for k in range(1, levels + 1):
            self.bids[self.price("bid", k)] = self.qty()
            self.asks[self.price("ask", k)] = self.qty()

    def price(self, side: str, k: int) -> Decimal:
        p = self.mid - self.tick * k if side == "bid" else self.mid + self.tick * k
        return p.quantize(self.tick)

    def qty(self) -> Decimal:
        return (Decimal(self.rng.randint(1, 900_000)) / 100_000).quantize(self.q_unit)

    def side(self, side: str) -> dict[Decimal, Decimal]:
        return self.bids if side == "bid" else self.asks

    def change(self) -> tuple[str, Decimal, Decimal]:
        """One random set / insert / remove; returns (side, price, new qty; 0 = removed)."""
        side = self.rng.choice(("bid", "ask"))
        book = self.side(side)
        r = self.rng.random()
        if r < 0.2 and len(book) > 5:
            price = self.rng.choice(sorted(book))
            del book[price]
            return side, price, Decimal(0).quantize(self.q_unit)
        if r < 0.5:
            price = self.price(side, self.rng.randint(1, self.levels + 5))
        else:
            price = self.rng.choice(sorted(book))
        book[price] = self.qty()
        return side, price, book[price]

    def top(self, side: str, n: int = 0) -> list[Level]:
        """Best first: bids descending, asks ascending."""
        book = self.side(side)
        levels = sorted(book.items(), reverse=(side == "bid"))
        return levels[:n] if n else levels

    def floats(self, side: str, n: int = 0) -> list[tuple[float, float]]:
        return [(float(p), float(q)) for p, q in self.top(side, n)]


class FakeServer:
    """A WebSocket server on 127.0.0.1 (any port) that also answers plain HTTP GETs.

    Subclasses implement :meth:`session` (one WebSocket connection, numbered from 1)
    and may implement :meth:`http` (path -> status, JSON body).
    """

    def __init__(self, plans: list[list[Step]], seed: int = 1) -> None:
        self.plans = plans
        self.rng = random.Random(seed)
        self.connections = 0
        self.received: list[Any] = []
        self.http_paths: list[str] = []
        self.clock_ns = 1_700_000_000_000_000_000
        self.finished = False
        """Set once the last connection's plan has been played."""
        self._server: Server | None = None

    async def __aenter__(self) -> FakeServer:
        self._server = await serve(
            self._session, "127.0.0.1", 0, process_request=self._process_request
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def now(self) -> int:
        """A fake exchange clock: +1 ms per call."""
        self.clock_ns += 1_000_000
        return self.clock_ns

    def plan(self, n: int) -> list[Step]:
        return self.plans[n - 1] if n <= len(self.plans) else []

    def http(self, path: str) -> tuple[int, Any]:
        return 404, {"error": "not found"}

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None
        self.http_paths.append(request.path)
        status, body = self.http(request.path)
        return conn.respond(status, json.dumps(body))

    async def _session(self, ws: ServerConnection) -> None:
        self.connections += 1
        n = self.connections
        try:
            await self.session(ws, n)
        except ConnectionClosed:
            pass

    async def session(self, ws: ServerConnection, n: int) -> None:
        raise NotImplementedError

    async def recv_json(self, ws: ServerConnection) -> Any:
        msg = json.loads(await ws.recv())
        self.received.append(msg)
        return msg


@dataclass
class Published:
    """What the connector published, decoded and checked (see :func:`check_published`)."""

    books: dict[str, OrderBook] = field(default_factory=dict)
    snapshots: dict[str, int] = field(default_factory=dict)
    book_records: dict[str, int] = field(default_factory=dict)
    trades: dict[str, list[Trade]] = field(default_factory=dict)


def decoded(sink: MemorySink) -> list[BookUpdate | Trade]:
    out = []
    for _topic, _key, value, _headers in sink.records:
        assert value is not None
        msg = codec.decode(value)
        assert isinstance(msg, BookUpdate | Trade)
        out.append(msg)
    return out


def check_published(sink: MemorySink, base_min: int = 10**15) -> Published:
    """Assert docs/protocol.md §2.2 per stream and rebuild every book with ``OrderBook``.

    Book records: the first a snapshot, then ``sequence == prev + 1`` and
    ``prev_sequence == previous sequence``, starting above ``base_min`` (the
    wall-clock base); each record's checksum equals the rebuilt book's. Trades:
    contiguous sequences too, trade ids unique. Record keys are the stream names.
    """
    out = Published()
    last_trade: dict[str, int] = {}
    for (_topic, key, _value, _headers), msg in zip(sink.records, decoded(sink), strict=True):
        assert key == msg.stream
        if isinstance(msg, Trade):
            prev = last_trade.get(msg.stream)
            assert prev is None or msg.sequence == prev + 1, (msg.stream, prev, msg.sequence)
            assert msg.sequence > base_min
            last_trade[msg.stream] = msg.sequence
            out.trades.setdefault(msg.stream, []).append(msg)
            continue
        book = out.books.get(msg.stream)
        if book is None:
            assert msg.is_snapshot, f"{msg.stream}: first record is not a snapshot"
            assert msg.sequence > base_min
            book = out.books[msg.stream] = OrderBook(*parse_stream_key(msg.stream))
        else:
            assert (msg.sequence, msg.prev_sequence) == (book.sequence + 1, book.sequence)
        result = book.apply(msg)
        assert result in (ApplyResult.SNAPSHOT, ApplyResult.APPLIED), (msg.stream, result)
        assert book.checksum() == msg.checksum, f"{msg.stream}: checksum differs at {msg.sequence}"
        out.snapshots[msg.stream] = out.snapshots.get(msg.stream, 0) + msg.is_snapshot
        out.book_records[msg.stream] = out.book_records.get(msg.stream, 0) + 1
    for trades in out.trades.values():
        ids = [t.trade_id for t in trades]
        assert len(ids) == len(set(ids)), "a trade was published twice"
    return out


def book_matches(book: OrderBook | None, fake: FakeBook, depth: int = 0) -> bool:
    return (
        book is not None
        and not book.stale
        and book.bids() == fake.floats("bid", depth)
        and book.asks() == fake.floats("ask", depth)
    )


async def wait_until(pred: Callable[[], bool], timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def stream(exchange: Exchange, symbol: str) -> str:
    return f"{exchange.name}:{symbol}"
