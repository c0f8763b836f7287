"""The ``bbo`` channel's fan-out (docs/protocol.md §4.8): its own fast path.

After each book record the hub calls :meth:`BboFanout.on_book`; when nobody
subscribes to the stream's or the symbol's BBO that is one dict lookup. Otherwise
the top is read from the book (two O(1) ladder reads, :mod:`core.bbo`), compared
with the last one announced, and only a change is encoded, once per format, and
queued to the subscribers. No depth view, no checksum.

Subscriptions live in the hub's registry under ``StreamKey("bbo", name)``; a
topic's state (last top, sequence) exists while it has subscribers.

A slow consumer's queued bbo messages are dropped with its book deltas; its
resync (``status resync``) is followed by the current top of each of its topics,
which every message is on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.bbo import Bbo, BboBoard, BboTopic
from core.book import ApplyResult
from core.types import Exchange
from gateway.session import Session
from gateway.subscriptions import StreamKey
from schemas import wire

if TYPE_CHECKING:
    from gateway.hub import Hub

CHANNEL = "bbo"


def bbo_key(name: str) -> StreamKey:
    return StreamKey(CHANNEL, name)


class BboFanout:
    """BBO topics of the hub's market and their subscribers."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.board = BboBoard(hub.market)
        self.topics = self.board.topics
        """Open topics by name: empty means the fast path costs nothing."""

    def known(self, name: str) -> bool:
        """A stream or symbol the market has (without opening a topic)."""
        return self.board.exists(name)

    def subscribe(self, session: Session, name: str) -> bool:
        """Add a subscriber; it gets the current top at once (or ``status stale``)."""
        topic = self.board.open(name)
        if topic is None:
            return False
        if not self.hub.subs.add(session, bbo_key(name)):
            return True
        if topic.last is not None and not self._stale(topic):
            session.send_data(self._encode(topic.last, session.binary), self.hub.mono())
        else:
            session.send_control("status", **_fields(topic), status="stale", reason="no book")
        return True

    def unsubscribe(self, session: Session, name: str) -> None:
        if self.hub.subs.remove(session, bbo_key(name)):
            self.board.close(name)

    def on_book(self, stream: str, result: ApplyResult) -> None:
        """After a book record: messages of the stream's and the symbol's topics."""
        book = self.hub.market.book(stream)
        if book is None:
            return
        msg, across = self.board.on_book(book)
        if result is ApplyResult.GAP and stream in self.topics:
            self._status_stale(self.topics[stream], book.stale_reason or "sequence gap")
        if msg is not None:
            self.deliver(msg, stream)
        if across is not None:
            self.deliver(across, book.symbol)

    def stream_lost(self, stream: str, reason: str) -> None:
        """The stream's book went (partition revoked): its topic's subscribers hear it."""
        topic = self.topics.get(stream)
        if topic is not None:
            self._status_stale(topic, reason)

    def deliver(self, msg: Bbo, name: str) -> None:
        subs = self.hub.subs.get(bbo_key(name))
        if subs is None:
            return
        hub = self.hub
        msg.gateway_ns = hub.clock()
        jframe = wire.bbo_json(msg) if subs.json else None
        pframe = wire.bbo_pb(msg) if subs.pb else None
        hub.queue_delta(subs, jframe, pframe, hub.data_ns())

    def resync(self, session: Session, name: str) -> None:
        """After a slow consumer's resync: the current top (its chain starts again)."""
        topic = self.topics.get(name)
        if topic is None or topic.last is None or self._stale(topic):
            return
        session.send_control("status", **_fields(topic), status="resync", reason="slow consumer")
        session.send_data(self._encode(topic.last, session.binary), self.hub.mono())

    def _encode(self, msg: Bbo, binary: bool) -> bytes:
        if not msg.gateway_ns:
            msg.gateway_ns = self.hub.clock()
        return wire.bbo_pb(msg) if binary else wire.bbo_json(msg)

    def _stale(self, topic: BboTopic) -> bool:
        if topic.exchange is Exchange.UNKNOWN:
            return False  # across venues a stale venue is left out, not announced
        book = self.hub.market.book(f"{topic.exchange.name}:{topic.symbol}")
        return book is None or book.stale

    def _status_stale(self, topic: BboTopic, reason: str) -> None:
        subs = self.hub.subs.get(bbo_key(f"{topic.exchange.name}:{topic.symbol}"))
        for s in subs or ():
            s.send_control("status", **_fields(topic), status="stale", reason=reason)


def _fields(topic: BboTopic) -> dict[str, str]:
    if topic.exchange is Exchange.UNKNOWN:
        return {"symbol": topic.symbol}
    return {"exchange": topic.exchange.name, "symbol": topic.symbol}
