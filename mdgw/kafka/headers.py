"""Names of the Kafka record headers the project reads and writes."""

from __future__ import annotations

BOOK_PARTITION = "book-partition"
"""On a snapshot/checkpoint record: the marketdata.book partition of its stream."""
BOOK_OFFSET = "book-offset"
"""On a snapshot/checkpoint record: the book-topic offset to resume deltas from."""
TRACEPARENT = "traceparent"
DLQ_ERROR = "error"
DLQ_SOURCE_TOPIC = "source-topic"
DLQ_SOURCE_PARTITION = "source-partition"
DLQ_SOURCE_OFFSET = "source-offset"

Headers = list[tuple[str, bytes]]


def header(headers: Headers | None, name: str) -> bytes | None:
    """The first value of a header, or None."""
    for key, value in headers or ():
        if key == name:
            return value
    return None


def int_header(headers: Headers | None, name: str) -> int | None:
    """A header holding a decimal integer, or None when absent or malformed."""
    raw = header(headers, name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None
