"""Value types: stream names."""

from __future__ import annotations

import pytest

from core.types import BookUpdate, Exchange, Trade, parse_stream_key, stream_key


def test_stream_key_round_trip() -> None:
    assert stream_key(Exchange.KRAKEN, "BTC-USD") == "KRAKEN:BTC-USD"
    assert parse_stream_key("KRAKEN:BTC-USD") == (Exchange.KRAKEN, "BTC-USD")
    assert BookUpdate(Exchange.BINANCE, "BTC-USDT", 0, 0).stream == "BINANCE:BTC-USDT"
    assert Trade(Exchange.COINBASE, "ETH-USD", 0, "1", 1.0, 1.0, "").stream == "COINBASE:ETH-USD"


@pytest.mark.parametrize("key", ["KRAKEN", "KRAKEN:", "UNKNOWN:BTC-USD", "FTX:BTC-USD", ":X"])
def test_parse_rejects(key: str) -> None:
    with pytest.raises(ValueError, match="not a stream name"):
        parse_stream_key(key)
