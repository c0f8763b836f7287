"""Native -> canonical symbols: mapped by rule, unknown when not certain."""

from __future__ import annotations

import pytest

from core.types import Exchange
from producers.captures.symbols import (
    SymbolMapper,
    binance_canonical,
    binance_pairs_from_exchange_info,
    coinbase_canonical,
    kraken_canonical,
)


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("XBT/USD", "BTC-USD"),
        ("XDG/EUR", "DOGE-EUR"),
        ("KSM/XBT", "KSM-BTC"),
        ("eth/usd", "ETH-USD"),
    ],
)
def test_kraken(native: str, canonical: str) -> None:
    assert kraken_canonical(native) == canonical


@pytest.mark.parametrize("native", ["XXBTZUSD", "XBTUSD", "/USD", "XBT/", "ETH2.S/ETH", ""])
def test_kraken_unknown(native: str) -> None:
    assert kraken_canonical(native) is None


def test_coinbase() -> None:
    assert coinbase_canonical("BTC-USD") == "BTC-USD"
    assert coinbase_canonical("btc-usd") == "BTC-USD"
    assert coinbase_canonical("BTCUSD") is None
    assert coinbase_canonical("BTC-") is None


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("BTCUSDT", "BTC-USDT"),
        ("NKNUSDT", "NKN-USDT"),
        ("LRCBTC", "LRC-BTC"),
        ("RUNEEUR", "RUNE-EUR"),
    ],
)
def test_binance_suffix_rule(native: str, canonical: str) -> None:
    assert binance_canonical(native) == canonical


@pytest.mark.parametrize("native", ["BTCBUSD", "BTCTUSD", "USDT", "FOOBAR", ""])
def test_binance_ambiguous_or_unknown(native: str) -> None:
    # BTCBUSD: BTC+BUSD or BTCB+USD -> ambiguous; USDT alone has no base
    assert binance_canonical(native) is None


def test_binance_exchange_info_decides() -> None:
    info = {"symbols": [{"symbol": "BTCBUSD", "baseAsset": "BTC", "quoteAsset": "BUSD"}, "junk"]}
    pairs = binance_pairs_from_exchange_info(info)
    assert pairs == {"BTCBUSD": ("BTC", "BUSD")}
    mapper = SymbolMapper()
    assert mapper.canonical(Exchange.BINANCE, "BTCBUSD") is None
    assert mapper.load_binance_exchange_info(info) == 1
    assert mapper.canonical(Exchange.BINANCE, "BTCBUSD") == "BTC-BUSD"
    assert binance_pairs_from_exchange_info([1, 2]) == {}


def test_mapper_per_exchange() -> None:
    mapper = SymbolMapper()
    assert mapper.canonical(Exchange.KRAKEN, "XBT/USD") == "BTC-USD"
    assert mapper.canonical(Exchange.COINBASE, "XBT/USD") is None
    assert mapper.canonical(Exchange.UNKNOWN, "BTC-USD") is None
