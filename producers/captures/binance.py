"""Binance spot: diff-depth stream + REST depth snapshots, and trades. No I/O.

Raw diff (combined stream ``nknusdt@depth@100ms``, BINANCE.ws.1.0)::

    {"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512568,
     "s":"NKNUSDT","U":499869753,"u":499869754,"b":[["0.35170000","4265.00000000"]],
     "a":[["0.35290000","10968.00000000"]]}}

REST snapshot (``GET /api/v3/depth?symbol=NKNUSDT&limit=1000``, BINANCE.http.0.0)::

    {"lastUpdateId":499869752,"bids":[["0.35210000","672.00000000"], ...],"asks":[...]}

Trade (``nknusdt@aggTrade``)::

    {"e":"aggTrade","E":1633998523963,"s":"NKNUSDT","a":15683430,"p":"0.35280000",
     "q":"58.00000000","f":19862790,"l":19862790,"T":1633998523963,"m":false,"M":true}

Sync, per Binance's "how to manage a local order book correctly": diffs are
buffered until a REST snapshot arrives; then diffs with ``u <= lastUpdateId``
are dropped, the first applied one must have ``U <= lastUpdateId + 1 <= u``, and
every later one ``U == previous u + 1``. Anything else is a gap: the stream waits
(buffering) for the next REST snapshot in the input. Diffs emitted from the
buffer carry the receive time of the snapshot that made them usable.

``m`` true means the buyer was the maker, so the taker (our ``side``) sold.
``bookTicker``, ``kline`` and the other streams are counted as skipped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from core.types import Exchange
from producers.captures.common import (
    Emitted,
    ReplayContext,
    as_list,
    book_guard,
    int_field,
    millis_to_ns,
)
from producers.captures.errors import CorruptLineError
from producers.captures.normalizer import ParsedLevel, StreamNormalizer, parse_level

MAX_BUFFERED_DIFFS = 10_000
"""Diffs kept per symbol while waiting for a snapshot; older ones are dropped."""


@dataclass(frozen=True, slots=True)
class Diff:
    first_id: int
    """``U``: first update id in the event."""
    last_id: int
    """``u``: final update id in the event."""
    timestamp_ns: int
    bids: list[ParsedLevel]
    asks: list[ParsedLevel]


@dataclass(slots=True)
class _Sync:
    snapshot_id: int = 0
    """``lastUpdateId`` of the snapshot in use."""
    last_id: int | None = None
    """``u`` of the last applied diff; None until the first diff after the snapshot."""
    buffer: deque[Diff] = field(default_factory=deque)


def parse_levels(raw: Any, what: str) -> list[ParsedLevel]:
    out = []
    for lv in as_list(raw, what):
        if not isinstance(lv, list) or len(lv) < 2:
            raise CorruptLineError(f"{what} level {lv!r} is not [price, quantity]")
        out.append(parse_level(lv[0], lv[1]))
    return out


def parse_diff(data: dict[str, Any]) -> Diff:
    first, last = int_field(data["U"], "U"), int_field(data["u"], "u")
    if first > last:
        raise CorruptLineError(f"diff with U={first} > u={last}")
    return Diff(
        first,
        last,
        millis_to_ns(data["E"]),
        parse_levels(data["b"], "b"),
        parse_levels(data["a"], "a"),
    )


class BinanceHandler:
    """Binance messages -> normalized records; see the module docstring."""

    exchange = Exchange.BINANCE

    def __init__(self, ctx: ReplayContext, max_buffered: int = MAX_BUFFERED_DIFFS) -> None:
        self.ctx = ctx
        self.max_buffered = max_buffered
        self._sync: dict[str, _Sync] = {}

    def on_message(self, msg: Any, recv_ns: int, source: str) -> Emitted:
        if not isinstance(msg, dict):
            raise CorruptLineError(f"Binance message is {type(msg).__name__}, not an object")
        data = msg.get("data", msg) if "stream" in msg else msg
        if not isinstance(data, dict):
            raise CorruptLineError("Binance stream message without a data object")
        kind = data.get("e")
        if kind == "depthUpdate":
            return self._on_diff(data)
        if kind in ("aggTrade", "trade"):
            return self._on_trade(data, kind)
        if kind is None and {"u", "s", "b", "a"} <= data.keys():
            kind = "bookTicker"
        self.ctx.skip(f"binance:{kind if isinstance(kind, str) else 'other'}")
        return []

    def on_http(self, url: str, msg: Any, recv_ns: int, source: str) -> Emitted:
        parts = urlsplit(url)
        if parts.path.endswith("/exchangeInfo"):
            self.ctx.symbols.load_binance_exchange_info(msg)
            self.ctx.skip("binance:exchangeInfo")
            return []
        if not parts.path.endswith("/depth"):
            self.ctx.skip("binance:http")
            return []
        native = parse_qs(parts.query).get("symbol", [""])[0]
        symbol = self.ctx.symbol(self.exchange, native)
        if symbol is None:
            return []
        return self._on_snapshot(symbol, msg, recv_ns)

    def on_connect(self, recv_ns: int, source: str) -> None:
        """Nothing to do: update ids detect any loss across a reconnection."""

    def on_lost(self, raw: str, source: str) -> None:
        """Nothing to do: a lost diff shows as an update-id gap on the next one."""

    def on_end(self) -> None:
        for symbol, sync in self._sync.items():
            norm = self.ctx.normalizer(self.exchange, symbol)
            for _ in sync.buffer:
                norm.drop()
            sync.buffer.clear()

    def _on_diff(self, data: dict[str, Any]) -> Emitted:
        symbol = self.ctx.symbol(self.exchange, data.get("s"))
        if symbol is None:
            return []
        norm = self.ctx.normalizer(self.exchange, symbol)
        with book_guard(norm):
            diff = parse_diff(data)
        sync = self._sync.setdefault(symbol, _Sync())
        if not norm.synced:
            self._buffer(norm, sync, diff)
            return []
        return self._apply(norm, sync, diff)

    def _on_snapshot(self, symbol: str, msg: Any, recv_ns: int) -> Emitted:
        norm = self.ctx.normalizer(self.exchange, symbol)
        sync = self._sync.setdefault(symbol, _Sync())
        if norm.synced:
            self.ctx.skip("binance:unused_snapshot")
            return []
        if not isinstance(msg, dict):
            raise CorruptLineError("depth snapshot is not an object")
        snapshot_id = int_field(msg.get("lastUpdateId"), "lastUpdateId")
        bids, asks = parse_levels(msg.get("bids"), "bids"), parse_levels(msg.get("asks"), "asks")
        out: Emitted = [norm.snapshot(recv_ns, bids, asks)]
        sync.snapshot_id, sync.last_id = snapshot_id, None
        buffered, sync.buffer = sync.buffer, deque()
        for diff in buffered:
            if norm.synced:
                out.extend(self._apply(norm, sync, diff))
            else:
                self._buffer(norm, sync, diff)
        return out

    def _apply(self, norm: StreamNormalizer, sync: _Sync, diff: Diff) -> Emitted:
        if sync.last_id is None:
            if diff.last_id <= sync.snapshot_id:
                norm.drop()
                return []
            if diff.first_id > sync.snapshot_id + 1:
                reason = f"first diff U={diff.first_id} > lastUpdateId+1={sync.snapshot_id + 1}"
                return self._gap(norm, sync, diff, reason)
        elif diff.last_id <= sync.last_id:
            norm.drop()
            return []
        elif diff.first_id != sync.last_id + 1:
            return self._gap(norm, sync, diff, f"U={diff.first_id} != u+1={sync.last_id + 1}")
        sync.last_id = diff.last_id
        record = norm.update(diff.timestamp_ns, diff.bids, diff.asks)
        return [record] if record is not None else []

    def _gap(self, norm: StreamNormalizer, sync: _Sync, diff: Diff, reason: str) -> Emitted:
        norm.gap(reason)
        self._buffer(norm, sync, diff)
        return []

    def _buffer(self, norm: StreamNormalizer, sync: _Sync, diff: Diff) -> None:
        sync.buffer.append(diff)
        if len(sync.buffer) > self.max_buffered:
            sync.buffer.popleft()
            norm.drop()

    def _on_trade(self, data: dict[str, Any], kind: str) -> Emitted:
        symbol = self.ctx.symbol(self.exchange, data.get("s"))
        if symbol is None:
            return []
        norm = self.ctx.normalizer(self.exchange, symbol)
        trade_id = int_field(data.get("a" if kind == "aggTrade" else "t"), "trade id")
        maker = data.get("m")
        if not isinstance(maker, bool):
            raise CorruptLineError(f"trade without a boolean 'm': {maker!r}")
        side = "sell" if maker else "buy"
        ts = millis_to_ns(data.get("T"))
        trade = norm.trade(ts, str(trade_id), data.get("p"), data.get("q"), side)
        return [trade] if trade is not None else []
