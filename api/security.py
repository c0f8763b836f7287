"""API keys, client addresses behind proxies, and the per-IP rate limit.

- API keys are configured as SHA-256 hex digests only (``auth.api_keys``, and/or
  ``auth.api_keys_file`` with one digest per line), never as the keys themselves,
  so a leaked config file grants nothing. A presented ``X-API-Key`` is hashed and
  compared with every digest by ``hmac.compare_digest``. When any digest is
  configured, ``/api/v1/*`` needs a valid key (a Litestar guard on that router);
  ``api.open_paths`` stay open. Refusals are logged and counted, never the key.
- The client address is the TCP peer, unless the peer is one of
  ``api.trusted_proxies`` (addresses or CIDR networks): then ``X-Forwarded-For`` is
  walked from the right, skipping trusted proxies, and the first other address is
  the client (the only one a proxy we trust vouches for).
- The rate limit is Litestar's ``RateLimitConfig`` keyed by that address, with
  its middleware subclassed (:class:`LocalRateLimitMiddleware`) because the stock
  one costs more than the order book handler itself. ``api.rate_limit`` 0: off.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from litestar.connection import ASGIConnection, Request
from litestar.exceptions import TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware.rate_limit import (
    DURATION_VALUES,
    CacheObject,
    RateLimitConfig,
    RateLimitMiddleware,
)
from litestar.types import ASGIApp, Guard, Receive, Scope, Send

from api.errors import RETRY_AFTER, InvalidApiKey
from mdgw import metrics
from mdgw.config import ApiConfig, AuthConfig, ConfigError

log = logging.getLogger(__name__)

API_KEY_HEADER = "X-API-Key"
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
UNLIMITED_PATHS = ("^/health$", "^/ready$")
"""Probes are never rate-limited: an orchestrator polling them must not lock itself out."""


# ---- API keys ------------------------------------------------------------------------


def load_digests(auth: AuthConfig) -> frozenset[str]:
    """Accepted key digests from the config and the key file; ConfigError on anything else."""
    entries: list[tuple[str, str]] = [
        (f"auth.api_keys[{i}]", d) for i, d in enumerate(auth.api_keys)
    ]
    if auth.api_keys_file:
        path = Path(auth.api_keys_file)
        try:
            lines = path.read_text().splitlines()
        except OSError as e:
            raise ConfigError(f"auth.api_keys_file {path}: {e.strerror}") from e
        entries += [
            (f"{path}:{n}", line.strip())
            for n, line in enumerate(lines, 1)
            if line.strip() and not line.lstrip().startswith("#")
        ]
    digests: set[str] = set()
    for where, value in entries:
        digest = value.strip().lower()
        if not _DIGEST.match(digest):
            # Never echo the value: it may be a plain key pasted by mistake.
            raise ConfigError(
                f"{where}: not a SHA-256 hex digest (64 hex characters); "
                "configure digests, e.g. from `mdgw hash-key KEY`, never keys"
            )
        digests.add(digest)
    return frozenset(digests)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """Checks presented keys against the configured digests."""

    def __init__(self, digests: Iterable[str]) -> None:
        self._digests = tuple(sorted(digests))

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def refusal(self, presented: str | None) -> str | None:
        """None when the key is valid; else the reason ("missing" or "invalid")."""
        if not presented:
            return "missing"
        candidate = digest(presented).encode()
        ok = False
        for known in self._digests:  # no early exit: time does not say which one matched
            ok |= hmac.compare_digest(candidate, known.encode())
        return None if ok else "invalid"


def is_open(path: str, open_paths: Sequence[str]) -> bool:
    """``/`` opens only itself; any other entry opens itself and what lies under it."""
    return any(path == p or (p != "/" and path.startswith(p.rstrip("/") + "/")) for p in open_paths)


def api_key_guard(keys: ApiKeys, open_paths: Sequence[str], trusted: Sequence[IPNetwork]) -> Guard:
    """A Litestar guard refusing requests without a valid ``X-API-Key`` (401)."""

    def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        path = connection.scope["path"]
        if is_open(path, open_paths):
            return
        reason = keys.refusal(connection.headers.get(API_KEY_HEADER))
        if reason is None:
            return
        metrics.AUTH_FAILURES.labels("api", reason).inc()
        log.warning(
            "refused API request: %s API key, client=%s path=%s",
            reason,
            connection_ip(connection, trusted),
            path,
        )
        raise InvalidApiKey(
            f"{'Missing' if reason == 'missing' else 'Invalid'} API key: "
            f"send a valid key in the {API_KEY_HEADER} header"
        )

    return guard


# ---- client address --------------------------------------------------------------------


def parse_networks(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """``api.trusted_proxies`` -> networks; ConfigError naming a bad entry."""
    out: list[IPNetwork] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as e:
            raise ConfigError(f"api.trusted_proxies: {entry!r} is not an address or network") from e
    return tuple(out)


def _trusted(host: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(addr in net for net in trusted)


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]) -> str:
    """The address to hold responsible for a request (see the module docstring)."""
    host = peer or "unknown"
    if not trusted or not forwarded_for or not _trusted(host, trusted):
        return host
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, trusted):
            return _valid_or(hop, host)
    return _valid_or(hops[0], host) if hops else host


def _valid_or(hop: str, fallback: str) -> str:
    """A forwarded hop if it is an address (junk would make free rate-limit keys)."""
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return fallback


def connection_ip(
    connection: ASGIConnection[Any, Any, Any, Any], trusted: Sequence[IPNetwork]
) -> str:
    client = connection.client
    return client_ip(
        client.host if client else None, connection.headers.get("x-forwarded-for"), trusted
    )


def rate_limit_identifier(trusted: Sequence[IPNetwork]) -> Callable[[Request[Any, Any, Any]], str]:
    """``RateLimitConfig.identifier_for_request`` honouring trusted proxies."""

    def identifier(request: Request[Any, Any, Any]) -> str:
        return connection_ip(request, trusted)

    return identifier


class LocalRateLimitMiddleware(RateLimitMiddleware):
    """Litestar's rate limiter, its windows kept in a dict of this process.

    Same keys (``identifier_for_request``), same fixed windows of
    ``RateLimitConfig.rate_limit``, same exclusions and ``TooManyRequestsException``
    carrying the ``RateLimit-*`` headers, plus ``Retry-After``. What changes: no
    Store round trip (JSON and two locks), no lock of its own (reading and
    updating a window never awaits, so one event loop needs none), and the
    ``RateLimit-*`` headers only on refusals, not on every answer. Measured (CPU
    per request, order book route): stock limiter +60 us on a ~50 us request,
    this one +8 us. Windows that have passed are swept every ``SWEEP_SECONDS``.
    """

    SWEEP_SECONDS = 10

    def __init__(self, app: ASGIApp, config: RateLimitConfig) -> None:
        super().__init__(app, config)
        self._windows: dict[str, CacheObject] = {}
        self._duration = DURATION_VALUES[self.unit]
        self._sweep_at = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request: Request[Any, Any, Any] = scope["litestar_app"].request_class(scope)
        if await self.should_check_request(request=request):
            key = self.cache_key_from_request(request)
            now = int(time.time())
            window = self._windows.get(key)
            if window is None or window.reset <= now:
                window = self._windows[key] = CacheObject(history=[], reset=now + self._duration)
                if now >= self._sweep_at:
                    self._sweep(now)
            if len(window.history) >= self.max_requests:
                if len(window.history) == self.max_requests:  # first refusal of the window
                    window.history.append(now)  # marks it logged; later ones stay quiet
                    log.warning(
                        "rate limit: client=%s over %d requests per %s (path %s)",
                        key.split("::")[1],
                        self.max_requests,
                        self.unit,
                        scope["path"],
                    )
                headers = self.create_response_headers(cache_object=window)
                headers[RETRY_AFTER] = str(max(1, window.reset - now))
                raise TooManyRequestsException(headers=headers)
            window.history.append(now)  # Litestar's windows: only the length is read
        await self.app(scope, receive, send)

    def _sweep(self, now: int) -> None:
        self._sweep_at = now + self.SWEEP_SECONDS
        self._windows = {k: w for k, w in self._windows.items() if w.reset > now}


def rate_limit_config(api: ApiConfig, trusted: Sequence[IPNetwork]) -> RateLimitConfig | None:
    """Litestar's limiter, ``api.rate_limit`` requests per second per client IP (0: off)."""
    if api.rate_limit <= 0:
        return None
    return RateLimitConfig(
        rate_limit=("second", api.rate_limit),
        identifier_for_request=rate_limit_identifier(trusted),
        exclude=list(UNLIMITED_PATHS),
        middleware_class=LocalRateLimitMiddleware,
    )
