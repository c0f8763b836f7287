"""The server connection: ``websockets``' own, plus probe pongs handed to the session.

``serve(create_connection=...)`` is websockets' documented way to customise a
connection; ``process_event`` is the method its own subclasses override to see
incoming frames. A pong whose payload starts with the probe prefix answers a probe
the session wrote (gateway/session.py); everything else goes on to websockets
(keep-alive pongs, data, close).
"""

from __future__ import annotations

from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from gateway.outbox import PROBE_MAGIC


class GatewayConnection(ServerConnection):
    on_probe: Callable[[bytes], None] | None = None

    def process_event(self, event: Request | Frame) -> None:  # type: ignore[override]
        if (
            isinstance(event, Frame)
            and event.opcode is Opcode.PONG
            and self.on_probe is not None
            and event.data[:4] == PROBE_MAGIC
        ):
            self.on_probe(bytes(event.data))
            return
        super().process_event(event)
