"""All real captures through ``open_capture``: shape of the stream and counts per venue."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from core.types import Trade
from producers.captures import open_capture


def _trades_in_capture(captures: Path) -> Counter[str]:
    """Trade messages counted on the raw text, independently of the parsers."""
    binance = (captures / "BINANCE.ws.1.0").read_text()
    coinbase = (captures / "COINBASE.ws.28.0").read_text()
    kraken = (captures / "KRAKEN.ws.48.0").read_text()
    return Counter(
        BINANCE=binance.count('"e":"aggTrade"') + binance.count('"e":"trade"'),
        COINBASE=coinbase.count('"type":"match"') + coinbase.count('"type":"last_match"'),
        KRAKEN=len(re.findall(r'\["[\d.]+","[\d.]+","[\d.]+","[bs]"', kraken)),
    )


def test_open_capture_all_venues(captures: Path, normalized: Any) -> None:
    ws = sorted(captures.glob("*.ws.*"))
    stream, summary = open_capture(ws)
    events = list(stream)
    books = normalized(events)  # contiguous sequences, snapshot first, recv times monotonic
    assert sorted(Path(p).name for p in summary.auxiliary_files) == [
        "BINANCE.0",
        "BINANCE.http.0.0",
    ]
    trades = Counter(e.message.exchange.name for e in events if isinstance(e.message, Trade))
    assert trades == _trades_in_capture(captures) == Counter(BINANCE=2, COINBASE=107, KRAKEN=10)
    assert len(books) == 4 + 10 + 5
    assert summary.events == len(events) == 178 + 9836 + 2600 + 10
    assert summary.error_count == 0 and not summary.unknown_symbols
    assert all(s.synced for s in summary.streams.values() if s.book_records)
    assert "BINANCE:NKN-USDT" in summary.format()


def test_without_siblings_binance_never_syncs(captures: Path) -> None:
    events, summary = open_capture([captures / "BINANCE.ws.1.0"], siblings=False)
    assert [e for e in events if not isinstance(e.message, Trade)] == []
    assert summary.total("dropped_diffs") == 177 and summary.total("snapshots") == 0
