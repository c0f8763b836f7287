"""URL names -> streams: pure parsing, 400 for bad query values, 404 for unknown paths."""

from __future__ import annotations

import re

import pytest

from api.errors import BadParameter, SymbolNotFound
from api.symbols import VENUE_LIST_PATTERN, Target, one_venue, target, venues


@pytest.mark.parametrize(
    ("path", "exchange", "expected"),
    [
        ("BINANCE:BTC-USDT", None, Target("BTC-USDT", "BINANCE")),
        ("binance:btc-usdt", None, Target("BTC-USDT", "BINANCE")),
        ("BTC-USD", "kraken", Target("BTC-USD", "KRAKEN")),
        ("BTC-USD", None, Target("BTC-USD", "")),
        ("BTC-USD", "", Target("BTC-USD", "")),
        ("KRAKEN:BTC-USD", "KRAKEN", Target("BTC-USD", "KRAKEN")),
        (" COINBASE:ETH-USD ", None, Target("ETH-USD", "COINBASE")),
    ],
)
def test_target(path: str, exchange: str | None, expected: Target) -> None:
    assert target(path, exchange) == expected


def test_stream_name() -> None:
    assert Target("BTC-USD", "KRAKEN").stream == "KRAKEN:BTC-USD"


@pytest.mark.parametrize("path", ["NYSE:BTC-USD", "BINANCE:", ":BTC-USD", "A:B:C", ""])
def test_paths_naming_no_stream_are_404(path: str) -> None:
    with pytest.raises(SymbolNotFound):
        target(path, None)


def test_bad_query_values_are_400() -> None:
    with pytest.raises(BadParameter, match="unknown exchange"):
        target("BTC-USD", "NYSE")
    with pytest.raises(BadParameter, match="contradicts"):
        target("BINANCE:BTC-USDT", "KRAKEN")


def test_venues() -> None:
    assert venues(None) is None and venues(" ") is None
    assert venues("kraken, COINBASE,kraken") == ("KRAKEN", "COINBASE")
    with pytest.raises(BadParameter):
        venues("KRAKEN,NYSE")


def test_venue_list_pattern_matches_what_is_documented() -> None:
    pattern = re.compile(VENUE_LIST_PATTERN)
    assert pattern.match("KRAKEN") and pattern.match("BINANCE,COINBASE,KRAKEN")
    assert not pattern.match("KRAKEN,") and not pattern.match("NYSE")


def test_one_venue() -> None:
    t = Target("BTC-USD", "KRAKEN")
    assert one_venue(t, ["COINBASE"]) is t
    with pytest.raises(SymbolNotFound):
        one_venue(Target("DOGE-USD"), [])
    with pytest.raises(BadParameter, match="listed by COINBASE, KRAKEN"):
        one_venue(Target("BTC-USD"), ["KRAKEN", "COINBASE"])
