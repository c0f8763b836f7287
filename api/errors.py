"""Errors of the REST API and their translation to ``{"error": "..."}`` answers.

    HTTPException (Litestar)
     +-- ApiError                 ours: the message is written for the client, sent as is
     |    +-- BadParameter        400  a query or path value we cannot serve
     |    +-- InvalidApiKey       401  missing or unknown X-API-Key
     |    +-- SymbolNotFound      404  no such stream / symbol
     |    +-- NotReady            503  books not loaded yet, or Kafka unreachable
     |    +-- Unavailable         503  history busy or failing, with Retry-After
     +-- ValidationException      400  Litestar's parameter validation (depth=abc, ...)
     +-- NotFound/MethodNotAllowed/TooManyRequests/...   Litestar's own

Litestar's own exceptions may carry internal details (the static files router puts
the resolved file path in its 404), so only :class:`ApiError` messages and the
validation summary reach the client; everything else answers with the status
phrase. Any other exception is logged with its traceback and answers 500.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import (
    ClientException,
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    ServiceUnavailableException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.types import ExceptionHandlersMap

from mdgw import metrics

log = logging.getLogger(__name__)

RETRY_AFTER = "Retry-After"
RATE_LIMIT_RESET = "RateLimit-Reset"
"""Header Litestar's rate limiter sets: seconds until the window resets."""


class ApiError(HTTPException):
    """An error whose ``detail`` is meant for the client."""


class BadParameter(ApiError, ClientException):
    """A request value that parses but cannot be served (unknown exchange, ...)."""

    status_code = 400


class InvalidApiKey(ApiError, NotAuthorizedException):
    """No valid ``X-API-Key`` where one is required."""

    status_code = 401


class SymbolNotFound(ApiError, NotFoundException):
    """No stream (or symbol) of that name."""

    status_code = 404

    def __init__(self, detail: str = "Symbol not found") -> None:
        super().__init__(detail=detail)


class NotReady(ApiError, ServiceUnavailableException):
    """The state is not loaded yet, or Kafka cannot be reached."""

    status_code = 503


class Unavailable(ApiError, ServiceUnavailableException):
    """Busy or failing for now (history reads): retry after ``Retry-After`` seconds.

    The message is generic on purpose: Kafka's error texts (brokers, addresses,
    topics) go to the log, never to the client.
    """

    status_code = 503

    def __init__(self, detail: str, retry_after: int = 1) -> None:
        super().__init__(detail=detail, headers={RETRY_AFTER: str(max(1, retry_after))})


PARAMETER_HINTS: dict[str, str] = {
    "depth": "depth must be an integer from 1 to 1000",
    "limit": "limit must be an integer from 1 to 1000",
}
"""Messages for the query parameters users get wrong most."""


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    """``{"error": message}``; never cached (a symbol missing now may exist in a second)."""
    return Response(
        content={"error": message},
        status_code=status,
        headers={"Cache-Control": "no-cache", **(headers or {})},
        media_type=MediaType.JSON,
    )


def validation_message(exc: ValidationException) -> str:
    """One readable line from Litestar's validation details (which name key and source)."""
    extra = exc.extra if isinstance(exc.extra, list) else []
    parts: list[str] = []
    for item in extra:
        if not isinstance(item, dict):
            continue
        key = str(item.get("key", ""))
        if key in PARAMETER_HINTS:
            parts.append(PARAMETER_HINTS[key])
        elif key:
            source = item.get("source", "parameter")
            parts.append(f"invalid {source} parameter {key}: {item.get('message', 'invalid')}")
    return "; ".join(dict.fromkeys(parts)) or "Bad request"


def on_validation_error(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return error_response(400, validation_message(exc))


def on_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    message = exc.detail if isinstance(exc, ApiError) else _phrase(status)
    if isinstance(exc, TooManyRequestsException):
        metrics.RATE_LIMITED.labels("api").inc()
        if RETRY_AFTER not in headers:  # Litestar's stock limiter sends only RateLimit-*
            reset = headers.get(RATE_LIMIT_RESET, "1")
            headers[RETRY_AFTER] = str(max(1, int(reset) if reset.isdigit() else 1))
        message = "Too many requests: slow down and retry after Retry-After seconds"
    return error_response(status, message, headers)


def on_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "Internal server error")


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: on_validation_error,
    HTTPException: on_http_error,
    500: on_internal_error,
}
