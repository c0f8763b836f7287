"""Native -> canonical symbols: mapped by rule, unknown when not certain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.types import Exchange
from producers.captures.symbols import (
    ExchangeInfoError,
    SymbolMapper,
    binance_canonical,
    binance_pairs_from_exchange_info,
    coinbase_canonical,
    kraken_canonical,
    read_exchange_info,
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


@pytest.mark.parametrize(
    ("native", "canonical"),
    [
        ("XRPBUSD", "XRP-BUSD"),  # BUSD or USD could end it: the longer quote wins
        ("BTCBUSD", "BTC-BUSD"),
        ("BTCTUSD", "BTC-TUSD"),
        ("ETHFDUSD", "ETH-FDUSD"),
        ("BTCUSD", "BTC-USD"),
    ],
)
def test_binance_longest_quote_wins(native: str, canonical: str) -> None:
    assert binance_canonical(native) == canonical


@pytest.mark.parametrize("native", ["USDT", "FOOBAR", ""])
def test_binance_unknown(native: str) -> None:
    # USDT alone has no base; FOOBAR ends with no known quote asset
    assert binance_canonical(native) is None


def test_binance_exchange_info_decides() -> None:
    info = {"symbols": [{"symbol": "XYZBUSD", "baseAsset": "XYZB", "quoteAsset": "USD"}, "junk"]}
    pairs = binance_pairs_from_exchange_info(info)
    assert pairs == {"XYZBUSD": ("XYZB", "USD")}
    mapper = SymbolMapper()
    assert mapper.canonical(Exchange.BINANCE, "XYZBUSD") == "XYZ-BUSD"  # the rule alone
    assert mapper.load_binance_exchange_info(info) == 1
    assert mapper.canonical(Exchange.BINANCE, "XYZBUSD") == "XYZB-USD"  # the venue says
    assert binance_pairs_from_exchange_info([1, 2]) == {}


def test_read_exchange_info(tmp_path: Path) -> None:
    good = tmp_path / "info.json"
    entry = {"symbol": "XRPBUSD", "baseAsset": "XRP", "quoteAsset": "BUSD"}
    good.write_text(json.dumps({"timezone": "UTC", "symbols": [entry]}))
    assert binance_pairs_from_exchange_info(read_exchange_info(good)) == {
        "XRPBUSD": ("XRP", "BUSD")
    }
    bad = tmp_path / "bad.json"
    for content, why in [
        ("{not json", "not JSON"),
        ('{"symbols": []}', "not a Binance exchangeInfo"),
        ("[1, 2]", "not a Binance exchangeInfo"),
    ]:
        bad.write_text(content)
        with pytest.raises(ExchangeInfoError, match=why):
            read_exchange_info(bad)
    with pytest.raises(ExchangeInfoError, match=r"missing\.json"):
        read_exchange_info(tmp_path / "missing.json")


def test_mapper_per_exchange() -> None:
    mapper = SymbolMapper()
    assert mapper.canonical(Exchange.KRAKEN, "XBT/USD") == "BTC-USD"
    assert mapper.canonical(Exchange.COINBASE, "XBT/USD") is None
    assert mapper.canonical(Exchange.UNKNOWN, "BTC-USD") is None
