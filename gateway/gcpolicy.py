"""Collector policy: full collections scan what is new, not every open connection.

CPython's full collection walks every tracked object; with thousands of clients
(about a hundred objects each: websockets' tasks, futures, buffers) it holds the loop
for 100-500 ms, and connection ramps trigger one every time the heap grows by a
quarter. Objects that survive a full collection were reachable then; walking them
again finds only what has died since. So after each full collection the survivors
are frozen (``gc.freeze``: left out of later collections, still freed by reference
counting), and a full collection walks only what came since the last freeze.

What could die in cycles among frozen objects was mostly closed connections; they
now drop the references that made them cycles when they close
(``GatewayConnection.release``) and are freed by reference counting. As a backstop
for any other cycle, once the connections closed since the last whole-heap scan reach
a quarter of those open (and :data:`MIN_CLOSED`; every connection counts, WebSocket or
HTTP), everything is unfrozen for CPython's next full collection to walk, and the
freezing goes on after it. Measured in bench/README.md ("Seventh pass", "Eighth pass").
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

MIN_CLOSED = 100
"""Closed connections that never trigger a whole-heap scan on their own."""


class SurvivorFreeze:
    """``connections()`` gives the connections open now and closed so far. The gc
    callback only notes that a full collection happened (it may run in any thread,
    inside any allocation); the loop calls :meth:`tick` often and acts on it there."""

    def __init__(self, connections: Callable[[], tuple[int, int]]) -> None:
        self.connections = connections
        self.closed_at_scan = connections()[1]
        self.freezes = 0
        self.scans = 0
        self.installed = False
        self.scanning = False
        """Unfrozen: the next full collection walks the whole heap."""
        self._full = False

    def install(self) -> None:
        if not self.installed:
            gc.callbacks.append(self._on_gc)
            self.installed = True

    def uninstall(self) -> None:
        if self.installed:
            gc.callbacks.remove(self._on_gc)
            self.installed = False

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2:
            self._full = True

    def tick(self) -> None:
        """On the loop: after a full collection, freeze what survived it; or, once enough
        connections have closed, unfreeze everything for the next one to walk."""
        if not self._full:
            return
        self._full = False
        open_now, closed_total = self.connections()
        if self.scanning:  # that collection walked the whole heap
            self.scanning = False
            self.scans += 1
            log.debug("gc: whole heap scanned")
        elif closed_total - self.closed_at_scan >= max(MIN_CLOSED, open_now // 4):
            # no collection of our own: CPython's next full one walks it all (soon: its
            # threshold is a quarter of what the last one, over recent objects, kept)
            gc.unfreeze()
            self.scanning = True
            self.closed_at_scan = closed_total
            return
        gc.collect(1)  # young garbage is not frozen with the survivors
        gc.freeze()
        self.freezes += 1
