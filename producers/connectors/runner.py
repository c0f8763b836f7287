"""The thin async I/O every venue shares: connect, subscribe, read, reconnect, REST.

The venue handler (pure, :mod:`.base`) decides what frames mean and what to send;
this module only moves bytes and keeps time:

- connect with a handshake timeout, send the handler's subscriptions;
- read frames, each bounded by ``tick``; no frame for ``idle_timeout`` is a dead
  connection; between frames, hand the handler the clock so overdue snapshot
  requests go out again;
- not-JSON frames and frames the handler cannot use are counted and skipped;
- on any loss, reconnect after an exponential, jittered, capped delay; give up
  after ``max_attempts`` attempts in a row that got no frame (0: never);
- ``FetchSnapshot`` actions run as tasks (at most one per stream, the handler
  sees to that): ``GET`` with urllib in a worker thread, bounded by
  ``rest_timeout`` and ``max_rest_bytes``, the answer handed back to the handler.

Records are published as they come out of the handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from core.types import BookUpdate, Trade
from producers.captures.common import MALFORMED
from producers.captures.errors import CaptureError
from producers.connectors.backoff import Backoff
from producers.connectors.base import Action, FetchSnapshot, HandlerBase, Record, Send
from producers.connectors.errors import (
    ConnectionLostError,
    ConnectorConfigError,
    ConnectorError,
    ConnectorGaveUpError,
    MalformedMessageError,
    SnapshotFetchError,
)
from producers.connectors.options import ConnectorOptions
from producers.connectors.stats import ConnectorStats

log = logging.getLogger(__name__)
UNUSABLE = (CaptureError, ConnectorError, *MALFORMED)
"""What a handler raises for a frame it cannot use: counted, the stream goes on."""


class RecordPublisher(Protocol):
    """:class:`producers.publisher.Publisher`, or any test double with the same two methods."""

    def publish(self, msg: BookUpdate | Trade) -> None: ...
    def flush(self, timeout: float = 30.0) -> int: ...


def _http_get(url: str, timeout: float, max_bytes: int) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(max_bytes + 1)
    except urllib.error.HTTPError as e:
        return e.code, e.read(64 * 1024)


async def fetch_json(url: str, timeout: float, max_bytes: int) -> Any:
    """GET ``url`` -> JSON; any failure is a :class:`SnapshotFetchError`.

    HTTP 400 with Binance's code -1121 (``Invalid symbol``) sets ``unknown_symbol``.
    """
    try:
        status, body = await asyncio.wait_for(
            asyncio.to_thread(_http_get, url, timeout, max_bytes), timeout + 1.0
        )
    except (TimeoutError, OSError) as e:
        raise SnapshotFetchError(f"GET {url}: {e!r}") from e
    if len(body) > max_bytes:
        raise SnapshotFetchError(f"GET {url}: answer larger than {max_bytes} bytes", status=status)
    try:
        data = json.loads(body)
    except ValueError as e:
        raise SnapshotFetchError(f"GET {url}: HTTP {status}, not JSON", status=status) from e
    if status != 200:
        unknown = status == 400 and isinstance(data, dict) and data.get("code") == -1121
        raise SnapshotFetchError(
            f"GET {url}: HTTP {status} {data}", status=status, unknown_symbol=unknown
        )
    return data


class FeedRunner:
    """Runs one venue handler against the network until ``stop`` is set."""

    def __init__(
        self,
        handler: HandlerBase,
        ws_url: str,
        publisher: RecordPublisher,
        stats: ConnectorStats,
        *,
        rest_url: str | None = None,
        options: ConnectorOptions | None = None,
        stop: asyncio.Event | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.handler = handler
        self.url = handler.url(ws_url)
        self.rest_url = rest_url.rstrip("/") if rest_url else None
        self.publisher = publisher
        self.stats = stats
        self.options = options or ConnectorOptions()
        self.stop = stop or asyncio.Event()
        o = self.options
        self.backoff = Backoff(
            o.backoff_initial, o.backoff_max, o.backoff_factor, o.backoff_jitter, rand
        )
        self._fetches: dict[str, asyncio.Task[None]] = {}
        try:
            parse_uri(self.url)
        except InvalidURI as e:
            raise ConnectorConfigError(f"bad WebSocket URL {self.url!r}: {e}") from e

    async def run(self) -> ConnectorStats:
        """Connect, read, reconnect until stopped; raises :class:`ConnectorGaveUpError`."""
        failures = 0
        try:
            while not self.stop.is_set():
                started, frames_before = time.monotonic(), self.stats.messages
                try:
                    await self._session()
                except ConnectionLostError as e:
                    self.stats.note_error(str(e))
                    log.warning("%s: %s", self.stats.venue, e)
                if self.stop.is_set():
                    break
                self.handler.on_disconnect()
                failures = 0 if self.stats.messages > frames_before else failures + 1
                if time.monotonic() - started >= self.options.stable_after:
                    self.backoff.reset()
                if self.options.max_attempts and failures >= self.options.max_attempts:
                    self.stats.gave_up = True
                    raise ConnectorGaveUpError(
                        f"{self.stats.venue}: {failures} attempts in a row failed, last error: "
                        f"{self.stats.last_error}",
                        self.stats,
                    )
                await self._sleep(self.backoff.next())
        finally:
            for task in self._fetches.values():
                task.cancel()
            await asyncio.gather(*self._fetches.values(), return_exceptions=True)
            self.stats.snapshot_requests = self.handler.snapshot_requests
        return self.stats

    async def _sleep(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), delay)

    async def _session(self) -> None:
        ws = await self._connect()
        if ws is None:
            return
        self.stats.connects += 1
        watcher = asyncio.create_task(self._close_on_stop(ws))
        try:
            now = time.time_ns()
            for payload in self.handler.subscriptions(now):
                await ws.send(json.dumps(payload))
            await self._perform(ws, self.handler.actions(now))
            await self._read_loop(ws)
        except ConnectionClosed as e:
            if not self.stop.is_set():
                self.stats.disconnects += 1
                raise ConnectionLostError(f"connection to {self.url} closed: {e}") from e
        except ConnectionLostError:
            self.stats.disconnects += 1
            raise
        finally:
            watcher.cancel()
            await ws.close()

    async def _connect(self) -> ClientConnection | None:
        """Open the WebSocket within ``open_timeout``; None when stopped meanwhile."""
        o = self.options
        opening = asyncio.ensure_future(
            connect(
                self.url,
                open_timeout=o.open_timeout,
                ping_interval=o.ping_interval,
                ping_timeout=o.ping_timeout,
                close_timeout=o.close_timeout,
                max_size=o.max_message_bytes,
                max_queue=o.max_queue,
            )
        )
        stopping = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({opening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not opening.done():
            opening.cancel()
            opening.add_done_callback(lambda f: f.cancelled() or f.exception())
            return None
        try:
            return opening.result()
        except (OSError, TimeoutError, InvalidHandshake) as e:
            self.stats.connect_failures += 1
            raise ConnectionLostError(f"cannot connect to {self.url}: {e!r}") from e

    async def _close_on_stop(self, ws: ClientConnection) -> None:
        await self.stop.wait()
        await ws.close()

    async def _read_loop(self, ws: ClientConnection) -> None:
        last_frame = time.monotonic()
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), self.options.tick)
            except TimeoutError:
                if time.monotonic() - last_frame >= self.options.idle_timeout:
                    raise ConnectionLostError(
                        f"no frame from {self.url} for {self.options.idle_timeout}s"
                    ) from None
            else:
                last_frame = time.monotonic()
                self._on_frame(raw, time.time_ns())
            await self._perform(ws, self.handler.actions(time.time_ns()))

    def _on_frame(self, raw: str | bytes, recv_ns: int) -> None:
        self.stats.messages += 1
        try:
            msg = self.handler.decode(raw)
        except MalformedMessageError as e:
            self.stats.malformed += 1
            self.stats.note_error(str(e))
            return
        try:
            records = self.handler.on_message(msg, recv_ns)
        except UNUSABLE as e:
            self.stats.handler_errors += 1
            self.stats.note_error(f"{self.stats.venue}: unusable frame: {e}")
            return
        self._publish(records)

    async def _perform(self, ws: ClientConnection, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Send):
                await ws.send(json.dumps(action.payload))
            elif isinstance(action, FetchSnapshot):
                running = self._fetches.get(action.native)
                if running is None or running.done():
                    task = asyncio.create_task(self._fetch(action.native))
                    self._fetches[action.native] = task

    async def _fetch(self, native: str) -> None:
        if self.rest_url is None:
            raise ConnectorConfigError(f"{self.stats.venue} needs a REST URL for snapshots")
        url = self.rest_url + self.handler.snapshot_path(native)
        o = self.options
        try:
            body = await fetch_json(url, o.rest_timeout, o.max_rest_bytes)
            records = self.handler.on_snapshot(native, body, time.time_ns())
        except SnapshotFetchError as e:
            self._snapshot_failed(native, e)
            return
        except UNUSABLE as e:
            self._snapshot_failed(native, SnapshotFetchError(f"unusable snapshot of {native}: {e}"))
            return
        self._publish(records)

    def _snapshot_failed(self, native: str, error: SnapshotFetchError) -> None:
        self.stats.snapshot_failures += 1
        self.stats.note_error(str(error))
        log.warning("%s: %s", self.stats.venue, error)
        self.handler.on_snapshot_failed(native, error, time.time_ns())

    def _publish(self, records: list[Record]) -> None:
        for record in records:
            self.publisher.publish(record)
            if isinstance(record, BookUpdate):
                self.stats.book_records += 1
                self.stats.snapshot_records += record.is_snapshot
            else:
                self.stats.trade_records += 1
