"""Authorization of client requests from verified JWT claims: one check for every path.

``subscribe``, ``replay`` and a replay joining the live stream (``"to":"live"``) all
call :func:`check_allowed` and :func:`check_capacity`, so no path grants more than
another. Claims are type-checked when the token is verified (:func:`claim_errors`):
a ``symbols`` claim that is a string would turn ``in`` into a substring test
(``"BTC" in "BTC-USD"``), so anything but a list of strings is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gateway.protocol import ProtocolError

LIST_CLAIMS = ("symbols", "channels")
"""Claims that restrict a token: absent = no restriction, else a list of strings."""


def claim_errors(claims: Mapping[str, Any]) -> str | None:
    """Why these verified claims cannot be used (None when they can)."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return "sub must be a non-empty string"
    for name in LIST_CLAIMS:
        value = claims.get(name)
        if value is None:
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{name} must be a list of strings"
    return None


def _restriction(claims: Mapping[str, Any], name: str) -> frozenset[str] | None:
    """The claim as a set; a malformed one (never verified) allows nothing."""
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, str))


def check_allowed(
    claims: Mapping[str, Any], channel: str, symbols: Iterable[str], req_id: object
) -> None:
    """Raise ``forbidden`` unless the claims allow ``channel`` and every symbol.

    A symbol is allowed when the claim names the stream (``KRAKEN:BTC-USD``) or its
    canonical symbol (``BTC-USD``, every venue).
    """
    channels = _restriction(claims, "channels")
    if channels is not None and channel not in channels:
        raise ProtocolError("forbidden", f"channel {channel} not allowed", req_id)
    allowed = _restriction(claims, "symbols")
    if allowed is None:
        return
    for s in symbols:
        if s not in allowed and s.partition(":")[2] not in allowed:
            raise ProtocolError("forbidden", f"symbol {s} not allowed", req_id)


def check_capacity(current: int, adding: int, cap: int, req_id: object) -> None:
    """Raise ``too_many_subscriptions`` when ``current + adding`` passes ``cap``."""
    if current + adding > cap:
        raise ProtocolError("too_many_subscriptions", f"at most {cap} per connection", req_id)
