"""``mdgw top``'s loop: scrape the gateway and the API once per interval, draw a frame.

The three requests of a refresh (gateway ``/metrics``, API ``/metrics`` and
``/api/v1/feeds``) run in parallel threads, each bounded by a timeout; a service
that is down or answers garbage is shown as down with the reason and asked again
next time. Nothing here crashes on an answer.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from rich.console import Console
from rich.live import Live

from mdgw.top.model import ScrapeError, TopState
from mdgw.top.view import render

MAX_BODY = 4 * 1024 * 1024


def fetch(url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
    """GET ``url`` (no environment proxies); ScrapeError with a short reason otherwise."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as r:
            body = r.read(MAX_BODY + 1)
    except urllib.error.HTTPError as e:
        raise ScrapeError(f"HTTP {e.code}") from e
    except urllib.error.URLError as e:
        raise ScrapeError(str(getattr(e.reason, "strerror", None) or e.reason)) from e
    except (OSError, ValueError) as e:
        raise ScrapeError(type(e).__name__ if not str(e) else str(e)[:60]) from e
    if len(body) > MAX_BODY:
        raise ScrapeError("answer too large")
    return bytes(body)


class Scraper:
    """One refresh of a :class:`TopState`; ``get`` and ``clock`` are injectable (tests)."""

    def __init__(
        self,
        state: TopState,
        *,
        api_key: str = "",
        timeout: float = 1.0,
        get: Callable[..., bytes] = fetch,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.timeout = timeout
        self.get = get
        self.clock = clock
        self.wall = wall
        self.pool = ThreadPoolExecutor(3, thread_name_prefix="mdgw-top")

    def refresh(self) -> None:
        s = self.state
        jobs = {
            "gateway": self.pool.submit(self.get, f"{s.gateway_url}/metrics", self.timeout),
            "api": self.pool.submit(self.get, f"{s.api_url}/metrics", self.timeout),
            "feeds": self.pool.submit(
                self.get, f"{s.api_url}/api/v1/feeds", self.timeout, self.headers
            ),
        }
        at = self.clock()
        for name, job in jobs.items():
            try:
                body = job.result()
                self._apply(name, body, at)
            except ScrapeError as e:
                self._fail(name, str(e) or "error")
        s.now = self.wall()

    def _apply(self, name: str, body: bytes, at: float) -> None:
        s = self.state
        if name == "feeds":
            try:
                parsed: Any = json.loads(body)
            except ValueError as e:
                raise ScrapeError("not JSON") from e
            s.feeds_sample(parsed, at)
            return
        text = body.decode("utf-8", "replace")
        if name == "gateway":
            s.gateway_sample(text, at)
        else:
            s.api_sample(text, at)

    def _fail(self, name: str, reason: str) -> None:
        setattr(self.state, f"{name}_error", reason[:60])

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def run_top(state: TopState, *, api_key: str = "", console: Console | None = None) -> int:
    """Refresh and draw every ``state.interval`` seconds until Ctrl-C; returns 0."""
    scraper = Scraper(state, api_key=api_key, timeout=min(2.0, max(0.2, state.interval)))
    console = console or Console()
    try:
        scraper.refresh()
        with Live(render(state), console=console, screen=True, auto_refresh=False) as live:
            next_at = time.monotonic()
            while True:
                next_at += state.interval
                time.sleep(max(0.0, next_at - time.monotonic()))
                scraper.refresh()
                live.update(render(state), refresh=True)
    except KeyboardInterrupt:
        return 0
    finally:
        scraper.close()
