"""Kraken v1 books (checksum, truncation, republish, both sides) and trades."""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any

from core.types import BookUpdate, Trade
from producers.captures.common import ReplayContext
from producers.captures.cryptofeed import read_cryptofeed
from producers.captures.kraken import KrakenHandler
from producers.captures.summary import ReplaySummary


def crc(asks: list[tuple[str, str]], bids: list[tuple[str, str]]) -> str:
    """Kraken's string checksum, written independently of the module under test."""
    text = "".join(
        p.replace(".", "").lstrip("0") + q.replace(".", "").lstrip("0")
        for p, q in asks[:10] + bids[:10]
    )
    return str(zlib.crc32(text.encode()))


def lv(p: str, q: str, *flags: str) -> list[str]:
    return [p, q, "1618678133.136361", *flags]


def book(*payloads: dict[str, Any], depth: int = 10) -> list[Any]:
    return [42, *payloads, f"book-{depth}", "XBT/USD"]


def make() -> tuple[KrakenHandler, ReplayContext]:
    ctx = ReplayContext()
    return KrakenHandler(ctx), ctx


def test_snapshot_then_update_with_checksum() -> None:
    h, ctx = make()
    [snap] = h.on_message(
        book({"as": [lv("5541.30000", "2.50700000")], "bs": [lv("5541.20000", "1.52900000")]}),
        1,
        "s",
    )
    assert isinstance(snap, BookUpdate) and snap.is_snapshot and snap.symbol == "BTC-USD"
    assert snap.timestamp_ns == 1618678133136361000
    c = crc([("5541.30000", "2.50700000")], [("5541.20000", "3.00000000")])
    [upd] = h.on_message(book({"b": [lv("5541.20000", "3.00000000")], "c": c}), 2, "s")
    assert upd.bids == [(5541.2, 3.0)] and upd.sequence == 2
    assert ctx.summary.streams["KRAKEN:BTC-USD"].checksums_ok == 1


def test_ask_and_bid_objects_in_one_message() -> None:
    h, _ = make()
    h.on_message(book({"as": [lv("2.0", "1.0")], "bs": [lv("1.0", "1.0")]}), 1, "s")
    c = crc([("1.5", "4.0"), ("2.0", "1.0")], [])
    msg = book({"a": [lv("1.5", "4.0")]}, {"b": [lv("1.0", "0.0")], "c": c})
    [upd] = h.on_message(msg, 2, "s")
    assert upd.asks == [(1.5, 4.0)] and upd.bids == [(1.0, 0.0)]


def test_truncation_to_depth_and_republish() -> None:
    h, ctx = make()
    asks = [lv("1.0", "1.0"), lv("2.0", "1.0")]
    h.on_message(book({"as": asks, "bs": []}, depth=2), 1, "s")
    # a better ask pushes 2.0 out of the top 2: Kraken sends no delete for it
    c = crc([("0.5", "1.0"), ("1.0", "1.0")], [])
    [upd] = h.on_message(book({"a": [lv("0.5", "1.0")], "c": c}, depth=2), 2, "s")
    assert upd.asks == [(0.5, 1.0), (2.0, 0.0)]  # the cut level is removed downstream too
    # 1.0 is deleted and 2.0 republished ("r") in the same message
    c = crc([("0.5", "1.0"), ("2.0", "1.0")], [])
    msg = book({"a": [lv("1.0", "0.0"), lv("2.0", "1.0", "r")], "c": c}, depth=2)
    [upd] = h.on_message(msg, 3, "s")
    assert upd.asks == [(1.0, 0.0), (2.0, 1.0)]
    stats = ctx.summary.streams["KRAKEN:BTC-USD"]
    assert (stats.checksums_ok, stats.checksum_failures) == (2, 0)


def test_checksum_failure_is_a_gap_until_the_next_snapshot() -> None:
    h, ctx = make()
    snapshot = book({"as": [lv("2.0", "1.0")], "bs": [lv("1.0", "1.0")]})
    h.on_message(snapshot, 1, "s")
    assert h.on_message(book({"b": [lv("1.0", "2.0")], "c": "12345"}), 2, "s") == []
    assert h.on_message(book({"b": [lv("1.0", "3.0")], "c": "1"}), 3, "s") == []  # stale
    stats = ctx.summary.streams["KRAKEN:BTC-USD"]
    assert (stats.checksum_failures, stats.gaps, stats.dropped_diffs, stats.synced) == (
        1,
        1,
        1,
        False,
    )
    [again] = h.on_message(snapshot, 4, "s")
    assert again.is_snapshot and again.sequence == 2 and stats.resyncs == 1


def test_unreadable_book_line_is_a_gap_for_its_channel() -> None:
    h, ctx = make()
    h.on_message({"channelID": 42, "channelName": "book-10", "event": "subscriptionStatus",
                  "pair": "XBT/USD", "status": "subscribed"}, 0, "s")  # fmt: skip
    h.on_message(book({"as": [lv("2.0", "1.0")], "bs": [lv("1.0", "1.0")]}), 1, "s")
    h.on_lost('[42,{"b":[["1.0","2.0","16186', "s")
    assert ctx.summary.streams["KRAKEN:BTC-USD"].gaps == 1
    h.on_lost('{"event":"heartbe', "s")  # an event: no book affected
    assert ctx.summary.streams["KRAKEN:BTC-USD"].gaps == 1


def test_trades() -> None:
    h, _ = make()
    entries = [
        ["354.11", "0.89", "1618678142.557535", "s", "l", ""],
        ["354.20", "1.00", "1618678142.600000", "b", "m", ""],
    ]
    msg = [993, entries, "trade", "XMR/USD"]
    sell, buy = h.on_message(msg, 1, "s")
    assert isinstance(sell, Trade) and (sell.symbol, sell.side, sell.price) == (
        "XMR-USD",
        "sell",
        354.11,
    )
    assert sell.timestamp_ns == 1618678142557535000 and sell.trade_id == ""
    assert (buy.side, buy.sequence) == ("buy", 2)


def test_real_capture_every_checksum_matches(captures: Path, normalized: Any) -> None:
    path = captures / "KRAKEN.ws.50.0"
    with_checksum = sum('"c":"' in line for line in path.read_text().splitlines())
    summary = ReplaySummary()
    events = list(read_cryptofeed([path], summary=summary))
    books = normalized(events)
    assert summary.total("checksums_ok") == with_checksum == 2595
    assert summary.total("checksum_failures") == 0
    assert summary.total("gaps") == 0 and summary.error_count == 0
    assert len(books) == 5 and sum(books.values()) == len(events) == 2600
    assert {s.snapshots for s in summary.streams.values()} == {1}


def test_real_trades(captures: Path, normalized: Any) -> None:
    path = captures / "KRAKEN.ws.48.0"
    entry = re.compile(r'\["[\d.]+","[\d.]+","[\d.]+","[bs]"')  # [price, volume, time, side
    expected = len(entry.findall(path.read_text()))
    events = list(read_cryptofeed([path]))
    normalized(events)
    assert all(isinstance(e.message, Trade) for e in events)
    assert len(events) == expected == 10
