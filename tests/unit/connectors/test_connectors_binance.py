"""BinanceHandler without I/O: documented messages in, records and fetch requests out."""

from __future__ import annotations

from typing import Any

import pytest

from core.types import BookUpdate, Exchange, Trade
from producers.captures.errors import CorruptLineError
from producers.connectors.base import FetchSnapshot
from producers.connectors.binance import BinanceHandler
from producers.connectors.errors import SnapshotFetchError
from producers.connectors.symbols import Subscription

BASE = 1_800_000_000_000_000
SEC = 1_000_000_000


def make(*symbols: str) -> BinanceHandler:
    sub = Subscription.build(Exchange.BINANCE, symbols or ("BNB-BTC",))
    return BinanceHandler(
        sub,
        sequence_base=BASE,
        initial_delay_ns=SEC,
        retry_delay_ns=SEC,
        snapshot_timeout_ns=10 * SEC,
    )


def diff(first: int, last: int, bids: Any = None, asks: Any = None, s: str = "BNBBTC") -> dict:
    """A combined-stream depth diff shaped like Binance's documented payload."""
    data = {"e": "depthUpdate", "E": 1672515782136, "s": s, "U": first, "u": last,
            "b": bids if bids is not None else [["0.0024", "10"]],
            "a": asks if asks is not None else [["0.0026", "100"]]}  # fmt: skip
    return {"stream": f"{s.lower()}@depth@100ms", "data": data}


SNAPSHOT = {"lastUpdateId": 159, "bids": [["0.0024", "14"], ["0.0023", "3"]],
            "asks": [["0.0026", "7"], ["0.0027", "1"]]}  # fmt: skip


def synced() -> BinanceHandler:
    h = make()
    h.subscriptions(0)
    h.on_message(diff(157, 160), 1)
    assert h.actions(1) == [FetchSnapshot("BNBBTC")]
    h.on_snapshot("BNBBTC", SNAPSHOT, 2)
    return h


def test_url_is_the_combined_depth_and_trade_stream() -> None:
    h = make("BNB-BTC", "ETH-USDT")
    assert h.url("wss://stream.binance.com:9443/") == (
        "wss://stream.binance.com:9443/stream?streams="
        "bnbbtc@depth@100ms/bnbbtc@trade/ethusdt@depth@100ms/ethusdt@trade"
    )
    assert h.snapshot_path("ETHUSDT") == "/api/v3/depth?symbol=ETHUSDT&limit=1000"


def test_buffered_diff_applies_over_the_snapshot() -> None:
    h = make()
    assert h.subscriptions(0) == []
    assert h.on_message(diff(157, 160), 1) == []  # buffered: no snapshot yet
    assert h.actions(1) == [FetchSnapshot("BNBBTC")]  # the first diff asks at once
    assert h.actions(2) == []  # one request in flight
    snap, upd = h.on_snapshot("BNBBTC", SNAPSHOT, 2)
    assert isinstance(snap, BookUpdate) and snap.is_snapshot and snap.symbol == "BNB-BTC"
    assert (snap.sequence, snap.prev_sequence) == (BASE + 1, BASE)
    assert snap.bids == [(0.0024, 14.0), (0.0023, 3.0)]
    assert isinstance(upd, BookUpdate) and not upd.is_snapshot and upd.sequence == BASE + 2
    assert upd.bids == [(0.0024, 10.0)] and upd.asks == [(0.0026, 100.0)]
    [nxt] = h.on_message(diff(161, 161, [["0.0024", "0"]], []), 3)
    assert nxt.bids == [(0.0024, 0.0)] and nxt.sequence == BASE + 3


def test_without_diffs_the_snapshot_is_fetched_after_the_initial_delay() -> None:
    h = make()
    h.subscriptions(0)
    assert h.actions(SEC - 1) == [] and h.actions(SEC) == [FetchSnapshot("BNBBTC")]


def test_snapshot_older_than_the_buffer_is_discarded_and_fetched_again() -> None:
    h = make()
    h.subscriptions(0)
    h.on_message(diff(157, 160), 1)
    h.actions(1)
    old = dict(SNAPSHOT, lastUpdateId=100)
    assert h.on_snapshot("BNBBTC", old, 2) == []
    assert h.summary.skipped["binance:stale_snapshot"] == 1
    assert h.actions(2) == [] and h.actions(2 + SEC) == [FetchSnapshot("BNBBTC")]
    assert len(h.on_snapshot("BNBBTC", SNAPSHOT, 3 + SEC)) == 2


def test_update_id_gap_resnapshots_with_a_snapshot_record() -> None:
    h = synced()
    assert h.on_message(diff(170, 171), 10) == []  # U != 160 + 1: gap, buffered
    assert h.summary.streams["BINANCE:BNB-BTC"].gaps == 1
    assert h.actions(10) == [FetchSnapshot("BNBBTC")]
    records = h.on_snapshot("BNBBTC", dict(SNAPSHOT, lastUpdateId=170), 11)
    assert [r.is_snapshot for r in records] == [True, False]
    assert records[0].sequence == BASE + 3  # contiguous across the resync
    assert h.summary.streams["BINANCE:BNB-BTC"].resyncs == 1


def test_refused_symbol_is_unknown_and_never_fetched_again() -> None:
    h = make("BNB-BTC", "FOO-USDT")
    h.subscriptions(0)
    assert FetchSnapshot("FOOUSDT") in h.actions(SEC)
    h.on_snapshot_failed("FOOUSDT", SnapshotFetchError("400", status=400, unknown_symbol=True), SEC)
    assert ("BINANCE", "FOOUSDT") in h.summary.unknown_symbols
    assert all(a != FetchSnapshot("FOOUSDT") for a in h.actions(100 * SEC))


def test_failed_fetch_is_retried_after_the_delay() -> None:
    h = make()
    h.subscriptions(0)
    h.actions(SEC)
    h.on_snapshot_failed("BNBBTC", SnapshotFetchError("timeout"), SEC)
    assert h.actions(SEC) == [] and h.actions(2 * SEC) == [FetchSnapshot("BNBBTC")]


def test_documented_trade_message() -> None:
    h = make()
    msg = {"stream": "bnbbtc@trade", "data": {"e": "trade", "E": 1672515782136, "s": "BNBBTC",
           "t": 12345, "p": "0.001", "q": "100", "b": 88, "a": 50, "T": 1672515782136,
           "m": True, "M": True}}  # fmt: skip
    [trade] = h.on_message(msg, 1)
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.price, trade.quantity, trade.side) == (
        "12345",
        0.001,
        100.0,
        "sell",
    )
    assert trade.timestamp_ns == 1672515782136 * 1_000_000 and trade.sequence == BASE + 1


def test_unknown_symbol_is_reported_and_skipped() -> None:
    h = synced()
    assert h.on_message(diff(1, 2, s="DOGEBTC"), 5) == []
    assert h.summary.unknown_symbols[("BINANCE", "DOGEBTC")].count == 1
    assert h.summary.error_count == 1


def test_unusable_diff_is_an_error_and_a_gap() -> None:
    h = synced()
    bad = diff(161, 161)
    bad["data"]["U"] = "x"
    with pytest.raises(CorruptLineError):
        h.on_message(bad, 5)
    assert not h.norm("BNB-BTC").synced
    h.on_message(diff(162, 162), 6)
    assert h.actions(6) == [FetchSnapshot("BNBBTC")]
