"""The ``candles`` channel (docs/protocol.md §4.9): one live candle per (stream, interval).

A :class:`core.candles.CandleBuilder` exists while a (stream, interval) has a
subscriber. It starts from the Market's own state, so the open candle sent on
subscribe already holds every trade of its interval: the statistics' minute
buckets (intervals of whole minutes) or the recent tape folded into seconds
(``1s``). Then each trade the Market takes updates it and its subscribers get the
open candle (after the closed one, when the trade opened a new interval); a timer
(:meth:`CandleChannel.tick`) closes an interval that ends without a trade. Frames are
encoded once per format, like every channel, and never dropped (like trades).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.candles import CLOSE_GRACE_NS, INTERVALS, Candle, CandleBuilder, base_ns, fold_parts
from core.stats import MINUTE_NS
from core.types import Trade
from schemas import wire

if TYPE_CHECKING:
    from gateway.hub import Hub
    from gateway.session import Session


@dataclass(frozen=True, slots=True)
class CandleKey:
    """The candles of one stream at one interval: a topic of the subscription registry."""

    name: str
    """The stream, EXCHANGE:SYMBOL."""
    interval: str

    @property
    def channel(self) -> str:
        return "candles"


def encode(c: Candle, binary: bool) -> bytes:
    return wire.candle_pb(c) if binary else wire.candle_json(c)


class CandleChannel:
    """Builders of the subscribed (stream, interval) pairs; frames to their subscribers."""

    def __init__(self, hub: Hub, grace_ns: int = CLOSE_GRACE_NS) -> None:
        self.hub = hub
        self.grace_ns = grace_ns
        self.builders: dict[CandleKey, CandleBuilder] = {}
        self.by_stream: dict[str, list[CandleKey]] = {}
        self.late = 0
        """Trades that came after their interval was closed (not in any live candle)."""

    def subscribe(self, session: Session, key: CandleKey) -> None:
        """Add a subscriber; it gets the open candle now, if an interval is open."""
        if not self.hub.subs.add(session, key):
            return
        builder = self.builders.get(key)
        if builder is None:
            builder = self.builders[key] = self._builder(key)
            self.by_stream.setdefault(key.name, []).append(key)
        current = builder.current()
        if current is not None:
            session.send_data(encode(current, session.binary))

    def unsubscribe(self, session: Session, key: CandleKey) -> None:
        if self.hub.subs.remove(session, key):
            self.forget(key)

    def forget(self, key: CandleKey) -> None:
        """The key's last subscriber left: its builder goes."""
        builder = self.builders.pop(key, None)
        if builder is None:
            return
        self.late += builder.late
        keys = self.by_stream.get(key.name, [])
        if key in keys:
            keys.remove(key)
        if not keys:
            self.by_stream.pop(key.name, None)

    def on_trade(self, trade: Trade) -> None:
        """A trade the Market took: every interval of its stream moves on."""
        keys = self.by_stream.get(trade.stream)
        if not keys:
            return
        wall = self.hub.clock()
        for key in keys:
            closed, current = self.builders[key].add(trade, wall)
            if closed is not None:
                self._send(key, closed)
            if current is not None:
                self._send(key, current)

    def tick(self) -> None:
        """Timer: close the intervals that ended without a trade closing them."""
        wall = self.hub.clock()
        for key, builder in list(self.builders.items()):
            closed = builder.due(wall, self.grace_ns)
            if closed is not None:
                self._send(key, closed)
        self.hub.flush_slice()

    def _send(self, key: CandleKey, c: Candle) -> None:
        subs = self.hub.subs.get(key)
        if subs is not None:
            jframe = wire.candle_json(c) if subs.json else b""
            pframe = wire.candle_pb(c) if subs.pb else b""
            self.hub.queue_keep(subs, jframe, pframe)

    def _builder(self, key: CandleKey) -> CandleBuilder:
        """A builder holding the open interval's trades so far (from the Market's state)."""
        exchange, _, symbol = key.name.partition(":")
        state = self.hub.market.state(key.name)
        stats = state.stats if state is not None else None
        bucket_ns = stats.bucket_ns if stats is not None else MINUTE_NS
        builder = CandleBuilder(exchange, symbol, key.interval, bucket_ns)
        if state is None or not state.trades or stats is None:
            return builder
        part = base_ns(INTERVALS[key.interval], bucket_ns)
        if part == bucket_ns:
            parts = stats.buckets(copy=False)  # seed() copies what it keeps
        else:
            parts = list(fold_parts(reversed(state.trades), part).items())
        builder.seed(parts, state.trades[0].timestamp_ns, state.counters.last_trade_ns)
        # an interval already over is closed quietly: nothing is open, nobody had it open
        builder.due(self.hub.clock(), self.grace_ns)
        return builder
