"""Coinbase Advanced Trade WebSocket: ``level2``, ``market_trades``, ``heartbeats``. No I/O.

Raw messages (Advanced Trade WebSocket channel docs; subscribe with channel
``level2``, messages come back on channel ``l2_data``)::

    {"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z",
     "sequence_num":0,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[
       {"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73",
        "new_quantity":"0.06317902"},
       {"side":"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.3",
        "new_quantity":"0.02"}]}]}
    {"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z",
     "sequence_num":0,"events":[{"type":"snapshot","trades":[{"trade_id":"000000000",
       "product_id":"ETH-USD","price":"1260.01","size":"0.3","side":"BUY",
       "time":"2019-08-14T20:42:27.265Z"}]}]}
    {"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z",
     "sequence_num":0,"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC
       m=+91717.525857105","heartbeat_counter":"3049"}]}

Rules:

- ``sequence_num`` counts every message of the connection, all channels together.
  Any value but the previous + 1 means messages were lost somewhere: every book
  of the connection turns stale, and unsubscribing + subscribing ``level2`` brings
  fresh ``snapshot`` events (a resync, published as ``is_snapshot`` records).
- ``new_quantity`` is the level's new size (not a delta), ``"0"`` removes it;
  ``side`` is ``bid`` or ``offer``.
- Trades: ``side`` is published as the taker side (see :data:`TAKER_SIDE`). The
  ``snapshot`` event of ``market_trades`` (recent trades, sent on subscribe) is
  published only after a reconnection, to fill what the gap missed; trade ids
  already published are dropped.
- Record time is the envelope ``timestamp`` (the exchange's send time).
- An ``error`` message naming a subscribed product makes it an unknown symbol
  (reported, left out of later subscriptions); other errors are counted.
"""

from __future__ import annotations

from typing import Any

from core.types import Exchange, Trade
from producers.captures.common import as_list, as_str, book_guard, iso_to_ns
from producers.captures.errors import CorruptLineError
from producers.captures.normalizer import ParsedLevel, parse_level
from producers.connectors.base import Action, Emitted, HandlerBase, Send, keep

DEFAULT_WS_URL = "wss://advanced-trade-ws.coinbase.com"
CHANNELS = ("level2", "market_trades", "heartbeats")
TAKER_SIDE = {"BUY": "buy", "SELL": "sell"}
"""``market_trades`` side -> our taker side. Taken as the taker's side, as cryptofeed
does; Coinbase's docs do not say whose side it is (its older Exchange feed gave the
maker's), so this table is the one place to flip if that proves wrong."""


def parse_updates(raw: Any) -> tuple[list[ParsedLevel], list[ParsedLevel]]:
    """``updates`` of an ``l2_data`` event -> (bids, asks)."""
    bids: list[ParsedLevel] = []
    asks: list[ParsedLevel] = []
    for update in as_list(raw, "updates"):
        if not isinstance(update, dict):
            raise CorruptLineError(f"level2 update {update!r} is not an object")
        level = parse_level(update.get("price_level"), update.get("new_quantity"))
        side = update.get("side")
        if side == "bid":
            bids.append(level)
        elif side in ("offer", "ask"):
            asks.append(level)
        else:
            raise CorruptLineError(f"level2 update with side {side!r}")
    return bids, asks


class CoinbaseHandler(HandlerBase):
    """Coinbase Advanced Trade frames -> normalized records and resubscriptions."""

    exchange = Exchange.COINBASE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_seq: int | None = None

    def url(self, base: str) -> str:
        return base

    def subscriptions(self, now_ns: int) -> list[dict[str, Any]]:
        """One subscribe message per channel (the venue takes one channel a message)."""
        self.connections += 1
        self._next_seq = None
        for symbol in self.unsynced():
            self.requests.mark_sent(symbol, now_ns)  # subscribing brings the snapshot
        products = [self.sub.to_native[s] for s in self.sub.canonical if s not in self.dead]
        return [_subscribe("subscribe", ch, products) for ch in CHANNELS]

    def snapshot_actions(self, symbols: list[str]) -> list[Action]:
        products = [self.sub.to_native[s] for s in symbols]
        return [
            Send(_subscribe("unsubscribe", "level2", products)),
            Send(_subscribe("subscribe", "level2", products)),
        ]

    def on_message(self, msg: Any, recv_ns: int) -> Emitted:
        if not isinstance(msg, dict):
            raise CorruptLineError(f"Coinbase message is {type(msg).__name__}, not an object")
        self._check_sequence(msg.get("sequence_num"))
        channel = msg.get("channel")
        out: Emitted = []
        try:
            if channel == "l2_data":
                ts = _envelope_time(msg, recv_ns)
                for event in as_list(msg.get("events"), "events"):
                    out += self._on_book(event, ts)
            elif channel == "market_trades":
                for event in as_list(msg.get("events"), "events"):
                    out += self._on_trades(event)
            elif msg.get("type") == "error":
                self._on_error(f"{msg.get('message')} {msg.get('reason')}")
            else:
                self.ctx.skip(f"coinbase:{channel if isinstance(channel, str) else 'other'}")
        finally:
            for symbol in self.unsynced():
                self.requests.want(symbol, recv_ns)
        return out

    def _on_error(self, text: str) -> None:
        """An ``error`` message; one naming a subscribed product makes that product unknown."""
        self.ctx.skip("coinbase:error")
        for native in self.sub.native:
            if native in text and self.sub.to_canonical[native] not in self.dead:
                self.mark_dead(native, text)
        raise CorruptLineError(f"Coinbase error: {text}")

    def _check_sequence(self, seq: Any) -> None:
        if isinstance(seq, bool) or not isinstance(seq, int):
            return
        expected, self._next_seq = self._next_seq, seq + 1
        if expected is not None and seq != expected:
            for symbol in self.sub.canonical:
                self.norm(symbol).gap(f"sequence_num {seq}, expected {expected}")

    def _on_book(self, event: Any, ts: int) -> Emitted:
        if not isinstance(event, dict):
            raise CorruptLineError("l2_data event is not an object")
        symbol = self.ctx.symbol(self.exchange, event.get("product_id"))
        if symbol is None:
            return []
        norm = self.norm(symbol)
        kind = event.get("type")
        with book_guard(norm):
            bids, asks = parse_updates(event.get("updates"))
            if kind not in ("snapshot", "update"):
                raise CorruptLineError(f"l2_data event type {kind!r}")
        if kind == "snapshot":
            self.requests.done(symbol)
            return [norm.snapshot(ts, bids, asks)]
        return keep([norm.update(ts, bids, asks)])

    def _on_trades(self, event: Any) -> Emitted:
        if not isinstance(event, dict):
            raise CorruptLineError("market_trades event is not an object")
        if event.get("type") == "snapshot" and self.connections <= 1:
            self.ctx.skip("coinbase:trade_snapshot")
            return []
        parsed = []
        for t in as_list(event.get("trades"), "trades"):
            if not isinstance(t, dict):
                raise CorruptLineError(f"trade {t!r} is not an object")
            side = TAKER_SIDE.get(str(t.get("side")).upper())
            if side is None:
                raise CorruptLineError(f"trade with side {t.get('side')!r}")
            trade_id = as_str(t.get("trade_id"), "trade_id")
            parsed.append((iso_to_ns(t.get("time")), _id_key(trade_id), trade_id, side, t))
        out: list[Trade | None] = []
        for ts, _, trade_id, side, t in sorted(parsed, key=lambda p: (p[0], p[1])):
            symbol = self.ctx.symbol(self.exchange, t.get("product_id"))
            if symbol is not None:
                out.append(
                    self.norm(symbol).trade(ts, trade_id, t.get("price"), t.get("size"), side)
                )
        return keep(out)


def _subscribe(kind: str, channel: str, products: list[str]) -> dict[str, Any]:
    return {"type": kind, "product_ids": products, "channel": channel}


def _envelope_time(msg: dict[str, Any], recv_ns: int) -> int:
    ts = msg.get("timestamp")
    return iso_to_ns(ts) if isinstance(ts, str) else recv_ns


def _id_key(trade_id: str) -> int:
    return int(trade_id) if trade_id.isdigit() else 0
