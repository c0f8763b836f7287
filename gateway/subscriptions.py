"""Who subscribes to what: the gateway's one registry of subscriptions.

A *topic* is what a client receives, named by a small frozen key: ``ViewKey`` for a
book view (stream or aggregated symbol, depth, speed), ``StreamKey`` for channels
sent as they are (``trades``, ``stats``). Subscribers are kept per format, because a
message is encoded once per format and the same bytes go to every subscriber of that
format; and per session, to answer "what does this client hold" (limits,
unsubscribe, resync, disconnect) without scanning every topic.

Only this module changes subscriptions; the hub, the server and replay ask it.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class Subscriber(Protocol):
    """A session as far as the registry needs it: hashable, with a wire format."""

    binary: bool

    def __hash__(self) -> int: ...


class Topic(Hashable, Protocol):
    """A topic key: hashable, and named by its channel and stream/symbol."""

    @property
    def channel(self) -> str: ...

    @property
    def name(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ViewKey:
    """A book view: ``book`` of a stream or ``aggregated_book`` of a canonical symbol."""

    aggregated: bool
    name: str
    """Stream (EXCHANGE:SYMBOL) or, for aggregated views, the canonical symbol."""
    depth: int
    conflated: bool

    @property
    def channel(self) -> str:
        return "aggregated_book" if self.aggregated else "book"


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A channel sent per stream as it is (``trades``, ``stats``)."""

    channel: str
    name: str


S = TypeVar("S", bound=Subscriber)


class Subscribers(Generic[S]):
    """The subscribers of one topic, split by format (a frame is encoded per format)."""

    __slots__ = ("json", "pb")

    def __init__(self) -> None:
        self.json: set[S] = set()
        self.pb: set[S] = set()

    def __len__(self) -> int:
        return len(self.json) + len(self.pb)

    def __iter__(self) -> Iterator[S]:
        yield from self.json
        yield from self.pb

    def __contains__(self, s: object) -> bool:
        return s in self.json or s in self.pb


class Subscriptions(Generic[S]):
    """Topic -> subscribers (per format) and session -> topics, always in step."""

    def __init__(self) -> None:
        self._topics: dict[Topic, Subscribers[S]] = {}
        self._by_channel: dict[str, dict[Topic, Subscribers[S]]] = {}
        self._of: dict[S, set[Topic]] = {}

    def add(self, session: S, key: Topic) -> bool:
        """Subscribe; False if the session already had it."""
        held = self._of.setdefault(session, set())
        if key in held:
            return False
        held.add(key)
        subs = self._topics.get(key)
        if subs is None:
            subs = self._topics[key] = Subscribers[S]()
            self._by_channel.setdefault(key.channel, {})[key] = subs
        (subs.pb if session.binary else subs.json).add(session)
        return True

    def remove(self, session: S, key: Topic) -> bool:
        """Unsubscribe; True when the topic has no subscriber left (and is forgotten)."""
        held = self._of.get(session)
        if held is not None:
            held.discard(key)
            if not held:
                del self._of[session]
        subs = self._topics.get(key)
        if subs is None:
            return False
        subs.json.discard(session)
        subs.pb.discard(session)
        if subs.json or subs.pb:
            return False
        del self._topics[key]
        channel = self._by_channel[key.channel]
        del channel[key]
        if not channel:
            del self._by_channel[key.channel]
        return True

    def drop(self, session: S) -> list[Topic]:
        """Every subscription of a session goes; returns the topics left without any."""
        return [k for k in list(self._of.get(session, ())) if self.remove(session, k)]

    def get(self, key: Topic) -> Subscribers[S] | None:
        """The topic's subscribers (None when it has none)."""
        return self._topics.get(key)

    def channel(self, channel: str) -> dict[Topic, Subscribers[S]]:
        """Topics of one channel with subscribers (do not modify)."""
        return self._by_channel.get(channel, {})

    def of(self, session: S) -> frozenset[Topic]:
        """What a session subscribes to (a copy: safe to iterate while changing)."""
        return frozenset(self._of.get(session, ()))

    def has(self, session: S, key: Topic) -> bool:
        return key in self._of.get(session, ())

    def count(self, session: S) -> int:
        return len(self._of.get(session, ()))
