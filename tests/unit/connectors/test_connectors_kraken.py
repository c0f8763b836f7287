"""KrakenHandler without I/O: v2 frames in (Decimal numbers), records and resubscriptions out."""

from __future__ import annotations

import json
import zlib
from decimal import Decimal

import pytest

from core.types import BookUpdate, Exchange, Trade
from producers.captures.errors import CorruptLineError
from producers.connectors.base import Send
from producers.connectors.kraken import KrakenHandler, level_text
from producers.connectors.symbols import Subscription

BASE = 1_800_000_000_000_000


def crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> int:
    """Kraken's documented string checksum, written independently of the handler."""
    text = "".join(
        p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0") for p, q in asks + bids
    )
    return zlib.crc32(text.encode())


def make(depth: int = 10) -> KrakenHandler:
    sub = Subscription.build(Exchange.KRAKEN, ["MATIC-USD", "BTC-USD"])
    return KrakenHandler(sub, depth=depth, sequence_base=BASE)


def frame(h: KrakenHandler, text: str) -> object:
    return h.decode(text)


def book(h: KrakenHandler, kind: str, bids: str, asks: str, checksum: int) -> object:
    ts = ',"timestamp":"2023-10-06T17:35:55.440295Z"' if kind == "update" else ""
    return frame(h, f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"MATIC/USD",'
                 f'"bids":[{bids}],"asks":[{asks}],"checksum":{checksum}{ts}}}]}}')  # fmt: skip


SNAP_BIDS = '{"price":0.5666,"qty":4831.75496356},{"price":0.5665,"qty":6658.22734739}'
SNAP_ASKS = '{"price":0.5668,"qty":4410.79769741},{"price":0.5669,"qty":4655.40412487}'
SNAP_CRC = crc([("0.5668", "4410.79769741"), ("0.5669", "4655.40412487")],
               [("0.5666", "4831.75496356"), ("0.5665", "6658.22734739")])  # fmt: skip


def synced(depth: int = 10) -> KrakenHandler:
    h = make(depth)
    h.subscriptions(0)
    [snap] = h.on_message(book(h, "snapshot", SNAP_BIDS, SNAP_ASKS, SNAP_CRC), 1)
    assert isinstance(snap, BookUpdate) and snap.is_snapshot
    return h


def test_level_text_keeps_the_digits_sent() -> None:
    assert level_text(Decimal("0.10000000"), None) == "0.10000000"
    assert level_text(Decimal("1E-8"), None) == "0.00000001"
    assert level_text(Decimal("0.566"), 4) == "0.5660"
    assert level_text(5, 2) == "5.00"
    with pytest.raises(CorruptLineError):
        level_text("abc", None)
    with pytest.raises(CorruptLineError):
        level_text(None, None)


def test_subscriptions() -> None:
    h = make(depth=25)
    instrument, bookreq, trade = h.subscriptions(0)
    assert instrument == {
        "method": "subscribe",
        "params": {"channel": "instrument", "snapshot": True},
    }
    assert bookreq["params"] == {"channel": "book", "symbol": ["MATIC/USD", "BTC/USD"],
                                 "depth": 25, "snapshot": True}  # fmt: skip
    assert trade["params"]["snapshot"] is False  # no old trades on the first connection
    h.subscriptions(1)
    assert h.subscriptions(2)[2]["params"]["snapshot"] is True


def test_documented_snapshot_and_verified_update() -> None:
    h = synced()
    c = crc([("0.5668", "4410.79769741"), ("0.5669", "4655.40412487")],
            [("0.5666", "4831.75496356"), ("0.5665", "6658.22734739"),
             ("0.5657", "1098.3947558")])  # fmt: skip
    [upd] = h.on_message(book(h, "update", '{"price":0.5657,"qty":1098.3947558}', "", c), 2)
    assert upd.bids == [(0.5657, 1098.3947558)] and upd.sequence == BASE + 2
    assert upd.timestamp_ns == 1696613755440295000
    assert h.summary.streams["KRAKEN:MATIC-USD"].checksums_ok == 1


def test_checksum_mismatch_resubscribes_and_the_new_snapshot_resyncs() -> None:
    h = synced()
    assert h.on_message(book(h, "update", '{"price":0.5657,"qty":1.0}', "", 12345), 2) == []
    assert h.summary.streams["KRAKEN:MATIC-USD"].checksum_failures == 1
    params = {"channel": "book", "symbol": ["MATIC/USD"], "depth": 10}
    assert h.actions(2) == [
        Send({"method": "unsubscribe", "params": params}),
        Send({"method": "subscribe", "params": {**params, "snapshot": True}}),
    ]
    [snap] = h.on_message(book(h, "snapshot", SNAP_BIDS, SNAP_ASKS, SNAP_CRC), 3)
    assert snap.is_snapshot and snap.sequence == BASE + 2


def test_snapshot_with_a_bad_checksum_is_not_published() -> None:
    h = make()
    h.subscriptions(0)
    assert h.on_message(book(h, "snapshot", SNAP_BIDS, SNAP_ASKS, SNAP_CRC ^ 1), 1) == []
    assert h.summary.streams["KRAKEN:MATIC-USD"].checksum_failures == 1


def test_levels_pushed_out_of_the_depth_are_published_as_removals() -> None:
    bids = ",".join(f'{{"price":0.56{60 - i},"qty":1.0}}' for i in range(10))
    asks = '{"price":0.5668,"qty":2.0}'
    h = make(depth=10)
    h.subscriptions(0)
    c = crc([("0.5668", "2.0")], [(f"0.56{60 - i}", "1.0") for i in range(10)])
    h.on_message(book(h, "snapshot", bids, asks, c), 1)
    top = [("0.5661", "3.0")] + [(f"0.56{60 - i}", "1.0") for i in range(9)]
    [upd] = h.on_message(
        book(h, "update", '{"price":0.5661,"qty":3.0}', "", crc([("0.5668", "2.0")], top)), 2
    )
    assert upd.bids == [(0.5661, 3.0), (0.5651, 0.0)]  # the 11th bid leaves the view


def test_instrument_precision_restores_trailing_zeros() -> None:
    h = make()
    h.subscriptions(0)
    pairs = '[{"symbol":"MATIC/USD","price_precision":4,"qty_precision":8}]'
    h.on_message(
        frame(h, f'{{"channel":"instrument","type":"snapshot","data":{{"pairs":{pairs}}}}}'), 0
    )
    c = crc([("0.5670", "1.00000000")], [("0.5660", "2.50000000")])
    [snap] = h.on_message(
        book(h, "snapshot", '{"price":0.566,"qty":2.5}', '{"price":0.567,"qty":1}', c), 1
    )
    assert snap.bids == [(0.566, 2.5)] and h.precision["MATIC/USD"] == (4, 8)


def test_refused_pair_is_unknown_and_left_out_of_later_subscriptions() -> None:
    h = make()
    h.subscriptions(0)
    refusal = {"method": "subscribe", "success": False, "symbol": "BTC/USD",
               "error": "Currency pair not supported BTC/USD"}  # fmt: skip
    assert h.on_message(refusal, 1) == []
    assert ("KRAKEN", "BTC/USD") in h.summary.unknown_symbols
    assert h.subscriptions(2)[1]["params"]["symbol"] == ["MATIC/USD"]


def test_other_refusals_are_errors_not_unknown_symbols() -> None:
    h = make()
    refusal = {"method": "subscribe", "success": False, "symbol": "BTC/USD",
               "error": "Already subscribed"}  # fmt: skip
    with pytest.raises(CorruptLineError):
        h.on_message(refusal, 1)
    assert not h.summary.unknown_symbols and not h.dead


def test_documented_trade_and_trade_snapshot_rule() -> None:
    h = make()
    h.subscriptions(0)
    text = ('{"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"sell",'
            '"price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,'
            '"timestamp":"2023-09-25T07:49:37.708706Z"}]}')  # fmt: skip
    [trade] = h.on_message(frame(h, text), 1)
    assert isinstance(trade, Trade)
    assert (trade.side, trade.price, trade.quantity, trade.trade_id) == (
        "sell",
        0.5117,
        40.0,
        "4665906",
    )
    snapshot = json.loads(text) | {"type": "snapshot"}
    assert h.on_message(snapshot, 2) == []  # first connection: recent trades not republished


def test_control_messages_are_skipped() -> None:
    h = make()
    for text in ('{"channel":"heartbeat"}',
                 '{"channel":"status","type":"update","data":[{"system":"online"}]}',
                 '{"method":"pong","time_in":"x","time_out":"y"}'):  # fmt: skip
        assert h.on_message(frame(h, text), 1) == []
    assert h.summary.skipped["kraken:heartbeat"] == 1 and h.summary.skipped["kraken:status"] == 1
