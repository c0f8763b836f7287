"""A fake Kraken WebSocket v2 (book with checksums, trade, instrument).

The fake keeps each pair's whole book and shows a subscriber its top ``depth``
levels per side, the way Kraken does: an update carries every level of the view
that changed or entered it (removals as qty 0), but no removal for a level an
insert pushed out of the view. Each book message carries the checksum of the top
10 levels, written here from Kraken's description (independent of the code under
test). Numbers go on the wire as bare JSON numbers, with their trailing zeros
unless ``strip_zeros`` (then a client needs the ``instrument`` precisions).

Plan steps: ``("updates", n)``, ``("trades", n)``, ``("bad_checksum",)`` (the next
update of a pair carries a wrong checksum), ``("malformed",)``, ``("unknown",)``
(a book update of FOO/USD), ``("heartbeat",)``, ``("close",)``, ``("sleep", s)``.
A subscription to a pair the fake does not list is refused.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection

from tests.unit.connectors.fakes import FakeBook, FakeServer, Level, Step, dumps, iso, num

View = dict[str, dict[Decimal, Decimal]]


def kraken_crc(asks: list[Level], bids: list[Level]) -> int:
    """Kraken's v2 book checksum from its docs: top 10 asks (low to high) then top 10
    bids (high to low), each price and qty with '.' removed and leading zeros stripped."""
    text = "".join(
        f"{p:f}".replace(".", "").lstrip("0") + f"{q:f}".replace(".", "").lstrip("0")
        for p, q in asks[:10] + bids[:10]
    )
    return zlib.crc32(text.encode())


@dataclass
class _Conn:
    ws: ServerConnection
    n: int
    views: dict[str, View] = field(default_factory=dict)
    """Subscribed pair -> what the client was shown."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeKraken(FakeServer):
    def __init__(
        self,
        pairs: list[str],
        plans: list[list[Step]],
        seed: int = 1,
        depth: int = 10,
        strip_zeros: bool = False,
    ) -> None:
        super().__init__(plans, seed)
        self.books = {p: FakeBook(self.rng, levels=depth + 5) for p in pairs}
        self.depth = depth
        self.strip_zeros = strip_zeros
        self.trades_sent = dict.fromkeys(pairs, 0)
        self.next_trade_id = 100
        self.corrupt_next = False

    def number(self, value: Decimal) -> str:
        text = f"{value:f}"
        if self.strip_zeros and "." in text:
            text = text.rstrip("0").rstrip(".") or "0"
        return num(text)

    def view(self, pair: str) -> View:
        book = self.books[pair]
        return {side: dict(book.top(side, self.depth)) for side in ("bid", "ask")}

    def checksum(self, view: View) -> int:
        asks = sorted(view["ask"].items())
        bids = sorted(view["bid"].items(), reverse=True)
        return kraken_crc(asks, bids)

    async def session(self, ws: ServerConnection, n: int) -> None:
        conn = _Conn(ws, n)
        reader = asyncio.create_task(self._reader(conn))
        try:
            while not conn.views:
                await asyncio.sleep(0.005)
            for step in self.plan(n):
                if step[0] == "close":
                    await ws.close()
                    return
                if step[0] == "sleep":
                    await asyncio.sleep(step[1])
                    continue
                for _ in range(step[1] if len(step) > 1 else 1):
                    await self._step(conn, step[0])
                    await asyncio.sleep(0)
            self.finished = n >= len(self.plans)
            await reader
        finally:
            reader.cancel()

    async def _send(self, conn: _Conn, build: Callable[[], Any]) -> None:
        async with conn.lock:
            msg = build()
            for frame in msg if isinstance(msg, list) else [msg]:
                if frame is not None:
                    await conn.ws.send(frame if isinstance(frame, str) else dumps(frame))

    def _ack(self, method: str, result: dict[str, Any]) -> dict[str, Any]:
        t = iso(self.now())
        return {"method": method, "result": result, "success": True, "time_in": t, "time_out": t}

    async def _reader(self, conn: _Conn) -> None:
        async for raw in conn.ws:
            msg = json.loads(raw)
            self.received.append(msg)
            method, params = msg.get("method"), msg.get("params", {})
            channel = params.get("channel")
            if channel == "instrument" and method == "subscribe":
                await self._send(conn, lambda m=method: self._ack(m, {"channel": "instrument"}))
                await self._send(conn, self._instrument)
            elif channel == "trade":
                await self._send(conn, lambda m=method: self._ack(m, {"channel": "trade"}))
            elif channel == "book":
                for pair in params.get("symbol", []):
                    await self._send(conn, lambda p=pair, m=method: self._book_request(conn, m, p))

    def _instrument(self) -> dict[str, Any]:
        pairs = [
            {"symbol": p, "base": p.split("/")[0], "quote": p.split("/")[1], "status": "online",
             "price_precision": 2, "qty_precision": 8, "price_increment": num("0.01")}
            for p in sorted(self.books)
        ]  # fmt: skip
        return {"channel": "instrument", "type": "snapshot", "data": {"assets": [], "pairs": pairs}}

    def _book_request(self, conn: _Conn, method: str, pair: str) -> list[str]:
        if pair not in self.books:
            t = iso(self.now())
            refusal = {"method": method, "success": False, "symbol": pair, "time_in": t,
                       "time_out": t, "error": f"Currency pair not supported {pair}"}  # fmt: skip
            return [dumps(refusal)]
        ack = dumps(self._ack(method, {"channel": "book", "symbol": pair, "depth": self.depth}))
        if method == "unsubscribe":
            conn.views.pop(pair, None)
            return [ack]
        view = conn.views[pair] = self.view(pair)
        entry = {
            "symbol": pair,
            "bids": self._levels(view["bid"], True),
            "asks": self._levels(view["ask"], False),
            "checksum": self.checksum(view),
        }
        return [ack, dumps({"channel": "book", "type": "snapshot", "data": [entry]})]

    def _levels(self, levels: dict[Decimal, Decimal], descending: bool) -> list[dict[str, str]]:
        items = sorted(levels.items(), reverse=descending)
        return [{"price": self.number(p), "qty": self.number(q)} for p, q in items]

    async def _step(self, conn: _Conn, kind: str) -> None:
        pair = self.rng.choice(sorted(self.books))
        if kind == "updates":
            await self._send(conn, lambda: self._update(conn, pair))
        elif kind == "bad_checksum":
            self.corrupt_next = True
        elif kind == "trades":
            self.trades_sent[pair] += 1
            await self._send(conn, lambda: self._trade(pair))
        elif kind == "heartbeat":
            await self._send(conn, lambda: {"channel": "heartbeat"})
        elif kind == "malformed":
            await self._send(conn, lambda: '{"channel":"book","type":"update","data":[{')
        elif kind == "unknown":
            entry = {"symbol": "FOO/USD", "bids": [{"price": num("1.0"), "qty": num("2.0")}],
                     "asks": [], "checksum": 1, "timestamp": iso(self.now())}  # fmt: skip
            await self._send(conn, lambda: {"channel": "book", "type": "update", "data": [entry]})
        else:
            raise ValueError(f"unknown step {kind!r}")

    def _update(self, conn: _Conn, pair: str) -> dict[str, Any] | None:
        self.books[pair].change()
        old = conn.views.get(pair)
        if old is None:
            return None
        new = conn.views[pair] = self.view(pair)
        full = self.books[pair]
        changed: View = {"bid": {}, "ask": {}}
        for side in ("bid", "ask"):
            for price in old[side].keys() - new[side].keys():
                if price not in full.side(side):  # deleted; pushed-out levels are not sent
                    changed[side][price] = Decimal(0).quantize(full.q_unit)
            for price, qty in new[side].items():
                if old[side].get(price) != qty:
                    changed[side][price] = qty
        if not changed["bid"] and not changed["ask"]:
            return None
        checksum = self.checksum(new)
        if self.corrupt_next:
            self.corrupt_next = False
            checksum ^= 0x5A5A
        entry = {"symbol": pair, "bids": self._levels(changed["bid"], True),
                 "asks": self._levels(changed["ask"], False), "checksum": checksum,
                 "timestamp": iso(self.now())}  # fmt: skip
        return {"channel": "book", "type": "update", "data": [entry]}

    def _trade(self, pair: str) -> dict[str, Any]:
        self.next_trade_id += 1
        trade = {"symbol": pair, "side": self.rng.choice(("buy", "sell")), "price": num("100.01"),
                 "qty": num("0.50000000"), "ord_type": "market", "trade_id": self.next_trade_id,
                 "timestamp": iso(self.now())}  # fmt: skip
        return {"channel": "trade", "type": "update", "data": [trade]}
