"""Binance diff-depth sync (buffer, drop, bridge, gap -> REST resync) and trades."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.types import BookUpdate, Trade
from producers.captures.binance import BinanceHandler
from producers.captures.common import ReplayContext
from producers.captures.cryptofeed import read_cryptofeed
from producers.captures.summary import ReplaySummary

DEPTH_URL = "https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000"


def diff(first: int, last: int, bid: str = "100", qty: str = "1") -> dict[str, Any]:
    data = {"e": "depthUpdate", "E": 1_700_000_000_000, "s": "BTCUSDT", "U": first, "u": last}
    return {"stream": "btcusdt@depth@100ms", "data": {**data, "b": [[bid, qty]], "a": []}}


def snapshot(last_update_id: int) -> dict[str, Any]:
    return {"lastUpdateId": last_update_id, "bids": [["99", "1"]], "asks": [["101", "2"]]}


def make() -> tuple[BinanceHandler, ReplayContext]:
    ctx = ReplayContext()
    return BinanceHandler(ctx), ctx


def test_diffs_before_snapshot_are_buffered_then_dropped_or_applied() -> None:
    h, ctx = make()
    assert h.on_message(diff(90, 95), 1, "ws") == []
    assert h.on_message(diff(96, 100), 2, "ws") == []
    assert h.on_message(diff(101, 103), 3, "ws") == []
    out = h.on_http(DEPTH_URL, snapshot(100), 4, "http")
    assert [type(m).__name__ for m in out] == ["BookUpdate", "BookUpdate"]
    assert out[0].is_snapshot and out[0].sequence == 1
    assert out[1].sequence == 2 and not out[1].is_snapshot  # U=101 <= 100+1 <= u=103
    stats = ctx.summary.streams["BINANCE:BTC-USDT"]
    assert (stats.dropped_diffs, stats.applied_diffs) == (2, 1)


def test_first_diff_must_bridge_the_snapshot() -> None:
    h, ctx = make()
    h.on_http(DEPTH_URL, snapshot(100), 1, "http")
    assert h.on_message(diff(99, 100), 2, "ws") == []  # u <= lastUpdateId: dropped
    [bridge] = h.on_message(diff(100, 105), 3, "ws")  # U <= 101 <= u
    assert isinstance(bridge, BookUpdate) and bridge.sequence == 2
    [nxt] = h.on_message(diff(106, 106), 4, "ws")
    assert nxt.sequence == 3
    stats = ctx.summary.streams["BINANCE:BTC-USDT"]
    assert (stats.dropped_diffs, stats.applied_diffs, stats.gaps) == (1, 2, 0)


def test_snapshot_older_than_the_stream_is_a_gap() -> None:
    h, ctx = make()
    h.on_http(DEPTH_URL, snapshot(100), 1, "http")
    assert h.on_message(diff(105, 110), 2, "ws") == []  # U > lastUpdateId+1
    stats = ctx.summary.streams["BINANCE:BTC-USDT"]
    assert stats.gaps == 1 and not stats.synced
    assert "lastUpdateId+1" in stats.gap_reasons[0]


def test_gap_then_resync_from_the_next_rest_snapshot() -> None:
    h, ctx = make()
    h.on_http(DEPTH_URL, snapshot(100), 1, "http")
    h.on_message(diff(101, 102), 2, "ws")
    assert h.on_message(diff(105, 107), 3, "ws") == []  # 103..104 lost: gap
    assert h.on_message(diff(108, 110), 4, "ws") == []  # waiting, buffered
    assert h.on_message(diff(111, 111), 5, "ws") == []
    out = h.on_http(DEPTH_URL, snapshot(109), 6, "http")
    # snapshot, then 105-107 dropped (u <= 109), 108-110 bridges, 111 follows
    assert [(m.sequence, m.is_snapshot) for m in out] == [(3, True), (4, False), (5, False)]
    stats = ctx.summary.streams["BINANCE:BTC-USDT"]
    assert (stats.gaps, stats.resyncs, stats.snapshots) == (1, 1, 2)
    assert (stats.applied_diffs, stats.dropped_diffs) == (3, 1)
    assert stats.synced


def test_without_a_new_snapshot_the_stream_waits() -> None:
    h, ctx = make()
    h.on_http(DEPTH_URL, snapshot(100), 1, "http")
    h.on_message(diff(101, 101), 2, "ws")
    for first in (200, 201, 202):
        assert h.on_message(diff(first, first), 3, "ws") == []
    h.on_end()  # what is still buffered is counted as dropped
    stats = ctx.summary.streams["BINANCE:BTC-USDT"]
    assert (stats.gaps, stats.dropped_diffs, stats.synced) == (1, 3, False)


def test_snapshot_while_synced_is_unused() -> None:
    h, ctx = make()
    h.on_http(DEPTH_URL, snapshot(100), 1, "http")
    assert h.on_http(DEPTH_URL, snapshot(100), 2, "http") == []
    assert ctx.summary.skipped["binance:unused_snapshot"] == 1


def test_agg_trade_taker_side() -> None:
    h, _ = make()
    msg = {"e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": 42, "p": "100.5", "q": "2",
           "T": 1633998523963, "m": True, "M": True}  # fmt: skip
    [trade] = h.on_message({"stream": "btcusdt@aggTrade", "data": msg}, 5, "ws")
    assert isinstance(trade, Trade)
    assert (trade.trade_id, trade.side, trade.price, trade.quantity) == ("42", "sell", 100.5, 2.0)
    assert trade.timestamp_ns == 1633998523963_000_000
    [buy] = h.on_message({**msg, "a": 43, "m": False}, 6, "ws")
    assert buy.side == "buy"


def test_unknown_symbol_reported_once_with_location() -> None:
    h, ctx = make()
    ctx.path, ctx.line = "f", 7
    msg = diff(1, 2)
    msg["data"]["s"] = "FOOBAR"
    assert h.on_message(msg, 1, "ws") == [] and h.on_message(msg, 2, "ws") == []
    [unknown] = ctx.summary.unknown_symbols.values()
    assert (unknown.native, unknown.count, unknown.first_seen) == ("FOOBAR", 2, "f:7")
    assert ctx.summary.error_count == 1 and "f:7" in str(ctx.summary.errors[0])


def _hand_derivation(captures: Path) -> dict[str, tuple[int, int]]:
    """Independent of the handler: (dropped, applied) per native symbol from the raw lines."""
    snap_id: dict[str, int] = {}
    for line in (captures / "BINANCE.http.0.0").read_text().splitlines():
        if " -> " in line:
            url, _, rest = line.partition(" -> ")
            snap_id[url.split("symbol=")[1].split("&")[0]] = json.loads(rest.partition(": ")[2])[
                "lastUpdateId"
            ]
    diffs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for line in (captures / "BINANCE.ws.1.0").read_text().splitlines():
        if '"depthUpdate"' in line:
            data = json.loads(line.partition(": ")[2])["data"]
            diffs[data["s"]].append((data["U"], data["u"]))
    out = {}
    for symbol, ids in diffs.items():
        lid = snap_id[symbol]
        dropped = [d for d in ids if d[1] <= lid]
        applied = ids[len(dropped) :]
        first_u, first_last = applied[0]
        assert first_u <= lid + 1 <= first_last  # Binance's bridging rule holds in the data
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(applied))
        out[symbol] = (len(dropped), len(applied))
    return out


def test_real_capture_sync(captures: Path, normalized: Any) -> None:
    summary = ReplaySummary()
    files = [captures / n for n in ("BINANCE.ws.1.0", "BINANCE.http.0.0", "BINANCE.0")]
    events = list(read_cryptofeed(files, summary=summary))
    books = normalized(events)
    expected = _hand_derivation(captures)
    assert expected == {
        "NKNUSDT": (1, 149), "BLZETH": (1, 9), "LRCBTC": (2, 13), "RUNEEUR": (1, 1)
    }  # fmt: skip
    streams = {
        "NKNUSDT": "NKN-USDT",
        "BLZETH": "BLZ-ETH",
        "LRCBTC": "LRC-BTC",
        "RUNEEUR": "RUNE-EUR",
    }
    for native, (dropped, applied) in expected.items():
        stream = f"BINANCE:{streams[native]}"
        stats = summary.streams[stream]
        assert (stats.dropped_diffs, stats.applied_diffs) == (dropped, applied), stream
        assert (stats.snapshots, stats.gaps, stats.synced) == (1, 0, True)
        assert books[stream] == applied + 1
    assert summary.error_count == 0 and not summary.unknown_symbols
    assert summary.skipped["binance:bookTicker"] == 84 and summary.skipped["binance:kline"] == 2
