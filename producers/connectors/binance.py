"""Binance spot: ``<symbol>@depth@100ms`` diffs + REST depth snapshots, and ``@trade``. No I/O.

Raw messages (combined stream ``/stream?streams=bnbbtc@depth@100ms/bnbbtc@trade``,
payloads from Binance's web-socket-streams.md)::

    {"stream":"bnbbtc@depth@100ms","data":{"e":"depthUpdate","E":1672515782136,
     "s":"BNBBTC","U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"]]}}
    {"stream":"bnbbtc@trade","data":{"e":"trade","E":1672515782136,"s":"BNBBTC",
     "t":12345,"p":"0.001","q":"100","b":88,"a":50,"T":1672515782136,"m":true,"M":true}}

REST (``GET /api/v3/depth?symbol=BNBBTC&limit=1000``)::

    {"lastUpdateId":1027024,"bids":[["4.00000000","431.00000000"]],
     "asks":[["4.00000200","12.00000000"]]}

Sync, per "How to manage a local order book correctly": buffer the diffs, fetch
a snapshot, drop diffs with ``u <= lastUpdateId``, the first applied one has
``U <= lastUpdateId + 1 <= u``, every later one ``U == previous u + 1``; a
snapshot older than the first buffered diff (``lastUpdateId + 1 < U``) is
discarded and fetched again. That state machine is the capture package's
:class:`producers.captures.binance.BinanceHandler`, reused as is; this class adds
what a live feed needs: *when* to fetch (on the first diff of an unsynced
stream, or ``initial_snapshot_delay`` after connecting), retries, and symbols
Binance refuses (HTTP 400 ``Invalid symbol``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from core.types import Exchange
from producers.captures.binance import BinanceHandler as CaptureBinanceHandler
from producers.captures.common import int_field
from producers.connectors.base import Action, Emitted, FetchSnapshot, HandlerBase
from producers.connectors.errors import SnapshotFetchError
from producers.connectors.symbols import Subscription

DEFAULT_WS_URL = "wss://stream.binance.com:9443"
DEFAULT_REST_URL = "https://api.binance.com"


class BinanceHandler(HandlerBase):
    """Binance frames and REST snapshots -> normalized records and fetch requests."""

    exchange = Exchange.BINANCE

    def __init__(
        self,
        subscription: Subscription,
        *,
        sequence_base: int = 0,
        snapshot_limit: int = 1000,
        max_buffered: int = 10_000,
        initial_delay_ns: int = 1_000_000_000,
        retry_delay_ns: int = 1_000_000_000,
        snapshot_timeout_ns: int = 15_000_000_000,
    ) -> None:
        super().__init__(
            subscription, sequence_base=sequence_base, snapshot_timeout_ns=snapshot_timeout_ns
        )
        self.snapshot_limit = snapshot_limit
        self.initial_delay_ns = initial_delay_ns
        self.retry_delay_ns = retry_delay_ns
        self.inner = CaptureBinanceHandler(self.ctx, max_buffered)
        self._first_pending: dict[str, int | None] = {}
        """Canonical symbol -> ``U`` of the oldest diff buffered while unsynced (None: unknown)."""

    def url(self, base: str) -> str:
        """The combined-stream URL: depth diffs every 100 ms and raw trades."""
        streams = []
        for native in self.sub.native:
            name = native.lower()
            streams += [f"{name}@depth@100ms", f"{name}@trade"]
        return f"{base.rstrip('/')}/stream?streams={'/'.join(streams)}"

    def snapshot_path(self, native: str) -> str:
        return f"/api/v3/depth?symbol={quote(native)}&limit={self.snapshot_limit}"

    def subscriptions(self, now_ns: int) -> list[dict[str, Any]]:
        """Nothing to send (the URL subscribes); schedule the snapshots of unsynced streams."""
        self.connections += 1
        for symbol in self.unsynced():
            self.requests.want(symbol, now_ns + self.initial_delay_ns)
        return []

    def on_disconnect(self) -> None:
        """Nothing is lost by itself: update ids show any missed diff after reconnecting."""

    def on_message(self, msg: Any, recv_ns: int) -> Emitted:
        records = self.inner.on_message(msg, recv_ns, "ws")
        data = msg.get("data", msg) if isinstance(msg, dict) else None
        if isinstance(data, dict) and data.get("e") == "depthUpdate":
            symbol = self.ctx.symbols.canonical(self.exchange, str(data.get("s")))
            if symbol is not None and symbol not in self.dead and not self.norm(symbol).synced:
                self._first_pending.setdefault(symbol, data.get("U"))
                self.requests.want(symbol, recv_ns)
        return records

    def snapshot_actions(self, symbols: list[str]) -> list[Action]:
        return [FetchSnapshot(self.sub.to_native[s]) for s in symbols]

    def on_snapshot(self, native: str, body: Any, recv_ns: int) -> Emitted:
        """A REST depth answer for ``native``: the capture handler applies it and its buffer."""
        symbol = self.sub.to_canonical[native]
        norm = self.norm(symbol)
        if norm.synced:
            self.requests.done(symbol)
            self.ctx.skip("binance:unused_snapshot")
            return []
        last_id = int_field(
            body.get("lastUpdateId") if isinstance(body, dict) else None, "lastUpdateId"
        )
        first = self._first_pending.get(symbol)
        if isinstance(first, int) and last_id + 1 < first:
            self.ctx.skip("binance:stale_snapshot")
            self.requests.failed(symbol, recv_ns + self.retry_delay_ns)
            return []
        records = self.inner.on_http(self.snapshot_path(native), body, recv_ns, "rest")
        if norm.synced:
            self.requests.done(symbol)
            self._first_pending.pop(symbol, None)
        else:
            self._first_pending[symbol] = None
            self.requests.failed(symbol, recv_ns + self.retry_delay_ns)
        return records

    def on_snapshot_failed(self, native: str, error: SnapshotFetchError, now_ns: int) -> None:
        symbol = self.sub.to_canonical[native]
        if error.unknown_symbol:
            self.mark_dead(native, str(error))
        else:
            self.requests.failed(symbol, now_ns + self.retry_delay_ns)
