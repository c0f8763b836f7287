"""Python client of the gateway: local books kept exact, verified, resynced, reconnected.

    async with MarketDataClient("ws://127.0.0.1:8080/ws") as client:
        await client.subscribe("book", ["BINANCE:BTC-USDT"], depth=20)
        async for event in client.events():
            if event.kind == "book":
                book = client.book("BINANCE:BTC-USDT")
                print(book.sequence, book.best_bid(), book.best_ask())

Every book message is checked: ``prev_sequence`` must equal the sequence of the
previous message of that subscription and the §5 checksum must match the local
book after applying it. On any mismatch the client asks for a ``resync`` and
ignores updates of that book until the fresh snapshot arrives. A dropped
connection is reconnected with exponential backoff and jitter, and every
subscription is sent again.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from sortedcontainers import SortedDict
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from schemas import market_data_pb2 as pb

_PAIR = struct.Struct("<dd")
_EXCHANGES = {1: "BINANCE", 2: "COINBASE", 3: "KRAKEN"}
_SIDES = {1: "buy", 2: "sell", 0: ""}


def checksum(asks: list[tuple[float, float]], bids: list[tuple[float, float]]) -> int:
    """docs/protocol.md §5: CRC-32 over the top 10 asks then the top 10 bids as <dd pairs."""
    return zlib.crc32(b"".join(_PAIR.pack(p, q) for p, q in asks[:10] + bids[:10]))


@dataclass
class LocalBook:
    """One subscription's book as the client holds it."""

    key: str
    depth: int
    bids: SortedDict = field(default_factory=SortedDict)
    asks: SortedDict = field(default_factory=SortedDict)
    sequence: int = -1
    valid: bool = False
    """False until a snapshot arrives, and again after a break until the next one."""
    checksum: int = 0
    messages: int = 0
    breaks: int = 0
    resyncs: int = 0

    def top_bids(self, n: int = 0) -> list[tuple[float, float]]:
        keys = self.bids.keys()
        stop = len(keys) if not n else min(n, len(keys))
        return [(keys[-1 - i], self.bids[keys[-1 - i]]) for i in range(stop)]

    def top_asks(self, n: int = 0) -> list[tuple[float, float]]:
        keys = self.asks.keys()
        stop = len(keys) if not n else min(n, len(keys))
        return [(keys[i], self.asks[keys[i]]) for i in range(stop)]

    def best_bid(self) -> tuple[float, float] | None:
        return self.bids.peekitem(-1) if self.bids else None

    def best_ask(self) -> tuple[float, float] | None:
        return self.asks.peekitem(0) if self.asks else None

    def local_checksum(self) -> int:
        return checksum(self.top_asks(10), self.top_bids(10))

    def load(self, bids: list[Any], asks: list[Any], sequence: int) -> None:
        self.bids = SortedDict((lv[0], lv[1]) for lv in bids)
        self.asks = SortedDict((lv[0], lv[1]) for lv in asks)
        self.sequence = sequence
        self.valid = True

    def apply(self, bids: list[Any], asks: list[Any], sequence: int) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for lv in levels:
                if lv[1]:
                    side[lv[0]] = lv[1]
                else:
                    side.pop(lv[0], None)
        if self.depth:
            while len(self.bids) > self.depth:
                self.bids.popitem(0)
            while len(self.asks) > self.depth:
                self.asks.popitem(-1)
        self.sequence = sequence


@dataclass
class CandleSeries:
    """The candles of one (stream, interval) subscription: the closed ones, oldest first
    (the last ``keep``), and the open one (docs/protocol.md §4.9)."""

    keep: int = 1000
    closed: list[dict[str, Any]] = field(default_factory=list)
    open: dict[str, Any] | None = None

    def update(self, msg: dict[str, Any]) -> None:
        if msg.get("closed"):
            self.closed.append(msg)
            del self.closed[: -self.keep]
            if self.open is not None and self.open["open_time"] <= msg["open_time"]:
                self.open = None
        else:
            self.open = msg


@dataclass
class Event:
    """What the client yields: kind is book, trade, stats, status, heartbeat, error, ..."""

    kind: str
    key: str
    data: dict[str, Any]
    received_ns: int


def _levels_pb(levels: Any) -> list[list[Any]]:
    return [[lv.price, lv.quantity] for lv in levels]


def pb_to_dict(msg: pb.MarketDataMessage) -> dict[str, Any]:
    """A protobuf data message in the JSON shape of docs/protocol.md §4.3."""
    kind = msg.WhichOneof("message")
    if kind == "order_book_update":
        u = msg.order_book_update
        agg = u.exchange == 0
        prefix = "aggregated_book" if agg else "order_book"
        d: dict[str, Any] = {
            "type": f"{prefix}_{'snapshot' if u.is_snapshot else 'update'}",
            "symbol": u.symbol,
            "timestamp": u.timestamp_ns,
            "sequence": u.sequence_number,
            "prev_sequence": u.prev_sequence_number,
            "depth": u.depth,
            "bids": _levels_pb(u.bids),
            "asks": _levels_pb(u.asks),
            "checksum": u.checksum,
            "ingest_ts": u.ingest_ns,
            "gateway_ts": u.gateway_ns,
        }
        if not agg:
            d["exchange"] = _EXCHANGES.get(u.exchange, "UNKNOWN")
        if u.is_replay:
            d["replay"] = True
            d["replay_id"] = u.replay_id
        return d
    if kind == "trade":
        t = msg.trade
        return {
            "type": "trade",
            "exchange": t.exchange,
            "symbol": t.symbol,
            "timestamp": t.timestamp_ns,
            "trade_id": t.trade_id,
            "price": t.price,
            "quantity": t.quantity,
            "side": _SIDES.get(t.side, ""),
            "sequence": t.sequence_number,
            "ingest_ts": t.ingest_ns,
            "gateway_ts": t.gateway_ns,
            **({"replay": True, "replay_id": t.replay_id} if t.is_replay else {}),
        }
    if kind == "statistics":
        s = msg.statistics
        return {"type": "statistics", **{f.name: getattr(s, f.name) for f in s.DESCRIPTOR.fields}}
    if kind == "heartbeat":
        return {"type": "heartbeat", "timestamp": msg.heartbeat.timestamp_ns}
    if kind == "candle":
        c = msg.candle
        return {
            "type": "candle",
            "exchange": c.exchange,
            "symbol": c.symbol,
            "interval": c.interval,
            "open_time": c.open_time_ns,
            "close_time": c.close_time_ns,
            "open": c.open,
            "high": c.high,
            "low": c.low,
            "close": c.close,
            "volume": c.volume,
            "quote_volume": c.quote_volume,
            "trades": c.trade_count,
            "vwap": c.vwap,
            "closed": c.closed,
        }
    return {"type": "unknown"}


class MarketDataClient:
    """A verifying, reconnecting client of the gateway's WebSocket protocol."""

    def __init__(
        self,
        url: str,
        *,
        fmt: str = "json",
        batch: bool = False,
        token: str | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        ssl: Any = None,
        **connect_kwargs: Any,
    ) -> None:
        self.url = url
        self.fmt = fmt
        self.batch = batch
        self.token = token
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.ssl = ssl
        self.connect_kwargs = connect_kwargs
        self.ws: ClientConnection | None = None
        self.books: dict[str, LocalBook] = {}
        self.candles: dict[tuple[str, str], CandleSeries] = {}
        """(stream, interval) -> its candles, for ``subscribe("candles", ..., interval=)``."""
        self.subscriptions: list[dict[str, Any]] = []
        self.reconnects = 0
        self.checksum_failures = 0
        self.sequence_breaks = 0
        self._ids = 0
        self._closed = False
        self._replays: dict[str, tuple[str, list[str], int]] = {}

    def _full_url(self) -> str:
        sep = "&" if "?" in self.url else "?"
        url = f"{self.url}{sep}format={self.fmt}"
        if self.batch:
            url += "&batch=true"
        return url

    async def connect(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        proto = "marketdata.v1.protobuf" if self.fmt == "protobuf" else "marketdata.v1.json"
        self.ws = await connect(
            self._full_url(),
            additional_headers=headers,
            subprotocols=[Subprotocol(proto)],
            ssl=self.ssl,
            max_size=None,
            **self.connect_kwargs,
        )
        for book in self.books.values():
            book.valid = False
        for sub in self.subscriptions:
            await self._send({**sub, "id": self._next_id()})

    async def __aenter__(self) -> MarketDataClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        if self.ws is not None:
            await self.ws.close()

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    async def _send(self, msg: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send(orjson.dumps(msg).decode())

    async def subscribe(
        self,
        channel: str,
        symbols: list[str],
        depth: int = 20,
        speed: str = "raw",
        interval: str = "1m",
    ) -> int:
        msg: dict[str, Any] = {"op": "subscribe", "channel": channel, "symbols": symbols}
        if channel == "candles":
            msg["interval"] = interval
            for s in symbols:
                self.candles.setdefault((s, interval), CandleSeries())
        if channel in ("book", "aggregated_book"):
            msg.update(depth=depth, speed=speed)
            for s in symbols:
                self.books[self.book_key(channel, s)] = LocalBook(s, depth)
        self.subscriptions.append(msg)
        req_id = self._next_id()
        await self._send({**msg, "id": req_id})
        return req_id

    async def send(self, msg: dict[str, Any]) -> None:
        """Send a raw control message (ping, unsubscribe, replay, ...)."""
        await self._send(msg)

    async def replay(
        self,
        channel: str,
        symbols: list[str],
        start: str | int,
        end: str | int = "live",
        *,
        depth: int = 20,
        speed: float = 0,
    ) -> int:
        """Start a time-travel replay; its books are ``replay:<id>:<stream>`` until
        ``replay_complete`` (with ``end="live"`` they then become the live books)."""
        req_id = self._next_id()
        if channel == "book":
            for s in symbols:
                key = f"replay:{req_id}:{s}"
                self.books[key] = LocalBook(key, depth)
        self._replays[str(req_id)] = (channel, symbols, depth)
        await self._send(
            {
                "op": "replay",
                "id": req_id,
                "channel": channel,
                "symbols": symbols,
                "depth": depth,
                "from": start,
                "to": end,
                "speed": speed,
            }
        )
        return req_id

    def _replay_complete(self, msg: dict[str, Any]) -> None:
        rid = str(msg.get("id"))
        channel, symbols, depth = self._replays.pop(rid, ("", [], 0))
        if not msg.get("live"):
            return
        if channel == "book":
            for s in symbols:
                book = self.books.pop(f"replay:{rid}:{s}", None)
                if book is not None:
                    book.key = s
                    self.books[s] = book
            self.subscriptions.append(
                {
                    "op": "subscribe",
                    "channel": "book",
                    "symbols": symbols,
                    "depth": depth,
                    "speed": "raw",
                }
            )
        elif channel == "trades":
            self.subscriptions.append({"op": "subscribe", "channel": "trades", "symbols": symbols})

    @staticmethod
    def book_key(channel: str, symbol: str) -> str:
        return f"agg:{symbol}" if channel == "aggregated_book" else symbol

    def book(self, symbol: str) -> LocalBook | None:
        return self.books.get(symbol) or self.books.get(f"agg:{symbol}")

    async def resync(self, symbol: str) -> None:
        await self._send({"op": "resync", "id": self._next_id(), "symbols": [symbol]})

    def _decode(self, frame: str | bytes) -> list[dict[str, Any]]:
        if isinstance(frame, str) or self.fmt == "json":
            data = orjson.loads(frame)
            return data if isinstance(data, list) else [data]
        if self.batch:
            return [pb_to_dict(m) for m in pb.MarketDataBatch.FromString(frame).messages]
        return [pb_to_dict(pb.MarketDataMessage.FromString(frame))]

    async def _frames(self) -> AsyncIterator[str | bytes]:
        backoff = 0.1
        while not self._closed:
            try:
                if self.ws is None:
                    await self.connect()
                assert self.ws is not None
                async for frame in self.ws:
                    backoff = 0.1
                    yield frame
                if not self.reconnect:
                    return
            except (ConnectionClosed, InvalidHandshake, OSError, TimeoutError):
                if not self.reconnect or self._closed:
                    return
            self.ws = None
            self.reconnects += 1
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(self.max_backoff, backoff * 2)

    async def events(self) -> AsyncIterator[Event]:
        """Verified events; book events are yielded after the local book is updated."""
        async for frame in self._frames():
            now = time.time_ns()
            for msg in self._decode(frame):
                event = await self._handle(msg, now)
                if event is not None:
                    yield event

    async def _handle(self, msg: dict[str, Any], now: int) -> Event | None:
        kind = msg.get("type", "")
        if kind.endswith("_snapshot") or kind.endswith("book_update"):
            agg = kind.startswith("aggregated")
            key = f"agg:{msg['symbol']}" if agg else f"{msg['exchange']}:{msg['symbol']}"
            if msg.get("replay"):
                key = f"replay:{msg.get('replay_id')}:{key}"
            book = self.books.get(key)
            if book is None:
                return Event("unsubscribed_book", key, msg, now)
            return await self._apply(book, msg, kind.endswith("_snapshot"), now)
        key = f"{msg.get('exchange', '')}:{msg.get('symbol', '')}"
        if kind == "replay_complete":
            self._replay_complete(msg)
        if kind == "candle":
            series = self.candles.get((key, msg.get("interval", "")))
            if series is not None:
                series.update(msg)
        if kind == "status" and msg.get("status") in ("stale", "resync"):
            agg_key = f"agg:{msg.get('symbol', '')}" if "exchange" not in msg else key
            book = self.books.get(agg_key)
            if book is not None:
                book.valid = False
        return Event({"statistics": "stats"}.get(kind, kind), key, msg, now)

    async def _apply(
        self, book: LocalBook, msg: dict[str, Any], snapshot: bool, now: int
    ) -> Event | None:
        if snapshot:
            book.load(msg["bids"], msg["asks"], msg["sequence"])
        elif not book.valid:
            return None
        elif msg["prev_sequence"] != book.sequence or msg["sequence"] <= book.sequence:
            self.sequence_breaks += 1
            book.breaks += 1
            await self._break(book)
            return Event("break", book.key, msg, now)
        else:
            book.apply(msg["bids"], msg["asks"], msg["sequence"])
        book.messages += 1
        book.checksum = msg["checksum"]
        if book.local_checksum() != msg["checksum"]:
            self.checksum_failures += 1
            await self._break(book)
            return Event("checksum_failure", book.key, msg, now)
        return Event("book", book.key, msg, now)

    async def _break(self, book: LocalBook) -> None:
        book.valid = False
        book.resyncs += 1
        if book.key.startswith("replay:"):
            return  # a replay cannot be resynced; the break is counted
        symbol = book.key.removeprefix("agg:")
        if self.ws is not None:
            await self.resync(symbol)
