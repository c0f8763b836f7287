"""Coinbase Exchange feed: level2 snapshot/l2update books, matches -> trades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.types import BookUpdate, Trade
from producers.captures.coinbase import CoinbaseHandler
from producers.captures.common import ReplayContext
from producers.captures.cryptofeed import read_cryptofeed
from producers.captures.summary import ReplaySummary

SNAP = {
    "type": "snapshot",
    "product_id": "BTC-USD",
    "bids": [["99.5", "1"]],
    "asks": [["100", "2"]],
}
TIME = "2021-04-17T16:43:37.075687Z"


def l2(side: str, price: str, size: str) -> dict[str, Any]:
    return {
        "type": "l2update",
        "product_id": "BTC-USD",
        "changes": [[side, price, size]],
        "time": TIME,
    }


def make() -> tuple[CoinbaseHandler, ReplayContext]:
    ctx = ReplayContext()
    return CoinbaseHandler(ctx), ctx


def test_snapshot_and_updates() -> None:
    h, ctx = make()
    assert h.on_message(l2("buy", "99", "1"), 1, "s") == []  # before the snapshot: dropped
    [snap] = h.on_message(SNAP, 2, "s")
    assert isinstance(snap, BookUpdate) and snap.is_snapshot and snap.timestamp_ns == 2
    [upd] = h.on_message(l2("sell", "100", "0"), 3, "s")
    assert upd.asks == [(100.0, 0.0)] and upd.bids == [] and upd.timestamp_ns == 1618677817075687000
    assert ctx.summary.streams["COINBASE:BTC-USD"].dropped_diffs == 1


def test_match_side_is_the_makers() -> None:
    h, _ = make()
    msg = {
        "type": "match", "trade_id": 280232, "side": "sell", "size": "985", "price": "0.00001305",
        "product_id": "SKL-BTC", "sequence": 177100030, "time": TIME,
    }  # fmt: skip
    [trade] = h.on_message(msg, 1, "s")
    assert isinstance(trade, Trade)
    assert (trade.side, trade.trade_id, trade.symbol) == ("buy", "280232", "SKL-BTC")
    assert h.on_message({**msg, "type": "last_match"}, 2, "s") == []  # same id: once


def test_reconnect_and_lost_book_line_are_gaps() -> None:
    h, ctx = make()
    h.on_connect(0, "s")
    h.on_message(SNAP, 1, "s")
    h.on_lost('{"type":"match","product_id":"BTC-USD","si', "s")  # a trade: book unaffected
    assert ctx.summary.streams["COINBASE:BTC-USD"].gaps == 0
    h.on_lost('{"type":"l2update","product_id":"BTC-USD","chan', "s")
    assert ctx.summary.streams["COINBASE:BTC-USD"].gaps == 1
    h.on_message(SNAP, 2, "s")
    h.on_connect(3, "s")
    stats = ctx.summary.streams["COINBASE:BTC-USD"]
    assert (stats.gaps, stats.resyncs, stats.synced) == (2, 1, False)
    assert stats.gap_reasons == ["unreadable line", "reconnect"]


def test_real_capture(captures: Path, normalized: Any) -> None:
    path = captures / "COINBASE.ws.28.0"
    text = path.read_text()
    matches, last_matches = text.count('"type":"match"'), text.count('"type":"last_match"')
    l2updates = text.count('"type":"l2update"')
    summary = ReplaySummary()
    events = list(read_cryptofeed([path], summary=summary))
    books = normalized(events)
    trades = [e.message for e in events if isinstance(e.message, Trade)]
    assert len(trades) == matches + last_matches == 97 + 10
    assert summary.total("applied_diffs") == l2updates == 9719
    assert len(books) == 10 and summary.total("snapshots") == 10
    assert summary.total("crossed") == 0  # never crossed after snapshot + updates
    assert summary.total("gaps") == 0 and summary.error_count == 0
    assert summary.skipped["coinbase:ticker"] == 107
