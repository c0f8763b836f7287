"""Canonical symbols from the command line -> each venue's native names, and back.

The user names streams canonically (``BTC-USDT``, docs/protocol.md §1); a
connector subscribes with the venue's own names:

- Binance: ``BTCUSDT`` (upper case; streams use the lower-case form ``btcusdt@depth@100ms``);
- Coinbase Advanced Trade: ``BTC-USD`` (the same text);
- Kraken WebSocket v2: ``BTC/USD`` (v2 writes BTC, where v1 wrote XBT).

The way back (native -> canonical) reuses the capture package's rules
(:mod:`producers.captures.symbols`) but answers only for the symbols this
connector subscribed: a message about anything else is an *unknown symbol*,
reported and counted, never guessed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.types import Exchange
from producers.captures.symbols import (
    CANONICAL_RE,
    SymbolMapper,
    binance_pairs_from_exchange_info,
)
from producers.connectors.errors import ConnectorConfigError


def native_symbol(exchange: Exchange, canonical: str) -> str:
    """``BTC-USDT`` -> Binance ``BTCUSDT``, Coinbase ``BTC-USDT``, Kraken ``BTC/USDT``."""
    if not CANONICAL_RE.match(canonical):
        raise ConnectorConfigError(
            f"not a canonical symbol (BASE-QUOTE, upper case): {canonical!r}"
        )
    base, _, quote = canonical.partition("-")
    if exchange is Exchange.BINANCE:
        return base + quote
    if exchange is Exchange.COINBASE:
        return canonical
    if exchange is Exchange.KRAKEN:
        return f"{base}/{quote}"
    raise ConnectorConfigError(f"no live connector for exchange {exchange!r}")


@dataclass(frozen=True)
class Subscription:
    """The symbols of one connector, in both spellings, in the order given."""

    exchange: Exchange
    canonical: tuple[str, ...]
    native: tuple[str, ...]
    to_canonical: dict[str, str] = field(compare=False)
    """Native name -> canonical name."""
    to_native: dict[str, str] = field(compare=False)

    @classmethod
    def build(cls, exchange: Exchange, symbols: Iterable[str]) -> Subscription:
        """Validate and map; raises :class:`ConnectorConfigError` for bad or no symbols."""
        canonical = tuple(dict.fromkeys(s.strip().upper() for s in symbols if s.strip()))
        if not canonical:
            raise ConnectorConfigError("no symbols given")
        native = tuple(native_symbol(exchange, s) for s in canonical)
        return cls(
            exchange,
            canonical,
            native,
            dict(zip(native, canonical, strict=True)),
            dict(zip(canonical, native, strict=True)),
        )

    def binance_pairs(self) -> dict[str, tuple[str, str]]:
        """``{"BTCUSDT": ("BTC", "USDT")}`` for the capture mapper's exchangeInfo table."""
        out = {}
        for nat, can in self.to_canonical.items():
            base, _, quote = can.partition("-")
            out[nat] = (base, quote)
        return out


def check_binance_listing(subscription: Subscription, exchange_info: Any) -> None:
    """Every subscribed symbol is listed by Binance's ``exchangeInfo`` under the same base
    and quote; else :class:`ConnectorConfigError` saying what Binance lists instead."""
    pairs = binance_pairs_from_exchange_info(exchange_info)
    problems = []
    for native, canonical in subscription.to_canonical.items():
        pair = pairs.get(native)
        if pair is None:
            problems.append(f"{canonical}: Binance lists no {native}")
        elif f"{pair[0]}-{pair[1]}" != canonical:
            problems.append(f"{canonical}: Binance lists {native} as {pair[0]}-{pair[1]}")
    if problems:
        raise ConnectorConfigError("; ".join(problems))


class SubscribedSymbols(SymbolMapper):
    """A :class:`SymbolMapper` that knows only the subscribed symbols.

    A native name maps through the capture rules (so Kraken ``XBT/USD`` still
    means ``BTC-USD``) and must land on a subscribed canonical symbol; any other
    name maps to None, which the handlers report as an unknown symbol.
    """

    def __init__(self, subscription: Subscription) -> None:
        pairs = subscription.binance_pairs() if subscription.exchange is Exchange.BINANCE else {}
        super().__init__(binance_pairs=pairs)
        self.subscription = subscription
        self._wanted = frozenset(subscription.canonical)

    def canonical(self, exchange: Exchange, native: str) -> str | None:
        if exchange is not self.subscription.exchange:
            return None
        result = super().canonical(exchange, native)
        return result if result in self._wanted else None
