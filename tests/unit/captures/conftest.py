"""Fixtures of the capture tests: where the real captures are, and a stream checker."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from core.types import BookUpdate, Trade
from producers.captures import CaptureEvent

REPO = Path(__file__).resolve().parents[3]


def _captures_dir() -> Path | None:
    env = os.environ.get("MDGW_CAPTURES_DIR")
    path = Path(env) if env else REPO.parent / "shared" / "data" / "captures"
    return path if (path / "KRAKEN.ws.50.0").is_file() else None


@pytest.fixture(scope="session")
def captures() -> Path:
    """The folder of the real cryptofeed captures (never copied into the repository)."""
    path = _captures_dir()
    if path is None:
        pytest.skip(
            "captures not found: set MDGW_CAPTURES_DIR to the folder holding KRAKEN.ws.50.0 "
            "(default <repo>/../shared/data/captures)"
        )
    return path


def check_normalized(events: Iterable[CaptureEvent]) -> dict[str, int]:
    """Assert the CONTRACT section 2 shape per stream; returns book records per stream.

    Book sequences 1, 2, 3 ... with prev = previous, the first one a snapshot;
    trade sequences 1, 2, 3 ...; receive times never go backwards.
    """
    book_seq: dict[str, int] = {}
    trade_seq: dict[str, int] = {}
    last_recv = 0
    for ev in events:
        assert ev.recv_ns >= last_recv, "receive times go backwards"
        last_recv = ev.recv_ns
        msg = ev.message
        if isinstance(msg, BookUpdate):
            prev = book_seq.get(msg.stream, 0)
            if prev == 0:
                assert msg.is_snapshot, f"{msg.stream}: first record is not a snapshot"
            assert (msg.sequence, msg.prev_sequence) == (prev + 1, prev), msg.stream
            book_seq[msg.stream] = msg.sequence
        else:
            assert isinstance(msg, Trade)
            assert msg.sequence == trade_seq.get(msg.stream, 0) + 1, msg.stream
            trade_seq[msg.stream] = msg.sequence
    return book_seq


@pytest.fixture
def normalized() -> Callable[[Iterable[CaptureEvent]], dict[str, int]]:
    return check_normalized
