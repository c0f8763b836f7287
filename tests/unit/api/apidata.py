"""Data of the API unit tests: a Market filled by hand and Configs, no Kafka."""

from __future__ import annotations

import dataclasses
import hashlib
import time
from typing import Any

from core.market import Market
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import Config, load_config

NOW = int(time.time()) * 1_000_000_000 - 3600 * 1_000_000_000
"""An hour ago: inside the 24 h statistics window, which ends at the wall clock."""
API_KEY = "s3cret-key-for-tests"
API_KEY_DIGEST = hashlib.sha256(API_KEY.encode()).hexdigest()

BINANCE_BIDS = [(97000.0 - i, 1.0 + i / 10) for i in range(100)]
BINANCE_ASKS = [(97001.0 + i, 2.0 + i / 10) for i in range(100)]


def snapshot(exchange: Exchange, symbol: str, seq: int, bids: list, asks: list) -> BookUpdate:
    return BookUpdate(exchange, symbol, NOW + seq, seq, bids=bids, asks=asks, is_snapshot=True)


def filled_market() -> Market:
    """Three venues, two symbols; KRAKEN:ETH-USD stale after a gap; trades on BTC-USD."""
    m = Market(trades_per_stream=50)
    m.apply_book(snapshot(Exchange.BINANCE, "BTC-USDT", 100, BINANCE_BIDS, BINANCE_ASKS), NOW)
    m.apply_book(
        BookUpdate(Exchange.BINANCE, "BTC-USDT", NOW + 101, 101, bids=[(97000.0, 5.5)]), NOW
    )
    m.apply_book(
        snapshot(
            Exchange.COINBASE,
            "BTC-USD",
            7,
            [(96990.0, 1.0), (96989.0, 2.0)],
            [(96995.0, 1.5), (96996.0, 0.5)],
        ),
        NOW,
    )
    m.apply_book(
        snapshot(
            Exchange.KRAKEN,
            "BTC-USD",
            50,
            [(96990.0, 0.5), (96988.0, 3.0)],
            [(96995.0, 0.25), (96997.0, 1.0)],
        ),
        NOW,
    )
    m.apply_book(snapshot(Exchange.KRAKEN, "ETH-USD", 10, [(3000.0, 1.0)], [(3001.0, 1.0)]), NOW)
    m.apply_book(BookUpdate(Exchange.KRAKEN, "ETH-USD", NOW, 12, bids=[(3000.0, 2.0)]), NOW)
    for i in range(5):
        m.apply_trade(
            Trade(
                Exchange.COINBASE, "BTC-USD", NOW + 10 * i, f"c{i}", 96990.0 + i, 0.1, "buy", i + 1
            ),
            NOW,
        )
        m.apply_trade(
            Trade(
                Exchange.KRAKEN, "BTC-USD", NOW + 10 * i + 5, f"k{i}", 96991.0, 0.2, "sell", i + 1
            ),
            NOW,
        )
    return m


def make_config(**api: Any) -> Config:
    base = load_config(env={})
    auth = api.pop("auth", {})
    return dataclasses.replace(
        base,
        api=dataclasses.replace(base.api, **api),
        auth=dataclasses.replace(base.auth, **auth),
    )
