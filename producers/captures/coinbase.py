"""Coinbase Exchange feed (``ws-feed``): ``level2`` books and ``matches`` trades. No I/O.

Raw messages (COINBASE.ws.28.0)::

    {"type":"snapshot","product_id":"BAND-GBP","asks":[["14.8024","12.77"], ...],
     "bids":[["14.7550","3.21"], ...]}
    {"type":"l2update","product_id":"SKL-BTC","changes":[["sell","0.00001306","660.5"]],
     "time":"2021-04-17T16:43:37.075687Z"}
    {"type":"match","trade_id":280232,"maker_order_id":"2a0da34e-...",
     "taker_order_id":"3c82abaa-...","side":"sell","size":"985","price":"0.00001305",
     "product_id":"SKL-BTC","sequence":177100030,"time":"2021-04-17T16:43:37.089723Z"}

Decisions, from the data:

- ``level2`` messages carry no sequence number, so a lost ``l2update`` cannot be
  detected from the feed. Only ``match``/``last_match``/``ticker`` carry
  ``sequence``, and it is the product's *full-channel* sequence: it jumps by
  design (in the capture every consecutive ``match`` pair of a product jumps),
  so jumps are *not* gaps. Continuity breaks are therefore only a reconnection
  or a line we could not read (``on_lost``): those mark the book stale until the
  next ``snapshot``.
- ``side`` of a match is the *maker's* order side; the taker (our ``side``) is
  the opposite: ``"side":"sell"`` means a buyer lifted a resting sell -> ``buy``.
- ``last_match`` (the product's last trade before subscribing) is a trade too;
  trade ids are de-duplicated per stream.
- ``snapshot`` has no ``time``: its event time is the receive time.
"""

from __future__ import annotations

import re
from typing import Any

from core.types import Exchange
from producers.captures.common import (
    Emitted,
    ReplayContext,
    as_list,
    book_guard,
    int_field,
    iso_to_ns,
)
from producers.captures.errors import CorruptLineError
from producers.captures.normalizer import ParsedLevel, parse_level

_PRODUCT_RE = re.compile(r'"product_id"\s*:\s*"([^"]+)"')
_TYPE_RE = re.compile(r'"type"\s*:\s*"([^"]+)"')
_BOOK_TYPES = ("snapshot", "l2update")
_TAKER_SIDE = {"buy": "sell", "sell": "buy"}


def parse_snapshot_side(raw: Any, what: str) -> list[ParsedLevel]:
    out = []
    for lv in as_list(raw, what):
        if not isinstance(lv, list) or len(lv) < 2:
            raise CorruptLineError(f"{what} level {lv!r} is not [price, size]")
        out.append(parse_level(lv[0], lv[1]))
    return out


def parse_changes(raw: Any) -> tuple[list[ParsedLevel], list[ParsedLevel]]:
    """``[[side, price, size], ...]`` -> (bids, asks)."""
    bids: list[ParsedLevel] = []
    asks: list[ParsedLevel] = []
    for change in as_list(raw, "changes"):
        if not isinstance(change, list) or len(change) < 3:
            raise CorruptLineError(f"change {change!r} is not [side, price, size]")
        side, price, size = change[0], change[1], change[2]
        if side == "buy":
            bids.append(parse_level(price, size))
        elif side == "sell":
            asks.append(parse_level(price, size))
        else:
            raise CorruptLineError(f"change with side {side!r}")
    return bids, asks


class CoinbaseHandler:
    """Coinbase messages -> normalized records; see the module docstring."""

    exchange = Exchange.COINBASE

    def __init__(self, ctx: ReplayContext) -> None:
        self.ctx = ctx
        self._connected: set[str] = set()
        self._books: dict[str, set[str]] = {}
        """Book streams (canonical symbols) seen per source."""

    def on_message(self, msg: Any, recv_ns: int, source: str) -> Emitted:
        if not isinstance(msg, dict):
            raise CorruptLineError(f"Coinbase message is {type(msg).__name__}, not an object")
        kind = msg.get("type")
        if kind in _BOOK_TYPES:
            return self._on_book(msg, kind, recv_ns, source)
        if kind in ("match", "last_match"):
            return self._on_match(msg)
        self.ctx.skip(f"coinbase:{kind if isinstance(kind, str) else 'other'}")
        return []

    def on_http(self, url: str, msg: Any, recv_ns: int, source: str) -> Emitted:
        self.ctx.skip("coinbase:http")
        return []

    def on_connect(self, recv_ns: int, source: str) -> None:
        if source in self._connected:
            for symbol in self._books.get(source, ()):
                self.ctx.normalizer(self.exchange, symbol).gap("reconnect")
        self._connected.add(source)

    def on_lost(self, raw: str, source: str) -> None:
        kind = _TYPE_RE.search(raw)
        if kind is not None and kind[1] not in _BOOK_TYPES:
            return
        books = self._books.get(source, set())
        product = _PRODUCT_RE.search(raw)
        if product is not None:  # the line names its product: only that book is affected
            books = books & {self.ctx.symbols.canonical(self.exchange, product[1])}
        for symbol in sorted(books):
            self.ctx.normalizer(self.exchange, symbol).gap("unreadable line")

    def on_end(self) -> None:
        """Nothing is buffered."""

    def _on_book(self, msg: dict[str, Any], kind: str, recv_ns: int, source: str) -> Emitted:
        symbol = self.ctx.symbol(self.exchange, msg.get("product_id"))
        if symbol is None:
            return []
        self._books.setdefault(source, set()).add(symbol)
        norm = self.ctx.normalizer(self.exchange, symbol)
        with book_guard(norm):
            ts = iso_to_ns(msg["time"]) if "time" in msg else recv_ns
            if kind == "snapshot":
                bids = parse_snapshot_side(msg["bids"], "bids")
                asks = parse_snapshot_side(msg["asks"], "asks")
                return [norm.snapshot(ts, bids, asks)]
            bids, asks = parse_changes(msg["changes"])
        record = norm.update(ts, bids, asks)
        return [record] if record is not None else []

    def _on_match(self, msg: dict[str, Any]) -> Emitted:
        symbol = self.ctx.symbol(self.exchange, msg.get("product_id"))
        if symbol is None:
            return []
        maker_side = msg.get("side")
        side = _TAKER_SIDE.get(maker_side, "") if isinstance(maker_side, str) else ""
        if not side:
            raise CorruptLineError(f"match with side {maker_side!r}")
        trade_id = str(int_field(msg.get("trade_id"), "trade_id"))
        norm = self.ctx.normalizer(self.exchange, symbol)
        trade = norm.trade(
            iso_to_ns(msg.get("time")), trade_id, msg.get("price"), msg.get("size"), side
        )
        return [trade] if trade is not None else []
