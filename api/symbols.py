"""Names in URLs -> stream and venue names: ``EXCHANGE:SYMBOL``, or ``SYMBOL`` + ``exchange=``.

Pure functions, no Litestar: handlers call them and the errors they raise
(:mod:`api.errors`) become the answers. Names are case-insensitive
(``binance:btc-usdt`` is ``BINANCE:BTC-USDT``).

Which error: a *path* naming something that does not exist (``NYSE:BTC-USD``,
``BINANCE:``) is an unknown symbol, 404; a *query parameter* outside its
documented values (``exchange=NYSE``) is a bad request, 400; so is a request that
contradicts itself or is ambiguous (an order book of ``BTC-USD`` listed by two
venues, with no venue named).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from api.errors import BadParameter, SymbolNotFound
from core.types import KNOWN_EXCHANGES

VENUES: tuple[str, ...] = tuple(e.name for e in KNOWN_EXCHANGES)
VENUE_LIST_PATTERN = f"^({'|'.join(VENUES)})(,({'|'.join(VENUES)}))*$"
"""``exchanges=A,B`` as documented (the server also takes lower case and spaces)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What a URL names: one venue's stream, or a symbol over every venue."""

    symbol: str
    exchange: str = ""
    """Empty: every venue listing ``symbol``."""

    @property
    def stream(self) -> str:
        return f"{self.exchange}:{self.symbol}"


def venue(name: str) -> str:
    """A venue name from a query parameter, upper-cased and checked (400 if unknown)."""
    upper = name.strip().upper()
    if upper not in VENUES:
        raise BadParameter(f"unknown exchange {name!r}: one of {', '.join(VENUES)}")
    return upper


def venues(names: str | None) -> tuple[str, ...] | None:
    """``exchanges=A,B`` -> ("A", "B"); None (every venue) when absent or empty."""
    if names is None or not names.strip():
        return None
    return tuple(dict.fromkeys(venue(n) for n in names.split(",") if n.strip()))


def target(path_symbol: str, exchange: str | None) -> Target:
    """Resolve ``{symbol}`` with the optional ``exchange=`` query parameter."""
    raw = path_symbol.strip()
    name, sep, symbol = raw.rpartition(":")
    given = venue(exchange) if exchange else ""
    if not sep:
        symbol = raw
    else:
        in_path = name.strip().upper()
        if in_path not in VENUES or not symbol:
            raise SymbolNotFound()
        if given and given != in_path:
            raise BadParameter(f"exchange={exchange} contradicts {raw!r}")
        given = in_path
    if not symbol:
        raise SymbolNotFound()
    return Target(symbol.upper(), given)


def one_venue(t: Target, listed_by: Collection[str]) -> Target:
    """``t`` when it names a venue; else 404 if no venue lists the symbol, 400 if some do."""
    if t.exchange:
        return t
    if not listed_by:
        raise SymbolNotFound()
    raise BadParameter(
        f"{t.symbol} is listed by {', '.join(sorted(listed_by))}: name the venue "
        "(EXCHANGE:SYMBOL or ?exchange=), or use /api/v1/orderbook/aggregated/{symbol}"
    )
