"""A fake Coinbase Advanced Trade market-data WebSocket (level2, market_trades, heartbeats).

Every message of a connection carries ``sequence_num`` 0, 1, 2 ... A subscribe
to ``level2`` answers a ``subscriptions`` message and one ``snapshot`` event per
product; ``unsubscribe`` stops the product's updates. A ``market_trades``
subscribe answers a ``snapshot`` of the recent trades. Plan steps:

- ``("updates", n)``, ``("trades", n)``: n messages for random products;
- ``("lose", n)``: n updates applied but not sent, their sequence numbers skipped;
- ``("offline_trades", n)``: trades that happen while nobody listens (they appear
  only in the next connection's trade snapshot);
- ``("heartbeat",)``, ``("malformed",)``, ``("unknown",)`` (an update of FOO-USD),
  ``("close",)``, ``("sleep", s)``.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from websockets.asyncio.server import ServerConnection

from tests.unit.connectors.fakes import FakeBook, FakeServer, Step, dumps, iso

SIDE = {"bid": "bid", "ask": "offer"}


@dataclass
class _Conn:
    ws: ServerConnection
    n: int
    seq: int = 0
    level2: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FakeCoinbase(FakeServer):
    def __init__(self, products: list[str], plans: list[list[Step]], seed: int = 1) -> None:
        super().__init__(plans, seed)
        self.books = {p: FakeBook(self.rng) for p in products}
        self.recent: deque[dict[str, Any]] = deque(maxlen=50)
        self.delivered: dict[str, set[str]] = {p: set() for p in products}
        """Trade ids a client could have seen live (updates, or a reconnection's snapshot)."""
        self.next_trade_id = 7000
        self.snapshots_sent = 0

    async def session(self, ws: ServerConnection, n: int) -> None:
        conn = _Conn(ws, n)
        reader = asyncio.create_task(self._reader(conn))
        try:
            while not conn.level2:
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

    async def _emit(self, conn: _Conn, build: Callable[[], dict[str, Any] | None]) -> None:
        """Build and send under one lock, numbering messages in the order they leave."""
        async with conn.lock:
            msg = build()
            if msg is not None:
                msg["sequence_num"] = conn.seq
                conn.seq += 1
                await conn.ws.send(dumps(msg))

    def _envelope(self, channel: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        return {"channel": channel, "client_id": "", "timestamp": iso(self.now()), "events": events}

    async def _reader(self, conn: _Conn) -> None:
        async for raw in conn.ws:
            msg = self.received_json(raw)
            products = [p for p in msg.get("product_ids", []) if p in self.books]
            channel, kind = msg.get("channel"), msg.get("type")
            if kind == "subscribe" and channel == "level2":
                conn.level2.update(products)
                await self._emit(conn, lambda: self._subscriptions(conn))
                for product in products:
                    await self._emit(conn, lambda p=product: self._snapshot(p))
            elif kind == "unsubscribe" and channel == "level2":
                conn.level2.difference_update(products)
                await self._emit(conn, lambda: self._subscriptions(conn))
            elif kind == "subscribe" and channel == "market_trades":
                await self._emit(conn, lambda: self._trade_snapshot(conn))

    def received_json(self, raw: str | bytes) -> dict[str, Any]:
        msg = json.loads(raw)
        self.received.append(msg)
        return msg

    def _subscriptions(self, conn: _Conn) -> dict[str, Any]:
        subs = {"level2": sorted(conn.level2)}
        return self._envelope("subscriptions", [{"subscriptions": subs}])

    def _snapshot(self, product: str) -> dict[str, Any]:
        book = self.books[product]
        updates = [
            self._update(side, p, q, "1970-01-01T00:00:00Z")
            for side in ("bid", "ask")
            for p, q in book.top(side)
        ]
        self.snapshots_sent += 1
        event = {"type": "snapshot", "product_id": product, "updates": updates}
        return self._envelope("l2_data", [event])

    def _update(self, side: str, price: Decimal, qty: Decimal, when: str) -> dict[str, str]:
        return {
            "side": SIDE[side],
            "event_time": when,
            "price_level": f"{price:f}",
            "new_quantity": f"{qty:f}",
        }

    def _trade_snapshot(self, conn: _Conn) -> dict[str, Any]:
        trades = list(reversed(self.recent))  # newest first
        if conn.n > 1:
            for t in trades:
                self.delivered[t["product_id"]].add(t["trade_id"])
        return self._envelope("market_trades", [{"type": "snapshot", "trades": trades}])

    async def _step(self, conn: _Conn, kind: str) -> None:
        product = self.rng.choice(sorted(self.books))
        if kind == "updates":
            await self._emit(conn, lambda: self._changes(conn, product))
        elif kind == "lose":
            async with conn.lock:
                self._changes(conn, product)
                conn.seq += 1
        elif kind in ("trades", "offline_trades"):
            trade = self._new_trade(product)
            if kind == "trades":
                self.delivered[product].add(trade["trade_id"])
                event = {"type": "update", "trades": [trade]}
                await self._emit(conn, lambda: self._envelope("market_trades", [event]))
        elif kind == "heartbeat":
            event = {"current_time": iso(self.now()), "heartbeat_counter": str(conn.seq)}
            await self._emit(conn, lambda: self._envelope("heartbeats", [event]))
        elif kind == "malformed":
            await conn.ws.send('{"channel":"l2_data","events":[')
        elif kind == "unknown":
            update = self._update("bid", Decimal("1.00"), Decimal("2.00000000"), iso(self.now()))
            event = {"type": "update", "product_id": "FOO-USD", "updates": [update]}
            await self._emit(conn, lambda: self._envelope("l2_data", [event]))
        else:
            raise ValueError(f"unknown step {kind!r}")

    def _changes(self, conn: _Conn, product: str) -> dict[str, Any] | None:
        book = self.books[product]
        when = iso(self.now())
        updates = []
        for _ in range(self.rng.randint(1, 3)):
            side, price, qty = book.change()
            updates.append(self._update(side, price, qty, when))
        if product not in conn.level2:
            return None
        return self._envelope(
            "l2_data", [{"type": "update", "product_id": product, "updates": updates}]
        )

    def _new_trade(self, product: str) -> dict[str, Any]:
        self.next_trade_id += 1
        trade = {
            "trade_id": str(self.next_trade_id),
            "product_id": product,
            "price": "100.01",
            "size": "0.3",
            "side": self.rng.choice(("BUY", "SELL")),
            "time": iso(self.now()),
        }
        self.recent.append(trade)
        return trade
