"""Kraken WebSocket v1: ``book-N`` with CRC32 checksums, and ``trade``. No I/O.

Raw messages (KRAKEN.ws.50.0 and KRAKEN.ws.48.0)::

    {"channelID":1920,"channelName":"book-1000","event":"subscriptionStatus",
     "pair":"SC/EUR","status":"subscribed","subscription":{"depth":1000,"name":"book"}}
    [1920,{"as":[["0.043130","11802.77325050","1618678133.136361"], ...],
           "bs":[["0.043120","2000.00000000","1618678133.118337"], ...]},"book-1000","SC/EUR"]
    [992,{"b":[["354.15000000","5.00000000","1618678133.365913"]],"c":"2583817756"},
     "book-1000","XMR/USD"]
    [1920,{"a":[["0.042990","364630.28272081","1618678145.920470"]]},
          {"b":[["0.042990","0.00000000","1618678145.920708"]],"c":"4105471083"},
     "book-1000","SC/EUR"]
    [993,[["354.11000000","0.89594024","1618678142.557535","s","l",""]],"trade","XMR/USD"]

Book: a snapshot (``as``/``bs``) replaces the book; an update (``a`` and/or
``b``, possibly in two objects; a 4th element ``"r"`` marks a level republished
from beyond the subscribed depth) sets or removes levels. Kraken keeps only the
top N (the subscribed depth) and does not send removals for levels pushed out
of it, so after each message the local book is cut to N per side; the cut
levels are emitted as quantity-0 levels. ``c`` is Kraken's checksum of the top
10 levels, computed on the exchange's decimal *strings* (:func:`kraken_checksum`);
it is verified after every update. A mismatch is counted and is a gap: the
stream waits for the next snapshot (in a live feed: resubscribe; a capture has
none, so the stream stays stale and the summary says so).

Trades ``[price, volume, time, side b|s, ordertype m|l, misc]``: ``side`` is the
taker's. v1 trades have no id (``trade_id`` is empty). Level and trade times
are unix seconds; a book record's event time is its newest level time.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from core.types import Exchange
from producers.captures.common import (
    Emitted,
    ReplayContext,
    as_list,
    as_str,
    book_guard,
    seconds_to_ns,
)
from producers.captures.errors import CorruptLineError
from producers.captures.normalizer import LocalBook, ParsedLevel, parse_level

DEFAULT_DEPTH = 10
"""Kraken's default book subscription depth."""
_CHANNEL_RE = re.compile(r"^\s*\[\s*(\d+)\s*,")
_SIDES = {"b": "buy", "s": "sell"}


def _digits(text: str) -> str:
    return text.replace(".", "").lstrip("0")


def kraken_checksum(book: LocalBook) -> int:
    """Kraken's CRC32: top 10 asks ascending then top 10 bids descending, each level
    as price and volume strings with ``.`` removed and leading zeros stripped."""
    levels = book.top("ask", 10) + book.top("bid", 10)
    parts = [_digits(ptxt) + _digits(qtxt) for _, (_, ptxt, qtxt) in levels]
    return zlib.crc32("".join(parts).encode())


def parse_book_levels(raw: Any, what: str) -> tuple[list[ParsedLevel], int]:
    """Levels ``[price, volume, time(, "r")]`` and the newest level time (ns, 0 if none)."""
    out: list[ParsedLevel] = []
    newest = 0
    for lv in as_list(raw, what):
        if not isinstance(lv, list) or len(lv) < 3:
            raise CorruptLineError(f"{what} level {lv!r} is not [price, volume, time]")
        out.append(parse_level(lv[0], lv[1]))
        newest = max(newest, seconds_to_ns(lv[2]))
    return out, newest


def _book_depth(channel_name: str) -> int:
    _, _, depth = channel_name.partition("-")
    return int(depth) if depth.isascii() and depth.isdigit() else DEFAULT_DEPTH


class KrakenHandler:
    """Kraken v1 messages -> normalized records; see the module docstring."""

    exchange = Exchange.KRAKEN

    def __init__(self, ctx: ReplayContext) -> None:
        self.ctx = ctx
        self._channels: dict[tuple[str, int], tuple[str, str]] = {}
        """(source, channelID) -> (channelName, pair), from subscriptionStatus."""
        self._books: dict[str, set[str]] = {}
        self._connected: set[str] = set()

    def on_message(self, msg: Any, recv_ns: int, source: str) -> Emitted:
        if isinstance(msg, dict):
            return self._on_event(msg, source)
        if not isinstance(msg, list) or len(msg) < 4:
            raise CorruptLineError("Kraken message is neither an event nor [id, ..., name, pair]")
        name, pair = as_str(msg[-2], "channel name"), as_str(msg[-1], "pair")
        if name.startswith("book"):
            return self._on_book(msg[1:-2], name, pair, recv_ns, source)
        if name == "trade":
            return self._on_trades(msg[1], pair)
        self.ctx.skip(f"kraken:{name.split('-')[0]}")
        return []

    def on_http(self, url: str, msg: Any, recv_ns: int, source: str) -> Emitted:
        self.ctx.skip("kraken:http")
        return []

    def on_connect(self, recv_ns: int, source: str) -> None:
        if source in self._connected:
            for key in [k for k in self._channels if k[0] == source]:
                del self._channels[key]
            for symbol in self._books.get(source, ()):
                self.ctx.normalizer(self.exchange, symbol).gap("reconnect")
        self._connected.add(source)

    def on_lost(self, raw: str, source: str) -> None:
        if raw.lstrip().startswith("{"):
            return  # an event object: subscription status, heartbeat...
        books = self._books.get(source, set())
        m = _CHANNEL_RE.match(raw)
        channel = self._channels.get((source, int(m[1]))) if m else None
        if channel is not None:  # a known channel: only its book, if it is one, is affected
            if not channel[0].startswith("book"):
                return
            books = books & {self.ctx.symbols.canonical(self.exchange, channel[1])}
        for symbol in sorted(books):
            self.ctx.normalizer(self.exchange, symbol).gap("unreadable line")

    def on_end(self) -> None:
        """Nothing is buffered."""

    def _on_event(self, msg: dict[str, Any], source: str) -> Emitted:
        event = msg.get("event")
        if event == "subscriptionStatus" and msg.get("status") == "subscribed":
            channel, name, pair = msg.get("channelID"), msg.get("channelName"), msg.get("pair")
            if isinstance(channel, int) and isinstance(name, str) and isinstance(pair, str):
                self._channels[(source, channel)] = (name, pair)
        self.ctx.skip(f"kraken:{event if isinstance(event, str) else 'other'}")
        return []

    def _on_book(
        self, payloads: list[Any], name: str, pair: str, recv_ns: int, source: str
    ) -> Emitted:
        symbol = self.ctx.symbol(self.exchange, pair)
        if symbol is None:
            return []
        self._books.setdefault(source, set()).add(symbol)
        norm = self.ctx.normalizer(self.exchange, symbol, depth=_book_depth(name))
        with book_guard(norm):
            if not payloads or not all(isinstance(p, dict) for p in payloads):
                raise CorruptLineError("book message without level objects")
            if "as" in payloads[0] or "bs" in payloads[0]:
                bids, t_b = parse_book_levels(payloads[0].get("bs", []), "bs")
                asks, t_a = parse_book_levels(payloads[0].get("as", []), "as")
                return [norm.snapshot(max(t_a, t_b) or recv_ns, bids, asks)]
            bids, asks, newest, checksum = [], [], 0, None
            for payload in payloads:
                for key, levels in (("b", bids), ("a", asks)):
                    if key in payload:
                        parsed, t = parse_book_levels(payload[key], key)
                        levels.extend(parsed)
                        newest = max(newest, t)
                if "c" in payload:
                    checksum = int(as_str(payload["c"], "checksum"))
        verify = None if checksum is None else (lambda book: kraken_checksum(book) == checksum)
        record = norm.update(newest or recv_ns, bids, asks, verify)
        return [record] if record is not None else []

    def _on_trades(self, raw: Any, pair: str) -> Emitted:
        symbol = self.ctx.symbol(self.exchange, pair)
        if symbol is None:
            return []
        norm = self.ctx.normalizer(self.exchange, symbol)
        parsed = []
        for t in as_list(raw, "trades"):
            if not isinstance(t, list) or len(t) < 4 or not isinstance(t[3], str):
                raise CorruptLineError(f"trade {t!r} is not [price, volume, time, b|s, ...]")
            side = _SIDES.get(t[3])
            if side is None:
                raise CorruptLineError(f"trade with side {t[3]!r}")
            if parse_level(t[0], t[1])[1] <= 0.0:
                raise CorruptLineError(f"trade with volume {t[1]!r}")
            parsed.append((seconds_to_ns(t[2]), t[0], t[1], side))
        out: Emitted = []
        for ts, price, volume, side in parsed:
            trade = norm.trade(ts, "", price, volume, side)
            if trade is not None:
                out.append(trade)
        return out
