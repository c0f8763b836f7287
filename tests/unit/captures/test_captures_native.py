"""Native MDGWCAP1 captures: writer/reader round trip, bounds, broken files, codec events."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest

from core.types import BookUpdate, Exchange, Trade
from producers.captures import (
    CaptureEvent,
    CorruptLineError,
    NativeCaptureWriter,
    RecordTooLargeError,
    ReplaySummary,
    UnknownFormatError,
    read_native,
    read_native_events,
)
from producers.captures.native import MAGIC


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "c.mdgw"
    with NativeCaptureWriter(path) as w:
        w.write(1, b"abc")
        w.write(2**64 - 1, b"")
    assert path.read_bytes().startswith(MAGIC)
    assert list(read_native(path)) == [(1, b"abc"), (2**64 - 1, b"")]
    assert w.records == 2


def test_gzipped_file_reads_too(tmp_path: Path) -> None:
    raw = tmp_path / "c.mdgw"
    with NativeCaptureWriter(raw) as w:
        w.write(5, b"x" * 100)
    gz = tmp_path / "c.mdgw.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    assert list(read_native(gz)) == [(5, b"x" * 100)]


def test_record_size_bound(tmp_path: Path) -> None:
    with (
        NativeCaptureWriter(tmp_path / "w.mdgw", max_record_bytes=10) as w,
        pytest.raises(RecordTooLargeError),
    ):
        w.write(1, b"x" * 11)
    path = tmp_path / "big.mdgw"
    path.write_bytes(MAGIC + struct.pack(">IQ", 17 * 1024 * 1024, 1))
    with pytest.raises(RecordTooLargeError) as info:
        list(read_native(path))
    assert info.value.where == f"{path}:1" and "exceeds" in str(info.value)


@pytest.mark.parametrize(
    ("tail", "record"),
    [(struct.pack(">IQ", 3, 1) + b"ab", 1), (struct.pack(">IQ", 0, 1) + b"\x00\x00", 2)],
)
def test_cut_short(tmp_path: Path, tail: bytes, record: int) -> None:
    path = tmp_path / "cut.mdgw"
    path.write_bytes(MAGIC + tail)
    with pytest.raises(CorruptLineError) as info:
        list(read_native(path))
    assert info.value.line == record and "cut short" in info.value.message


def test_no_header(tmp_path: Path) -> None:
    path = tmp_path / "x.mdgw"
    path.write_bytes(b"MDGWCAP2\n")
    with pytest.raises(UnknownFormatError):
        list(read_native(path))


def test_events_round_trip_with_codec(tmp_path: Path) -> None:
    book = BookUpdate(
        Exchange.KRAKEN, "BTC-USD", 10, 1, [(1.0, 2.0)], [(3.0, 4.0)], is_snapshot=True
    )
    delta = BookUpdate(Exchange.KRAKEN, "BTC-USD", 11, 2, [(1.0, 0.0)], [], prev_sequence=1)
    gap = BookUpdate(Exchange.KRAKEN, "BTC-USD", 12, 5, [(1.5, 1.0)], [], prev_sequence=4)
    trade = Trade(Exchange.COINBASE, "ETH-USD", 12, "t1", 5.0, 0.5, "buy", 1)
    path = tmp_path / "e.mdgw"
    with NativeCaptureWriter(path) as w:
        for i, msg in enumerate((book, delta, trade, gap)):
            w.write_event(CaptureEvent(100 + i, msg))
        w.write(200, b"\xff\xff\xff")  # not a MarketDataMessage
    summary = ReplaySummary()
    events = list(read_native_events(path, summary=summary))
    assert [e.recv_ns for e in events] == [100, 101, 102, 103]
    assert events[0].message == book and events[2].message == trade
    assert summary.error_count == 1 and summary.errors[0].where == f"{path}:5"
    stats = summary.streams["KRAKEN:BTC-USD"]
    assert (stats.book_records, stats.snapshots, stats.gaps, stats.synced) == (3, 1, 1, False)
