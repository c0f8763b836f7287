"""Budgets of time-travel replays: what one process lets clients read from Kafka's history.

A replay costs a Kafka consumer and a thread per symbol for as long as it runs,
so replays are admitted against four caps at once: replays in the process,
replays per connection, replays per client (token subject, else address group:
a client cannot dodge the cap by opening more connections), and history readers
(symbols being replayed) in the process, which is also the size of the thread
pool the readers run on, so an admitted replay never waits for a thread. Pure
bookkeeping, no I/O; :class:`gateway.replay.ReplayManager` asks and releases.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ReplayCaps:
    replays: int
    """Replays running at once in the process."""
    per_connection: int
    per_client: int
    readers: int
    """Symbols being replayed at once in the process (history consumers and threads)."""
    symbols_per_replay: int


@dataclass
class ReplayBudget:
    caps: ReplayCaps
    replays: int = 0
    readers: int = 0
    by_connection: dict[int, int] = field(default_factory=dict)
    by_client: dict[str, int] = field(default_factory=dict)

    def acquire(self, connection: int, client: str, symbols: int) -> str | None:
        """Admit one replay of ``symbols`` symbols; None when admitted, else why not."""
        c = self.caps
        if symbols > c.symbols_per_replay:
            return f"at most {c.symbols_per_replay} symbols per replay"
        if self.replays >= c.replays:
            return "the server is running its maximum of replays"
        if self.readers + symbols > c.readers:
            return "the server is reading its maximum of history streams"
        if self.by_connection.get(connection, 0) >= c.per_connection:
            return f"at most {c.per_connection} replays per connection"
        if self.by_client.get(client, 0) >= c.per_client:
            return f"at most {c.per_client} replays per client"
        self.replays += 1
        self.readers += symbols
        self.by_connection[connection] = self.by_connection.get(connection, 0) + 1
        self.by_client[client] = self.by_client.get(client, 0) + 1
        return None

    def release(self, connection: int, client: str, symbols: int) -> None:
        """Give back what :meth:`acquire` took (once per admitted replay)."""
        self.replays -= 1
        self.readers -= symbols
        _decrement(self.by_connection, connection)
        _decrement(self.by_client, client)


def _decrement(counts: dict, key: object) -> None:
    n = counts.get(key, 0) - 1
    if n > 0:
        counts[key] = n
    else:
        counts.pop(key, None)  # freed: no entry left behind per closed connection
