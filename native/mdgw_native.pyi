"""Compiled twins of the gateway's ingest hot spots (native/src/lib.rs, core/native.py)."""

from typing import Any

ABI: int

def decode_book(data: object) -> tuple[Any, ...] | None:
    """A book record's ``BookUpdate`` fields (the exchange as its number), or None when
    the Python decoder must decide."""

def ladder_checksum(
    bid_keys: list[float],
    bid_qty: dict[float, float],
    ask_keys: list[float],
    ask_qty: dict[float, float],
) -> int:
    """docs/protocol.md §5 over a book's two ladders."""

def apply_verified(
    bid_keys: list[float],
    bid_qty: dict[float, float],
    ask_keys: list[float],
    ask_qty: dict[float, float],
    bids: object,
    asks: object,
    checksum: object,
) -> bool | None:
    """A delta applied to a book's two ladders, verified against ``checksum`` and undone
    on a mismatch; None (nothing touched) when the levels are not tuples of two floats
    or the checksum is not an int in 0..2**64-1."""
