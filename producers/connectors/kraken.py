"""Kraken WebSocket v2: ``book`` with CRC32 checksums, ``trade``, ``instrument``. No I/O.

Raw messages (Kraken's v2 docs: book, trade, instrument channels)::

    {"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,
     "symbol":"MATIC/USD"},"success":true,"time_in":"2023-10-06T17:35:55.219022Z",
     "time_out":"2023-10-06T17:35:55.219067Z"}
    {"channel":"book","type":"snapshot","data":[{"symbol":"MATIC/USD",
     "bids":[{"price":0.5666,"qty":4831.75496356},{"price":0.5665,"qty":6658.22734739}],
     "asks":[{"price":0.5668,"qty":4410.79769741},{"price":0.5669,"qty":4655.40412487}],
     "checksum":2439117997}]}
    {"channel":"book","type":"update","data":[{"symbol":"MATIC/USD",
     "bids":[{"price":0.5657,"qty":1098.3947558}],"asks":[],"checksum":2114181697,
     "timestamp":"2023-10-06T17:35:55.440295Z"}]}
    {"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",
     "price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,
     "timestamp":"2023-09-25T07:49:37.708706Z"}]}
    {"channel":"instrument","type":"snapshot","data":{"assets":[...],"pairs":[
     {"symbol":"BTC/USD","base":"BTC","quote":"USD","price_precision":1,"qty_precision":8}]}}

Books: frames are decoded with ``parse_float=Decimal`` so every number keeps the
digits Kraken sent; a level's text is rebuilt with the pair's precision from the
``instrument`` channel when known (so ``0.566`` becomes ``0.5660``), else as sent.
Those texts feed Kraken's checksum (the capture package's :func:`kraken_checksum`:
top 10 asks then top 10 bids, ``.`` removed, leading zeros stripped, CRC32),
verified on every snapshot and after every update. A mismatch marks the stream
stale; unsubscribing and subscribing the book again brings a fresh snapshot,
published as an ``is_snapshot`` record. Kraken sends no removal for a level that
an insert pushes out of the subscribed depth: the local book is cut to the depth
after each message and the cut levels are published as quantity-0 levels.

Trades: ``side`` is the taker's. The trade snapshot (last 50) is asked for only
on a reconnection, to fill the gap; trade ids already published are dropped.
A subscription Kraken refuses because the pair is not listed (``"success":false``,
``Currency pair not supported``) makes that symbol unknown: reported, not asked again.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from core.types import Exchange, Trade
from producers.captures.common import as_list, book_guard, int_field, iso_to_ns
from producers.captures.errors import CorruptLineError
from producers.captures.kraken import kraken_checksum
from producers.captures.normalizer import LocalBook, ParsedLevel, parse_level
from producers.connectors.base import Action, Emitted, HandlerBase, Send, keep
from producers.connectors.errors import MalformedMessageError

DEFAULT_WS_URL = "wss://ws.kraken.com/v2"
_UNLISTED = re.compile(r"not (supported|found)|invalid|unknown", re.IGNORECASE)
"""A refusal that means the pair does not exist (``Currency pair not supported``),
as opposed to one worth retrying (``Already subscribed``, rate limits)."""
_SIDES = ("buy", "sell")


def level_text(value: Any, places: int | None) -> str:
    """A price or quantity as Kraken's decimal text, with ``places`` decimals when known."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str | float):
        raise CorruptLineError(f"number field is {value!r}")
    try:
        d = (
            value
            if isinstance(value, Decimal)
            else Decimal(repr(value) if isinstance(value, float) else value)
        )
    except InvalidOperation as e:
        raise CorruptLineError(f"not a number: {value!r}") from e
    if not d.is_finite():
        raise CorruptLineError(f"not a finite number: {value!r}")
    return f"{d:.{places}f}" if places is not None else f"{d:f}"


class KrakenHandler(HandlerBase):
    """Kraken v2 frames -> normalized records and resubscriptions."""

    exchange = Exchange.KRAKEN

    def __init__(self, *args: Any, depth: int = 100, **kwargs: Any) -> None:
        self.depth = depth
        super().__init__(*args, **kwargs)
        self.precision: dict[str, tuple[int, int]] = {}
        """Native symbol -> (price decimals, quantity decimals), from ``instrument``."""

    def url(self, base: str) -> str:
        return base

    def decode(self, raw: str | bytes) -> Any:
        try:
            return json.loads(raw, parse_float=Decimal)
        except (ValueError, UnicodeDecodeError) as e:
            raise MalformedMessageError(f"KRAKEN: frame is not JSON: {e}") from e

    def subscriptions(self, now_ns: int) -> list[dict[str, Any]]:
        self.connections += 1
        for symbol in self.unsynced():
            self.requests.mark_sent(symbol, now_ns)  # subscribing brings the snapshot
        natives = [self.sub.to_native[s] for s in self.sub.canonical if s not in self.dead]
        return [
            {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}},
            self._book("subscribe", natives),
            {
                "method": "subscribe",
                "params": {"channel": "trade", "symbol": natives, "snapshot": self.connections > 1},
            },
        ]

    def snapshot_actions(self, symbols: list[str]) -> list[Action]:
        natives = [self.sub.to_native[s] for s in symbols]
        return [Send(self._book("unsubscribe", natives)), Send(self._book("subscribe", natives))]

    def _book(self, method: str, natives: list[str]) -> dict[str, Any]:
        params: dict[str, Any] = {"channel": "book", "symbol": natives, "depth": self.depth}
        if method == "subscribe":
            params["snapshot"] = True
        return {"method": method, "params": params}

    def on_message(self, msg: Any, recv_ns: int) -> Emitted:
        if not isinstance(msg, dict):
            raise CorruptLineError(f"Kraken message is {type(msg).__name__}, not an object")
        out: Emitted = []
        try:
            channel = msg.get("channel")
            if "method" in msg:
                self._on_method(msg)
            elif channel == "book":
                for entry in as_list(msg.get("data"), "data"):
                    out += self._on_book(entry, msg.get("type"), recv_ns)
            elif channel == "trade":
                out += self._on_trades(msg)
            elif channel == "instrument":
                self._on_instrument(msg.get("data"))
            else:
                self.ctx.skip(f"kraken:{channel if isinstance(channel, str) else 'other'}")
        finally:
            for symbol in self.unsynced():
                self.requests.want(symbol, recv_ns)
        return out

    def _on_method(self, msg: dict[str, Any]) -> None:
        self.ctx.skip(f"kraken:{msg.get('method')}")
        if msg.get("success") is not False or msg.get("method") != "subscribe":
            return
        native, error = msg.get("symbol"), str(msg.get("error"))
        if native in self.sub.to_canonical and _UNLISTED.search(error):
            self.mark_dead(native, error)
            return
        raise CorruptLineError(f"Kraken refused a subscription of {native}: {error}")

    def _on_instrument(self, data: Any) -> None:
        pairs = data.get("pairs") if isinstance(data, dict) else None
        for pair in pairs if isinstance(pairs, list) else []:
            native = pair.get("symbol") if isinstance(pair, dict) else None
            if native in self.sub.to_canonical:
                pp, qp = pair.get("price_precision"), pair.get("qty_precision")
                if isinstance(pp, int) and isinstance(qp, int) and 0 <= pp <= 18 and 0 <= qp <= 18:
                    self.precision[native] = (pp, qp)

    def _levels(self, raw: Any, what: str, native: str) -> list[ParsedLevel]:
        pp, qp = self.precision.get(native, (None, None))
        out = []
        for lv in as_list(raw, what):
            if not isinstance(lv, dict):
                raise CorruptLineError(f"{what} level {lv!r} is not an object")
            out.append(parse_level(level_text(lv.get("price"), pp), level_text(lv.get("qty"), qp)))
        return out

    def _on_book(self, entry: Any, kind: Any, recv_ns: int) -> Emitted:
        if not isinstance(entry, dict):
            raise CorruptLineError("book entry is not an object")
        native = entry.get("symbol")
        symbol = self.ctx.symbol(self.exchange, native)
        if symbol is None or not isinstance(native, str):
            return []
        norm = self.norm(symbol)
        with book_guard(norm):
            bids = self._levels(entry.get("bids", []), "bids", native)
            asks = self._levels(entry.get("asks", []), "asks", native)
            checksum = int_field(entry.get("checksum"), "checksum")
            ts = iso_to_ns(entry["timestamp"]) if "timestamp" in entry else recv_ns
            if kind not in ("snapshot", "update"):
                raise CorruptLineError(f"book message type {kind!r}")
        if kind == "snapshot":
            if self._snapshot_checksum(bids, asks) != checksum:
                norm.stats.checksum_failures += 1
                norm.gap("snapshot checksum mismatch")
                return []
            self.requests.done(symbol)
            return [norm.snapshot(ts, bids, asks)]
        return keep([norm.update(ts, bids, asks, lambda book: kraken_checksum(book) == checksum)])

    def _snapshot_checksum(self, bids: list[ParsedLevel], asks: list[ParsedLevel]) -> int:
        book = LocalBook(self.depth)
        book.apply("bid", (lv for lv in bids if lv[1] > 0.0))
        book.apply("ask", (lv for lv in asks if lv[1] > 0.0))
        book.truncate("bid")
        book.truncate("ask")
        return kraken_checksum(book)

    def _on_trades(self, msg: dict[str, Any]) -> Emitted:
        if msg.get("type") == "snapshot" and self.connections <= 1:
            self.ctx.skip("kraken:trade_snapshot")
            return []
        out: list[Trade | None] = []
        for t in as_list(msg.get("data"), "data"):
            if not isinstance(t, dict) or t.get("side") not in _SIDES:
                raise CorruptLineError(f"trade {t!r} has no side buy|sell")
            symbol = self.ctx.symbol(self.exchange, t.get("symbol"))
            if symbol is None:
                continue
            price, qty = level_text(t.get("price"), None), level_text(t.get("qty"), None)
            trade_id = str(int_field(t.get("trade_id"), "trade_id"))
            ts = iso_to_ns(t.get("timestamp"))
            out.append(self.norm(symbol).trade(ts, trade_id, price, qty, t["side"]))
        return keep(out)
