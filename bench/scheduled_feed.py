"""A simulator feed that is made ahead of time and handed over on time, for
``bench.memory_gateway``: the gateway's own latency without its feed in the way.

The simulator of ``mdgw simulate`` on a thread of the gateway's process competes with
the gateway's loop for the interpreter lock: each event it makes (the book move,
the encoding) takes the lock for tens of µs when the loop may be writing. Here it
runs ahead instead, on a clock of its own (:class:`RunAheadClock`), in bursts of
:data:`AHEAD_S` / 2 seconds of events, and what it publishes is kept
(:class:`ScheduledSink`). A release thread sleeps until each record's arrival time
and only then hands the encoded bytes to the broker: the gateway sees the same
records at the same times as from a live simulator, and the feed costs its process
one ``send`` to the in-memory broker per record between bursts.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from mdgw.kafka.memory import MemoryBroker
from mdgw.kafka.sink import Headers

AHEAD_S = 30.0
"""How far ahead of the wall clock the simulator runs; it makes another half of that
when only half is left (at the moderate rate of ``bench.latency``, 84 updates/s, a
burst is ~0.1 s of CPU every 15 s; its windows are shorter than that)."""


class RunAheadClock:
    """The simulator's clock (``producers.simulate_run.Clock``): its time starts now and
    moves only when the simulator waits, without sleeping, until it is ``ahead_s``
    ahead of the real clock; then it sleeps until half of that is left."""

    def __init__(self, ahead_s: float = AHEAD_S) -> None:
        self.ahead_ns = int(ahead_s * 1e9)
        self.virtual = time.monotonic_ns()
        self.wall_offset = time.time_ns() - self.virtual

    def monotonic_ns(self) -> int:
        return self.virtual

    def time_ns(self) -> int:
        return self.virtual + self.wall_offset

    def wait(self, stop: threading.Event, seconds: float) -> None:
        self.virtual += max(1, int(seconds * 1e9))
        if self.virtual - time.monotonic_ns() > self.ahead_ns:
            # far enough ahead: sleep until half of it is left (or the run is stopped)
            stop.wait((self.virtual - self.ahead_ns // 2 - time.monotonic_ns()) / 1e9)


_Queued = tuple[int, str, str | bytes | None, bytes | None, Headers | None, int | None, int | None]
"""A record kept until it is due: (due wall ns, topic, key, value, headers, partition,
timestamp_ms), the last five as ``RecordSink.send`` takes them."""


class ScheduledSink:
    """A record sink (``mdgw.kafka.sink.RecordSink``) that keeps each record until its
    arrival time (``due_wall_ns``, set before each ``send`` by the publisher), then a
    release thread sends it to ``broker``. ``close`` drops what is not due yet."""

    def __init__(self, broker: MemoryBroker, clock: Callable[[], int] = time.time_ns) -> None:
        self.broker = broker
        self.clock = clock
        self.due_wall_ns = 0
        self._queue: deque[_Queued] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.released = 0
        self.late_ns = 0
        """The latest release after its due time so far (how late the release thread woke)."""
        self._thread = threading.Thread(target=self._release, name="release", daemon=True)
        self._thread.start()

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        with self._cond:
            self._queue.append(
                (self.due_wall_ns, topic, key, value, headers, partition, timestamp_ms)
            )
            self._cond.notify()

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        """Nothing to wait for: records go to the broker when they are due."""
        return 0

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._queue.clear()
            self._cond.notify()
        self._thread.join(5)

    def _release(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._closed:
                    if self._queue:
                        wait_s = (self._queue[0][0] - self.clock()) / 1e9
                        if wait_s <= 0:
                            break
                        cond.wait(wait_s)
                    else:
                        cond.wait()
                if self._closed:
                    return
                due, topic, key, value, headers, partition, timestamp_ms = self._queue.popleft()
            self.late_ns = max(self.late_ns, self.clock() - due)
            self.broker.send(topic, key, value, headers, partition, timestamp_ms)
            self.released += 1
