"""A verifying, reconnecting client of the gateway's WebSocket protocol (docs/protocol.md §4).

Every book message is checked: ``prev_sequence`` must equal the sequence of the
previous message of that subscription and the §5 checksum must match the local
book after applying it. On any mismatch the client asks for a ``resync`` and
ignores updates of that book until the fresh snapshot arrives. A dropped
connection is reconnected with exponential backoff and jitter, and every
subscription is sent again; a book that was whole when the connection dropped
asks to resume (``since``: its last sequence, docs/protocol.md §4.10), so the server
sends only what it missed, or a snapshot when it no longer holds that.

``bbo`` messages (docs/protocol.md §4.8) are whole tops: ``client.bbo(name)`` is the
latest; a broken ``prev_sequence`` chain is counted in ``sequence_breaks``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from mdgw_client.book import LocalBook
from mdgw_client.decode import Message, decode_frame

Format = Literal["json", "protobuf"]


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
    """What the client yields. ``kind`` is the message's ``type`` (``stats`` for
    ``statistics``), or ``book`` for a verified book message, ``break`` for a
    sequence break, ``checksum_failure``, ``unsubscribed_book``."""

    kind: str
    key: str
    """The stream (``EXCHANGE:SYMBOL``), ``agg:SYMBOL`` for aggregated books,
    ``replay:<id>:<stream>`` for replayed ones."""
    data: Message
    received_ns: int


class MarketDataClient:
    """A verifying, reconnecting client of the gateway's WebSocket protocol.

    Use it as an async context manager, subscribe, then iterate ``events()``.
    ``sequence_breaks``, ``checksum_failures`` and ``reconnects`` count what it had
    to repair.
    """

    def __init__(
        self,
        url: str,
        *,
        fmt: Format | str = "json",
        batch: bool = False,
        token: str | None = None,
        reconnect: bool = True,
        max_backoff: float = 5.0,
        reconnect_delay: float = 0.1,
        ssl: Any = None,
        **connect_kwargs: Any,
    ) -> None:
        self.url = url
        self.fmt = fmt
        self.batch = batch
        self.token = token
        self.reconnect = reconnect
        self.max_backoff = max_backoff
        self.reconnect_delay = reconnect_delay
        """First reconnect's delay in seconds (then doubled up to max_backoff, jittered)."""
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
        self.resumed = 0
        """Book views the server resumed after a reconnect (no snapshot needed)."""
        self.not_resumed = 0
        """Book views that asked to resume and got a snapshot instead."""
        self.bbos: dict[str, Message] = {}
        """Latest ``bbo`` message per stream or symbol."""
        self._bbo_seq: dict[str, int | None] = {}
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
        """Open the connection and send every subscription again (whole books resume)."""
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
        since: dict[str, int] = {}
        for key, book in self.books.items():
            # a whole book resumes from where it stopped; whole again once the server
            # says "resumed" (the missed messages follow), else its snapshot comes
            if book.valid and not key.startswith("replay:"):
                book.resume_from = book.sequence
            if book.resume_from is not None:  # else: still the one asked for last time
                since[key] = book.resume_from
            book.valid = False
        for key in self._bbo_seq:
            self._bbo_seq[key] = None  # a new chain starts with the first message
        for sub in self.subscriptions:
            msg = {**sub, "id": self._next_id()}
            if sub["channel"] in ("book", "aggregated_book"):
                keys = {s: self.book_key(sub["channel"], s) for s in sub["symbols"]}
                resume = {s: since[k] for s, k in keys.items() if k in since}
                if resume:
                    msg["since"] = resume
            await self._send(msg)

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
        if self.ws is None:
            raise ConnectionError("not connected: use `async with` or connect() first")
        await self.ws.send(orjson.dumps(msg).decode())

    async def subscribe(
        self,
        channel: str,
        symbols: list[str],
        depth: int = 20,
        speed: str = "raw",
        interval: str = "1m",
    ) -> int:
        """Subscribe (kept for reconnects); returns the request id echoed in the reply."""
        msg: dict[str, Any] = {"op": "subscribe", "channel": channel, "symbols": symbols}
        if channel == "candles":
            msg["interval"] = interval
            for s in symbols:
                self.candles.setdefault((s, interval), CandleSeries())
        if channel in ("book", "aggregated_book"):
            msg.update(depth=depth, speed=speed)
            for s in symbols:
                self.books[self.book_key(channel, s)] = LocalBook(s, depth)
        elif channel == "bbo":
            for s in symbols:
                self._bbo_seq[s] = None
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

    def _replay_complete(self, msg: Message) -> None:
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

    def bbo(self, name: str) -> Message | None:
        """The latest ``bbo`` of a stream (``EXCHANGE:SYMBOL``) or a symbol across venues."""
        return self.bbos.get(name)

    def book(self, symbol: str) -> LocalBook | None:
        """The local book of a stream (``EXCHANGE:SYMBOL``) or aggregated symbol."""
        return self.books.get(symbol) or self.books.get(f"agg:{symbol}")

    async def resync(self, symbol: str) -> None:
        """Ask for a fresh snapshot of a book subscription."""
        await self._send({"op": "resync", "id": self._next_id(), "symbols": [symbol]})

    async def _frames(self) -> AsyncIterator[str | bytes]:
        backoff = self.reconnect_delay
        while not self._closed:
            try:
                if self.ws is None:
                    await self.connect()
                assert self.ws is not None
                async for frame in self.ws:
                    backoff = self.reconnect_delay
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
        protobuf = self.fmt == "protobuf"
        async for frame in self._frames():
            now = time.time_ns()
            for msg in decode_frame(frame, protobuf=protobuf, batch=self.batch):
                event = await self._handle(msg, now)
                if event is not None:
                    yield event

    async def _handle(self, msg: Message, now: int) -> Event | None:
        kind: str = msg.get("type", "")
        if kind.endswith("_snapshot") or kind.endswith("book_update"):
            agg = kind.startswith("aggregated")
            key = f"agg:{msg['symbol']}" if agg else f"{msg['exchange']}:{msg['symbol']}"
            if msg.get("replay"):
                key = f"replay:{msg.get('replay_id')}:{key}"
            book = self.books.get(key)
            if book is None:
                return Event("unsubscribed_book", key, msg, now)
            return await self._apply(book, msg, kind.endswith("_snapshot"), now)
        if kind == "bbo":
            return self._bbo(msg, now)
        key = f"{msg.get('exchange', '')}:{msg.get('symbol', '')}"
        if kind == "subscribed" and "resumed" in msg:
            self._resumed(msg)
        if kind == "replay_complete":
            self._replay_complete(msg)
        if kind == "candle":
            series = self.candles.get((key, msg.get("interval", "")))
            if series is not None:
                series.update(msg)
        status = msg.get("status") if kind == "status" else None
        if status in ("behind", "caught_up"):
            book = self._status_book(msg, key)
            if book is not None:
                book.behind = status == "behind"
        if status in ("stale", "resync"):
            book = self._status_book(msg, key)
            if book is not None:
                book.valid = False
                book.resume_from = None
            bbo_key = key if "exchange" in msg else msg.get("symbol", "")
            if bbo_key in self._bbo_seq:
                self._bbo_seq[bbo_key] = None
        return Event("stats" if kind == "statistics" else kind, key, msg, now)

    def _status_book(self, msg: Message, key: str) -> LocalBook | None:
        """The book a ``status`` names (aggregated ones carry ``symbol`` only)."""
        return self.books.get(key if "exchange" in msg else f"agg:{msg.get('symbol', '')}")

    def _bbo(self, msg: Message, now: int) -> Event:
        exchange = msg.get("exchange")
        key = f"{exchange}:{msg['symbol']}" if exchange else msg["symbol"]
        last = self._bbo_seq.get(key)
        if last is not None and (msg["prev_sequence"] != last or msg["sequence"] <= last):
            self.sequence_breaks += 1
        self._bbo_seq[key] = msg["sequence"]
        self.bbos[key] = msg
        return Event("bbo", key, msg, now)

    def _resumed(self, msg: Message) -> None:
        resumed = msg["resumed"]
        symbols = msg.get("symbols") or [""]
        by_symbol = resumed if isinstance(resumed, dict) else {symbols[0]: resumed}
        for s, ok in by_symbol.items():
            if ok:
                self.resumed += 1
            else:
                self.not_resumed += 1
            book = self.books.get(self.book_key(msg.get("channel", ""), s))
            if book is not None:
                if ok and book.resume_from is not None:
                    book.valid = True
                book.resume_from = None

    async def _apply(self, book: LocalBook, msg: Message, snapshot: bool, now: int) -> Event | None:
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
        book.resume_from = None
        book.resyncs += 1
        if book.key.startswith("replay:"):
            return  # a replay cannot be resynced; the break is counted
        symbol = book.key.removeprefix("agg:")
        if self.ws is not None:
            await self.resync(symbol)
