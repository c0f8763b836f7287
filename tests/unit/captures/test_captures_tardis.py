"""Tardis CSV: incremental_book_L2 grouping and snapshots, trades, gzip, bad rows."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from core.types import BookUpdate, Trade
from producers.captures import ReplaySummary, read_tardis
from producers.captures.errors import CorruptLineError, TruncatedGzipError, UnknownFormatError
from producers.captures.tardis import BOOK_COLUMNS, parse_header, parse_row

BOOK_HEADER = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount\n"
TRADES_HEADER = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"

BOOK = BOOK_HEADER + (
    "binance,BTCUSDT,1000,1005,false,bid,99,1\n"  # before the first snapshot: dropped
    "binance,BTCUSDT,2000,2010,true,bid,100,1\n"
    "binance,BTCUSDT,2000,2010,true,bid,99,2\n"
    "binance,BTCUSDT,2000,2010,true,ask,101,3\n"
    "binance,BTCUSDT,2000,2010,true,ask,102,0\n"  # zero in a snapshot: absent
    "binance,BTCUSDT,3000,3010,false,bid,100,0\n"  # one message: two rows, same local time
    "binance,BTCUSDT,3001,3010,false,ask,101.5,4\n"
    "binance,BTCUSDT,4000,4010,false,ask,101,0\n"
    "binance,BTCUSDT,5000,5010,true,bid,98,1\n"  # snapshot after deltas: reset (reconnect)
    "binance,BTCUSDT,5000,5010,true,ask,103,1\n"
    "binance,BTCUSDT,6000,6010,false,bid,98.5,2\n"
)


def write(path: Path, text: str, *, gz: bool = False) -> Path:
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def books(events: list[Any]) -> list[BookUpdate]:
    return [e.message for e in events if isinstance(e.message, BookUpdate)]


@pytest.mark.parametrize("gz", [False, True])
def test_book_groups_snapshots_and_resets(tmp_path: Path, gz: bool, normalized: Any) -> None:
    summary = ReplaySummary()
    events = list(read_tardis([write(tmp_path / "b.csv", BOOK, gz=gz)], summary=summary))
    normalized(events)
    recs = books(events)
    assert [(r.sequence, r.is_snapshot) for r in recs] == [
        (1, True),
        (2, False),
        (3, False),
        (4, True),
        (5, False),
    ]
    snap, delta = recs[0], recs[1]
    assert snap.stream == "BINANCE:BTC-USDT" and snap.timestamp_ns == 2_000_000
    assert snap.bids == [(100.0, 1.0), (99.0, 2.0)] and snap.asks == [(101.0, 3.0)]
    assert delta.bids == [(100.0, 0.0)] and delta.asks == [(101.5, 4.0)]
    assert delta.timestamp_ns == 3_001_000 and events[1].recv_ns == 3_010_000
    assert recs[3].bids == [(98.0, 1.0)] and recs[3].asks == [(103.0, 1.0)]
    stats = summary.streams["BINANCE:BTC-USDT"]
    assert (stats.dropped_diffs, stats.resyncs, stats.applied_diffs) == (1, 1, 3)
    assert summary.error_count == 0


def test_trades_and_symbol_mapping(tmp_path: Path, normalized: Any) -> None:
    text = TRADES_HEADER + (
        "kraken,XBT/USD,1601510402154000,1601510402210981,,sell,10775.7,0.01226018\n"
        "coinbase,BTC-USD,1601510402155000,1601510402211000,1054,buy,10776,0.5\n"
        "coinbase,BTC-USD,1601510402156000,1601510402212000,1055,unknown,10776,0.1\n"
    )
    events = list(read_tardis([write(tmp_path / "t.csv.gz", text, gz=True)]))
    normalized(events)
    trades = [e.message for e in events]
    assert all(isinstance(t, Trade) for t in trades)
    assert [(t.stream, t.side, t.trade_id) for t in trades] == [
        ("KRAKEN:BTC-USD", "sell", ""),
        ("COINBASE:BTC-USD", "buy", "1054"),
        ("COINBASE:BTC-USD", "", "1055"),
    ]
    assert (
        trades[0].timestamp_ns == 1601510402154000000 and events[0].recv_ns == 1601510402210981000
    )


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    rows = "".join(f"binance,BTCUSDT,{i},{i},true,bid,{100 + i}.5,1\n" for i in range(1, 3000))
    data = gzip.compress((BOOK_HEADER + rows).encode())
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    summary = ReplaySummary()
    events = list(read_tardis([path], summary=summary))
    [error] = summary.errors
    assert isinstance(error, TruncatedGzipError) and error.line is not None and error.line > 100
    assert str(error).startswith(f"{path}:{error.line}: gzip stream ends")
    assert len(events) == 1 and len(events[0].message.bids) == error.line - 1  # one snapshot, kept


def test_corrupt_row_is_reported_and_its_stream_waits(tmp_path: Path) -> None:
    text = BOOK.replace(
        "binance,BTCUSDT,4000,4010,false,ask,101,0", "binance,BTCUSDT,4000,4010,false,ask,1x1,0"
    )
    summary = ReplaySummary()
    path = write(tmp_path / "c.csv", text)
    recs = books(list(read_tardis([path], summary=summary)))
    [error] = summary.errors
    assert isinstance(error, CorruptLineError) and error.where == f"{path}:9"
    assert [(r.sequence, r.is_snapshot) for r in recs] == [
        (1, True),
        (2, False),
        (3, True),
        (4, False),
    ]
    assert summary.streams["BINANCE:BTC-USDT"].gap_reasons == ["unreadable row"]


def test_corrupt_row_of_the_open_message_discards_it(tmp_path: Path) -> None:
    text = BOOK.replace(
        "binance,BTCUSDT,3001,3010,false,ask,101.5,4", "binance,BTCUSDT,3001,3010,false,ask,nan,4"
    )
    summary = ReplaySummary()
    recs = books(list(read_tardis([write(tmp_path / "c.csv", text)], summary=summary)))
    assert summary.error_count == 1
    assert [(r.sequence, r.is_snapshot) for r in recs] == [(1, True), (2, True), (3, False)]


def test_unknown_exchange_and_symbol_are_reported(tmp_path: Path) -> None:
    text = TRADES_HEADER + (
        "bitmex,XBTUSD,1,1,a,buy,1,1\n"
        "binance,FOOBAR,2,2,b,buy,1,1\n"
        "binance,FOOBAR,3,3,c,buy,1,1\n"
        "kraken,XBT/USD,4,4,d,buy,1,1\n"
    )
    summary = ReplaySummary()
    path = write(tmp_path / "u.csv", text)
    events = list(read_tardis([path], summary=summary))
    assert len(events) == 1
    found = {
        (u.exchange, u.native): (u.count, u.first_seen) for u in summary.unknown_symbols.values()
    }
    assert found == {
        ("BITMEX", "XBTUSD"): (1, f"{path}:2"),
        ("BINANCE", "FOOBAR"): (2, f"{path}:3"),
    }


def test_not_a_tardis_file(tmp_path: Path) -> None:
    summary = ReplaySummary()
    assert list(read_tardis([write(tmp_path / "x.csv", "a,b,c\n1,2,3\n")], summary=summary)) == []
    assert isinstance(summary.errors[0], UnknownFormatError) and summary.errors[0].line == 1


def test_row_parser() -> None:
    kind, columns = parse_header(BOOK_HEADER.strip())
    assert kind == "book" and columns == tuple(range(len(BOOK_COLUMNS)))
    row = parse_row("kraken,XBT/USD,1,2,true,ask,5.5,0.25", kind, columns)
    assert (row.flag, row.side, row.level[:2], row.local_ns) == (True, "ask", (5.5, 0.25), 2000)
    bad_rows = (
        "kraken,XBT/USD,1,2,maybe,ask,5,1",
        "kraken,XBT/USD,1,2,true,up,5,1",
        "k,s,1",
        ",,1,2,true,ask,5,1",
        "kraken,XBT/USD,-1,2,true,ask,5,1",
        "kraken,XBT/USD,1,2,true,ask,5,-1",
    )
    for bad in bad_rows:
        with pytest.raises(CorruptLineError):
            parse_row(bad, kind, columns)
