"""Native venue symbols -> canonical ``BASE-QUOTE`` names (docs/protocol.md §1).

Rules, per venue; anything that does not fit is *unknown* (``None``), never guessed:

- Coinbase: ``BTC-USD`` is already ``BASE-QUOTE``.
- Kraken (WebSocket v1, Tardis): ``XBT/USD`` -> ``BTC-USD``; asset aliases
  ``XBT`` -> ``BTC`` and ``XDG`` -> ``DOGE``. REST-style names (``XXBTZUSD``) are unknown.
- Binance: ``BTCUSDT`` has no separator. The ``exchangeInfo`` answer (base and
  quote asset of every symbol) decides when it was loaded (a capture's own, or
  ``mdgw replay --exchange-info FILE``); otherwise a suffix rule over known quote
  assets where the longest one wins: ``XRPBUSD`` is ``XRP-BUSD``, not ``XRPB-USD``.
  A name no quote asset ends stays unknown and the replay summary lists it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from core.types import Exchange

CANONICAL_RE = re.compile(r"^[A-Z0-9]{1,16}-[A-Z0-9]{1,16}$")
"""Canonical symbol shape, as the protobuf codec validates it."""

KRAKEN_ASSET_ALIASES: Mapping[str, str] = {"XBT": "BTC", "XDG": "DOGE"}

BINANCE_QUOTE_ASSETS: tuple[str, ...] = (
    "USDT", "USDC", "BUSD", "TUSD", "FDUSD", "DAI", "BTC", "ETH", "BNB",
    "EUR", "GBP", "USD", "TRY", "AUD", "BRL",
)  # fmt: skip
"""Quote assets of the suffix rule (used only without an ``exchangeInfo``)."""


def _join(base: str, quote: str) -> str | None:
    symbol = f"{base.upper()}-{quote.upper()}"
    return symbol if CANONICAL_RE.match(symbol) else None


def coinbase_canonical(native: str) -> str | None:
    """``BTC-USD`` -> ``BTC-USD``; anything not ``BASE-QUOTE`` -> None."""
    base, sep, quote = native.partition("-")
    return _join(base, quote) if sep and base and quote else None


def kraken_canonical(native: str) -> str | None:
    """``XBT/USD`` -> ``BTC-USD``, ``XDG/EUR`` -> ``DOGE-EUR``; no ``/`` -> None."""
    base, sep, quote = native.partition("/")
    if not (sep and base and quote):
        return None
    base = KRAKEN_ASSET_ALIASES.get(base.upper(), base)
    quote = KRAKEN_ASSET_ALIASES.get(quote.upper(), quote)
    return _join(base, quote)


def binance_canonical(
    native: str,
    pairs: Mapping[str, tuple[str, str]] | None = None,
    quotes: Iterable[str] = BINANCE_QUOTE_ASSETS,
) -> str | None:
    """``BTCUSDT`` -> ``BTC-USDT`` from ``pairs`` (exchangeInfo) or the suffix rule."""
    native = native.upper()
    if pairs:
        pair = pairs.get(native)
        if pair is not None:
            return _join(*pair)
    matches = [q for q in quotes if native.endswith(q) and len(native) > len(q)]
    if not matches:
        return None
    quote = max(matches, key=len)  # XRPBUSD: BUSD over USD
    return _join(native[: -len(quote)], quote)


def binance_pairs_from_exchange_info(info: Any) -> dict[str, tuple[str, str]]:
    """``{"BTCUSDT": ("BTC", "USDT"), ...}`` from a ``GET /api/v3/exchangeInfo`` answer.

    Entries without string ``symbol``/``baseAsset``/``quoteAsset`` are ignored.
    """
    out: dict[str, tuple[str, str]] = {}
    symbols = info.get("symbols") if isinstance(info, dict) else None
    if not isinstance(symbols, list):
        return out
    for entry in symbols:
        if not isinstance(entry, dict):
            continue
        name, base, quote = entry.get("symbol"), entry.get("baseAsset"), entry.get("quoteAsset")
        if isinstance(name, str) and isinstance(base, str) and isinstance(quote, str):
            out[name.upper()] = (base.upper(), quote.upper())
    return out


MAX_EXCHANGE_INFO_BYTES = 64 * 1024 * 1024
"""Largest exchangeInfo file read (Binance's whole answer is ~20 MB)."""


class ExchangeInfoError(ValueError):
    """A file that is not a usable Binance ``exchangeInfo`` answer; says why."""


def read_exchange_info(path: str | Path) -> dict[str, Any]:
    """A saved ``GET /api/v3/exchangeInfo`` answer (JSON), checked to list symbols."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_EXCHANGE_INFO_BYTES:
            raise ExchangeInfoError(f"{p}: larger than {MAX_EXCHANGE_INFO_BYTES} bytes")
        info = json.loads(p.read_bytes())
    except OSError as e:
        raise ExchangeInfoError(f"{p}: {e.strerror or e}") from e
    except ValueError as e:
        raise ExchangeInfoError(f"{p}: not JSON ({e})") from e
    if not isinstance(info, dict) or not binance_pairs_from_exchange_info(info):
        raise ExchangeInfoError(
            f"{p}: not a Binance exchangeInfo answer (no symbols with baseAsset/quoteAsset)"
        )
    return info


class SymbolMapper:
    """Maps ``(exchange, native symbol)`` to canonical names, with a cache.

    Holds the Binance ``exchangeInfo`` pairs once loaded. Unknown names give None;
    the caller reports them (see ``ReplaySummary.unknown_symbol``).
    """

    def __init__(self, binance_pairs: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.binance_pairs: dict[str, tuple[str, str]] = dict(binance_pairs or {})
        self._cache: dict[tuple[Exchange, str], str | None] = {}

    def load_binance_exchange_info(self, info: Any) -> int:
        """Add the pairs of an ``exchangeInfo`` answer; returns how many it held."""
        pairs = binance_pairs_from_exchange_info(info)
        self.binance_pairs.update(pairs)
        self._cache = {k: v for k, v in self._cache.items() if k[0] is not Exchange.BINANCE}
        return len(pairs)

    def canonical(self, exchange: Exchange, native: str) -> str | None:
        """The canonical symbol, or None when the name is unknown for that venue."""
        key = (exchange, native)
        if key in self._cache:
            return self._cache[key]
        if exchange is Exchange.BINANCE:
            result = binance_canonical(native, self.binance_pairs)
        elif exchange is Exchange.COINBASE:
            result = coinbase_canonical(native)
        elif exchange is Exchange.KRAKEN:
            result = kraken_canonical(native)
        else:
            result = None
        self._cache[key] = result
        return result
