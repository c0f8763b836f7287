"""Fixtures of the capture tests: where the real captures are, and a stream checker."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest

from core.types import BookUpdate, Trade
from producers.captures import CaptureEvent


def check_normalized(events: Iterable[CaptureEvent]) -> dict[str, int]:
    """Assert the docs/protocol.md §2.2 shape per stream; returns book records per stream.

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
