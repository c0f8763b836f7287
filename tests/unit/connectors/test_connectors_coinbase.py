"""CoinbaseHandler without I/O: documented messages in, records and resubscriptions out."""

from __future__ import annotations

from typing import Any

import pytest

from core.types import BookUpdate, Exchange, Trade
from producers.captures.errors import CorruptLineError
from producers.connectors.base import Send
from producers.connectors.coinbase import CoinbaseHandler
from producers.connectors.symbols import Subscription

BASE = 1_800_000_000_000_000
DOC_SNAPSHOT = {
    "channel": "l2_data", "client_id": "", "timestamp": "2023-02-09T20:32:50.714964855Z",
    "sequence_num": 0,
    "events": [{"type": "snapshot", "product_id": "BTC-USD", "updates": [
        {"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.73",
         "new_quantity": "0.06317902"},
        {"side": "bid", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.3",
         "new_quantity": "0.02"},
        {"side": "offer", "event_time": "1970-01-01T00:00:00Z", "price_level": "21921.74",
         "new_quantity": "1.5"}]}],
}  # fmt: skip
DOC_TRADES = {
    "channel": "market_trades", "client_id": "", "timestamp": "2023-02-09T20:19:35.39625135Z",
    "sequence_num": 0,
    "events": [{"type": "snapshot", "trades": [
        {"trade_id": "000000000", "product_id": "ETH-USD", "price": "1260.01", "size": "0.3",
         "side": "BUY", "time": "2019-08-14T20:42:27.265Z"}]}],
}  # fmt: skip


def make() -> CoinbaseHandler:
    return CoinbaseHandler(
        Subscription.build(Exchange.COINBASE, ["BTC-USD", "ETH-USD"]), sequence_base=BASE
    )


def update(seq: int, product: str = "BTC-USD", **level: str) -> dict[str, Any]:
    upd = {"side": "bid", "event_time": "2023-02-09T20:32:51.1Z", "price_level": "21921.73",
           "new_quantity": "0", **level}  # fmt: skip
    return {"channel": "l2_data", "client_id": "", "timestamp": "2023-02-09T20:32:51.000000001Z",
            "sequence_num": seq, "events": [{"type": "update", "product_id": product,
                                              "updates": [upd]}]}  # fmt: skip


def test_subscribes_one_channel_per_message() -> None:
    subs = make().subscriptions(0)
    assert subs == [
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": ch}
        for ch in ("level2", "market_trades", "heartbeats")
    ]


def test_documented_snapshot_then_update() -> None:
    h = make()
    h.subscriptions(0)
    [snap] = h.on_message(DOC_SNAPSHOT, 1)
    assert isinstance(snap, BookUpdate) and snap.is_snapshot and snap.symbol == "BTC-USD"
    assert snap.bids == [(21921.73, 0.06317902), (21921.3, 0.02)] and snap.asks == [(21921.74, 1.5)]
    assert snap.timestamp_ns == 1675974770714964855 and snap.sequence == BASE + 1
    [upd] = h.on_message(update(1, side="offer", price_level="21921.74", new_quantity="2"), 2)
    assert upd.asks == [(21921.74, 2.0)] and upd.sequence == BASE + 2
    assert h.actions(3) == []


def test_sequence_num_jump_resubscribes_every_book() -> None:
    h = make()
    h.subscriptions(0)
    h.on_message(DOC_SNAPSHOT, 1)
    eth = dict(DOC_SNAPSHOT, sequence_num=1)
    eth["events"] = [dict(DOC_SNAPSHOT["events"][0], product_id="ETH-USD")]
    h.on_message(eth, 1)
    assert h.on_message(update(5), 2) == []  # 2..4 lost: dropped, books stale
    assert all(not h.norm(s).synced for s in ("BTC-USD", "ETH-USD"))
    products = ["BTC-USD", "ETH-USD"]
    assert h.actions(2) == [
        Send({"type": "unsubscribe", "product_ids": products, "channel": "level2"}),
        Send({"type": "subscribe", "product_ids": products, "channel": "level2"}),
    ]
    assert h.actions(3) == []
    [resync] = h.on_message(dict(DOC_SNAPSHOT, sequence_num=6), 4)
    assert resync.is_snapshot and resync.sequence == BASE + 2
    assert h.summary.streams["COINBASE:BTC-USD"].resyncs == 1


def test_trade_snapshot_only_after_a_reconnection() -> None:
    h = make()
    h.subscriptions(0)
    assert h.on_message(DOC_TRADES, 1) == []
    h.on_disconnect()
    h.subscriptions(2)
    [trade] = h.on_message(DOC_TRADES, 3)
    assert isinstance(trade, Trade) and trade.symbol == "ETH-USD" and trade.side == "buy"
    assert (trade.trade_id, trade.price, trade.quantity) == ("000000000", 1260.01, 0.3)
    assert h.on_message(dict(DOC_TRADES, sequence_num=1), 4) == []  # same id: not twice


def test_trades_of_an_event_are_published_oldest_first() -> None:
    h = make()
    trades = [
        {"trade_id": str(i), "product_id": "BTC-USD", "price": "1", "size": "1", "side": "SELL",
         "time": f"2024-01-01T00:00:0{9 - i}Z"}
        for i in range(3)
    ]  # fmt: skip
    msg = {"channel": "market_trades", "sequence_num": 0,
           "events": [{"type": "update", "trades": trades}]}  # fmt: skip
    assert [t.trade_id for t in h.on_message(msg, 1)] == ["2", "1", "0"]


@pytest.mark.parametrize(
    "msg",
    [
        [1, 2],
        {"channel": "l2_data", "events": [{"type": "update", "product_id": "BTC-USD",
                                           "updates": [{"side": "middle", "price_level": "1",
                                                        "new_quantity": "1"}]}]},
        {"channel": "market_trades", "events": [{"type": "update", "trades": [{"side": "UP"}]}]},
        {"type": "error", "message": "Failed to subscribe", "reason": "bad product"},
    ],
)  # fmt: skip
def test_unusable_messages_raise_capture_errors(msg: Any) -> None:
    with pytest.raises(CorruptLineError):
        make().on_message(msg, 1)


def test_error_naming_a_product_makes_it_unknown() -> None:
    h = make()
    error = {"type": "error", "message": "Failed to subscribe", "reason": "ETH-USD is not valid"}
    with pytest.raises(CorruptLineError):
        h.on_message(error, 1)
    assert ("COINBASE", "ETH-USD") in h.summary.unknown_symbols
    assert h.subscriptions(2)[0]["product_ids"] == ["BTC-USD"]


def test_unknown_product_is_reported() -> None:
    h = make()
    assert h.on_message(update(0, product="FOO-USD"), 1) == []
    assert h.summary.unknown_symbols[("COINBASE", "FOO-USD")].count == 1


def test_heartbeats_and_subscriptions_are_skipped() -> None:
    h = make()
    hb = {"channel": "heartbeats", "client_id": "", "timestamp": "2023-06-23T20:31:26.122969572Z",
          "sequence_num": 0, "events": [{"current_time": "2023-06-23 20:31:56.121961769 +0000 UTC",
                                         "heartbeat_counter": "3049"}]}  # fmt: skip
    assert h.on_message(hb, 1) == []
    assert h.summary.skipped["coinbase:heartbeats"] == 1
