"""A fake Binance spot: combined stream of depth diffs and trades, REST depth snapshots.

Update ids are per symbol and grow by the number of changes in a diff, like the
real ``U``/``u``. Steps of a plan (one list per connection):

- ``("diffs", n)``: n diffs of 1-3 changes each, for random symbols;
- ``("trades", n)``: n trades;
- ``("lose", n)``: n diffs applied to the book but never sent (an update-id gap);
- ``("malformed",)``: a frame that is not JSON;
- ``("bad_shape",)``: a depth diff whose ``U`` is a string (unusable, counted);
- ``("unknown",)``: a diff and a trade of a symbol nobody subscribed;
- ``("close",)``: close the socket mid-stream;
- ``("sleep", seconds)``.

``GET /api/v3/depth?symbol=X&limit=N`` answers the current book and update id;
the first ``stale_snapshots`` answers are the book as it was at the start (too old).
An unlisted symbol gets HTTP 400 ``{"code":-1121,"msg":"Invalid symbol."}``.
``GET /api/v3/exchangeInfo?symbols=[...]`` lists the asked symbols of ``listing``
(native -> base, quote), HTTP 400 -1121 when one is not in it.
"""

from __future__ import annotations

import asyncio
import copy
import json
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection

from tests.unit.connectors.fakes import FakeBook, FakeServer, Step


class FakeBinance(FakeServer):
    def __init__(
        self, natives: list[str], plans: list[list[Step]], seed: int = 1, stale_snapshots: int = 0
    ) -> None:
        super().__init__(plans, seed)
        self.books = {s: FakeBook(self.rng) for s in natives}
        self.ids = dict.fromkeys(natives, 1000)
        self.initial = {s: (self.ids[s], copy.deepcopy(self.books[s])) for s in natives}
        self.stale_snapshots = stale_snapshots
        self.trades_sent: dict[str, int] = dict.fromkeys(natives, 0)
        self.next_trade_id = 5000
        self.stream_paths: list[str] = []
        self.listing: dict[str, tuple[str, str]] = {}

    def http(self, path: str) -> tuple[int, Any]:
        parts = urlsplit(path)
        if parts.path == "/api/v3/exchangeInfo":
            return self._exchange_info(parse_qs(parts.query).get("symbols", ["[]"])[0])
        symbol = parse_qs(parts.query).get("symbol", [""])[0]
        if parts.path != "/api/v3/depth" or symbol not in self.books:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        if self.stale_snapshots > 0:
            self.stale_snapshots -= 1
            last_id, book = self.initial[symbol]
        else:
            last_id, book = self.ids[symbol], self.books[symbol]
        return 200, {
            "lastUpdateId": last_id,
            "bids": [[f"{p:f}", f"{q:f}"] for p, q in book.top("bid")],
            "asks": [[f"{p:f}", f"{q:f}"] for p, q in book.top("ask")],
        }

    def _exchange_info(self, names: str) -> tuple[int, Any]:
        asked = json.loads(names)
        if any(n not in self.listing for n in asked):
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        entries = [
            {"symbol": n, "baseAsset": self.listing[n][0], "quoteAsset": self.listing[n][1]}
            for n in asked
        ]
        return 200, {"timezone": "UTC", "symbols": entries}

    async def session(self, ws: ServerConnection, n: int) -> None:
        self.stream_paths.append(ws.request.path if ws.request else "")
        for step in self.plan(n):
            kind = step[0]
            if kind == "close":
                await ws.close()
                return
            if kind == "sleep":
                await asyncio.sleep(step[1])
                continue
            for _ in range(step[1] if len(step) > 1 else 1):
                frame = self._frame(kind)
                if frame is not None:
                    await ws.send(frame)
                await asyncio.sleep(0)
        self.finished = n >= len(self.plans)
        await ws.wait_closed()

    def _frame(self, kind: str) -> str | None:
        symbol = self.rng.choice(sorted(self.books))
        if kind in ("diffs", "lose"):
            diff = self._diff(symbol)
            return json.dumps(diff) if kind == "diffs" else None
        if kind == "trades":
            self.trades_sent[symbol] += 1
            return json.dumps(self._trade(symbol))
        if kind == "malformed":
            return '{"stream":"btcusdt@depth@100ms","data":{'
        if kind == "bad_shape":
            diff = self._diff(symbol)
            diff["data"]["U"] = "not a number"
            return json.dumps(diff)
        if kind == "unknown":
            return json.dumps(self._unknown())
        raise ValueError(f"unknown step {kind!r}")

    def _diff(self, symbol: str) -> dict[str, Any]:
        book = self.books[symbol]
        changes: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
        count = self.rng.randint(1, 3)
        for _ in range(count):
            side, price, qty = book.change()
            changes[side][price] = qty
        first = self.ids[symbol] + 1
        self.ids[symbol] += count
        return {
            "stream": f"{symbol.lower()}@depth@100ms",
            "data": {
                "e": "depthUpdate",
                "E": self.now() // 1_000_000,
                "s": symbol,
                "U": first,
                "u": self.ids[symbol],
                "b": [[f"{p:f}", f"{q:f}"] for p, q in changes["bid"].items()],
                "a": [[f"{p:f}", f"{q:f}"] for p, q in changes["ask"].items()],
            },
        }

    def _trade(self, symbol: str) -> dict[str, Any]:
        self.next_trade_id += 1
        ms = self.now() // 1_000_000
        return {
            "stream": f"{symbol.lower()}@trade",
            "data": {
                "e": "trade", "E": ms, "s": symbol, "t": self.next_trade_id,
                "p": "100.01000000", "q": "0.25000000", "b": 88, "a": 50, "T": ms,
                "m": self.rng.random() < 0.5, "M": True,
            },
        }  # fmt: skip

    def _unknown(self) -> dict[str, Any]:
        return {
            "stream": "dogebtc@depth@100ms",
            "data": {
                "e": "depthUpdate", "E": self.now() // 1_000_000, "s": "DOGEBTC",
                "U": 1, "u": 2, "b": [["0.00000100", "5.00000000"]], "a": [],
            },
        }  # fmt: skip
