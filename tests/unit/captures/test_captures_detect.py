"""Format detection, auxiliary files, merging, and bad input through open_capture."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest

from core.types import BookUpdate, Exchange, Trade
from producers.captures import (
    CaptureEvent,
    CorruptLineError,
    NativeCaptureWriter,
    TruncatedGzipError,
    UnknownFormatError,
    detect_format,
    open_capture,
)
from producers.captures.detect import auxiliary_files, sniff

KRAKEN_LINES = [
    "wss://ws.kraken.com <-> 1618678132.3858151",
    '1618678132.927716: {"channelID":1920,"channelName":"book-10","event":"subscriptionStatus",'
    '"pair":"SC/EUR","status":"subscribed","subscription":{"depth":10,"name":"book"}}',
    '1618678134.045305: [1920,{"as":[["0.043130","11802.77325050","1618678133.136361"]],'
    '"bs":[["0.043120","2000.00000000","1618678133.118337"]]},"book-10","SC/EUR"]',
    '1618678134.1: [1920,{"a":[["0.043130","100.00000000","1618678134.0"]],"c":"CK1"},'
    '"book-10","SC/EUR"]',
    '1618678134.2: [1920,{"a":[["0.043130","1',  # line 5: cut short
    '1618678134.3: [1920,{"a":[["0.043130","200.00000000","1618678134.2"]],"c":"CK2"},'
    '"book-10","SC/EUR"]',
    '1618678134.4: [1921,[["0.042990","15979.71727919","1618678134.3","s","l",""]],'
    '"trade","SC/EUR"]',
    '1618678134.5: [1921,[["0.042990","1.0","1618678134.4","s","l",""]],"trade","XBTUSD"]',
]


def kraken_capture(path: Path) -> Path:
    import zlib

    def ck(qty: str) -> str:
        return str(zlib.crc32(("43130" + qty + "43120" + "200000000000").encode()))

    text = "\n".join(KRAKEN_LINES) + "\n"
    path.write_text(text.replace("CK1", ck("10000000000")).replace("CK2", ck("20000000000")))
    return path


def test_sniff() -> None:
    assert sniff(b"MDGWCAP1\n\x00") == "native"
    assert sniff(b"exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n") == "tardis"
    assert sniff(b"wss://ws.kraken.com <-> 1618678132.3858151\n") == "cryptofeed"
    assert (
        sniff(b'https://api.binance.com/api/v3/exchangeInfo -> 1633998511.132921: {"tim')
        == "cryptofeed"
    )
    assert sniff(b"1618678134.1: [1920,") == "cryptofeed"
    assert sniff(b"configuration: {}") == "cryptofeed"
    assert sniff(b"hello\n") is None
    assert sniff(b"") is None


def test_detect_format_and_gzip(tmp_path: Path) -> None:
    path = kraken_capture(tmp_path / "KRAKEN.ws.1.0")
    assert detect_format(path) == "cryptofeed"
    gz = tmp_path / "KRAKEN.ws.2.0.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert detect_format(gz) == "cryptofeed"
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    with pytest.raises(UnknownFormatError) as info:
        detect_format(other)
    assert str(info.value) == f"{other}:1: not a cryptofeed, Tardis CSV or MDGWCAP1 capture"


def test_auxiliary_files(tmp_path: Path) -> None:
    for name in (
        "BINANCE.ws.1.0",
        "BINANCE.http.0.0",
        "BINANCE.0",
        "BINANCE.ws.2.0",
        "KRAKEN.http.0.0",
    ):
        (tmp_path / name).write_text("")
    assert [p.name for p in auxiliary_files(tmp_path / "BINANCE.ws.1.0")] == [
        "BINANCE.0",
        "BINANCE.http.0.0",
    ]
    assert auxiliary_files(tmp_path / "BINANCE.http.0.0") == []


def test_corrupt_line_unknown_symbol_and_rest_replayed(tmp_path: Path, normalized: Any) -> None:
    path = kraken_capture(tmp_path / "KRAKEN.ws.1.0")
    stream, summary = open_capture([path])
    events = list(stream)
    normalized(events)
    kinds = [(type(e.message).__name__, getattr(e.message, "is_snapshot", None)) for e in events]
    # snapshot, update; line 5 is cut: gap, line 6 dropped (stale); the trade still comes
    assert kinds == [("BookUpdate", True), ("BookUpdate", False), ("Trade", None)]
    stats = summary.streams["KRAKEN:SC-EUR"]
    assert (stats.checksums_ok, stats.gaps, stats.dropped_diffs, stats.synced) == (1, 1, 1, False)
    corrupt = [e for e in summary.errors if isinstance(e, CorruptLineError)]
    assert [e.where for e in corrupt] == [f"{path}:5"] and "bad JSON" in str(corrupt[0])
    [unknown] = summary.unknown_symbols.values()
    assert (unknown.exchange, unknown.native, unknown.first_seen) == (
        "KRAKEN",
        "XBTUSD",
        f"{path}:8",
    )


def test_truncated_gzip_cryptofeed(tmp_path: Path) -> None:
    trade = '[1921,[["0.04{:04d}","1.0","1618678134.3","s","l",""]],"trade","SC/EUR"]'
    lines = [f"{1618678134 + i}.5: " + trade.format(i) for i in range(3000)]
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "KRAKEN.ws.9.0.gz"
    path.write_bytes(data[: len(data) * 2 // 3])
    stream, summary = open_capture([path])
    events = list(stream)
    [error] = summary.errors
    assert isinstance(error, TruncatedGzipError) and error.line == len(events) > 100
    assert f"{path}:{error.line}: gzip stream ends" in str(error)


def test_unknown_format_is_reported_and_others_replayed(tmp_path: Path) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01garbage")
    good = kraken_capture(tmp_path / "KRAKEN.ws.1.0")
    stream, summary = open_capture([bad, good])
    assert len(list(stream)) == 3
    assert (
        isinstance(summary.errors[0], UnknownFormatError) and summary.errors[0].where == f"{bad}:1"
    )


def test_merge_across_formats_by_receive_time(tmp_path: Path) -> None:
    native = tmp_path / "n.mdgw"
    trade = Trade(Exchange.BINANCE, "BTC-USDT", 1, "9", 1.0, 1.0, "buy", 1)
    with NativeCaptureWriter(native) as w:
        w.write_event(CaptureEvent(1618678134_150_000_000, trade))
    tardis = tmp_path / "t.csv"
    tardis.write_text(
        "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
        "coinbase,BTC-USD,1618678134050000,1618678134050000,1,buy,1,1\n"
    )
    stream, _ = open_capture([kraken_capture(tmp_path / "KRAKEN.ws.1.0"), native, tardis])
    events = list(stream)
    assert [e.recv_ns for e in events] == sorted(e.recv_ns for e in events)
    assert [e.message.exchange.name for e in events] == [
        "KRAKEN",
        "COINBASE",
        "KRAKEN",
        "BINANCE",
        "KRAKEN",
    ]
    assert isinstance(events[0].message, BookUpdate)
