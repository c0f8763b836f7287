"""The compiled hot path (``native/``) against the pure-Python reference it twins.

``mdgw_native.decode_book`` may answer None (the Python decoder then decides) but never
a different book: on valid, hostile, mutated and random records, whatever it accepts
equals ``schemas.codec.python_decode``'s result, bit for bit. ``ladder_checksum`` equals
``core.checksum.python_ladder_checksum`` on any ladder. The comparisons skip where the
extension is not built (no Rust toolchain at ``scripts/setup``); CI builds it, and its
strict skips fail a run where it is missing.
"""

from __future__ import annotations

import math
import os
import struct
import subprocess
import sys
import types
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import core.book
import core.checksum
import core.native
from core.book import OrderBook
from core.checksum import python_ladder_checksum
from core.ladder import Ladder
from core.types import BookUpdate, Exchange
from schemas import codec
from schemas import market_data_pb2 as pb
from schemas.errors import SchemaError
from tests.examples import examples

native = core.native.native
needs_native = pytest.mark.skipif(
    native is None,
    reason="mdgw_native is not built here (scripts/setup found no Rust toolchain)",
)
PROPS = settings(
    max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def _bits(value: Any) -> Any:
    """Floats by their bits (-0.0 is not 0.0 here), containers element-wise."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, list | tuple):
        return [_bits(v) for v in value]
    return value


def _fields(u: BookUpdate) -> list[Any]:
    return [_bits(getattr(u, f)) for f in BookUpdate.__slots__] + [type(u.is_snapshot)]


def _reference(data: bytes) -> BookUpdate | None:
    """The Python decoder's book, or None when it refuses the record or it is not a book."""
    try:
        value = codec.python_decode(data)
    except SchemaError:
        return None
    return value if isinstance(value, BookUpdate) else None


def _check(data: bytes) -> BookUpdate | None:
    """The compiled decoder's book, after checking it against the reference."""
    assert native is not None
    fields = native.decode_book(data)
    if fields is None:
        return None
    got = codec.decode(data)  # the compiled result, as the gateway receives it
    assert isinstance(got, BookUpdate)
    want = _reference(data)
    assert want is not None, f"compiled accepted what the reference refuses: {data!r}"
    assert _fields(got) == _fields(want), data
    return got


# ---- records --------------------------------------------------------------------------

finite = st.floats(min_value=1e-9, max_value=1e12, allow_nan=False, allow_infinity=False)
edges = [0.0, -0.0, -0.5, -1e-300, 5e-324, -1.0, 1e308, math.nan, math.inf, -math.inf]
hostile_float = st.sampled_from(edges) | st.sampled_from(edges[:6]) | st.floats()
u64 = st.integers(0, 2**64 - 1)


@st.composite
def book_records(draw: st.DrawFn, hostile: bool = False) -> bytes:
    """A ``MarketDataMessage`` with a book update, every field set; when ``hostile``, one
    field (the exchange, the symbol, or one level's price or quantity) takes any value."""
    bad = draw(st.sampled_from(["exchange", "symbol", "price", "quantity"])) if hostile else ""
    m = pb.OrderBookUpdate(
        exchange=draw(  # type: ignore[arg-type]
            st.integers(-(2**31), 2**31 - 1) if bad == "exchange" else st.integers(1, 3)
        ),
        symbol=draw(
            st.text(max_size=40) | st.sampled_from(["BTC-USD\n", "-", "A-", "A" * 17 + "-B"])
            if bad == "symbol"
            else st.sampled_from(["BTC-USDT", "ETH-USD", "A-B", "X" * 16 + "-" + "9" * 16])
        ),
        timestamp_ns=draw(u64),
        sequence_number=draw(u64),
        is_snapshot=draw(st.booleans()),
        prev_sequence_number=draw(u64),
        checksum=draw(st.integers(0, 2**32 - 1)),
        depth=draw(st.integers(0, 2**32 - 1)),
        ingest_ns=draw(u64),
        gateway_ns=draw(u64),
    )
    for levels in (m.bids, m.asks):
        for price, qty in draw(st.lists(st.tuples(finite, finite | st.just(0.0)), max_size=12)):
            levels.add(price=price, quantity=qty, order_count=draw(st.integers(0, 2**32 - 1)))
    if bad in ("price", "quantity"):
        level = (m.bids if draw(st.booleans()) else m.asks).add(price=1.0, quantity=1.0)
        setattr(level, bad, draw(hostile_float))
    return pb.MarketDataMessage(order_book_update=m).SerializeToString()


@needs_native
@PROPS
@given(book_records())
def test_valid_book_records_decode_the_same_compiled(data: bytes) -> None:
    assert _check(data) is not None, "a plain valid book record left to the Python path"


@needs_native
@PROPS
@given(book_records(hostile=True))
def test_hostile_book_records_are_refused_or_decoded_the_same(data: bytes) -> None:
    _check(data)


@needs_native
@PROPS
@given(book_records(), st.data())
def test_mutated_records_are_refused_or_decoded_the_same(data: bytes, draw: st.DataObject) -> None:
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 4))):
        op = draw.draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        at = draw.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[at] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "cut":
            del buf[at:]
        elif op == "insert":
            buf[at:at] = draw.draw(st.binary(min_size=1, max_size=4))
        elif buf:
            del buf[at]
    _check(bytes(buf))


@needs_native
@PROPS
@given(st.binary(max_size=200))
@example(b"")
@example(b"\x0a\x00")  # an empty order_book_update: the reference refuses its symbol
@example(b"\x0a\x02\x08\x01")  # exchange 1 and nothing else
def test_random_bytes_are_refused_or_decoded_the_same(data: bytes) -> None:
    _check(data)


def _book(**fields: Any) -> pb.OrderBookUpdate:
    m = pb.OrderBookUpdate(exchange=pb.OrderBookUpdate.KRAKEN, symbol="BTC-USD", sequence_number=7)
    m.bids.add(price=100.0, quantity=1.5)
    m.asks.add(price=101.0, quantity=0.0)
    for name, value in fields.items():
        setattr(m, name, value)
    return m


def _record(m: pb.OrderBookUpdate) -> bytes:
    return pb.MarketDataMessage(order_book_update=m).SerializeToString()


@needs_native
def test_what_the_compiled_decoder_leaves_to_the_python_one() -> None:
    assert native is not None
    plain = _record(_book())
    assert _check(plain) == BookUpdate(
        Exchange.KRAKEN, "BTC-USD", 0, 7, [(100.0, 1.5)], [(101.0, 0.0)]
    )
    with_venues = _book()
    with_venues.bids[0].venues.add(exchange=pb.OrderBookUpdate.KRAKEN, quantity=1.5)
    trade = pb.MarketDataMessage(trade=pb.Trade(exchange="KRAKEN", symbol="BTC-USD"))
    left = {
        "per-venue quantities": _record(with_venues),
        "replay fields": _record(_book(is_replay=True)),
        "a trade": trade.SerializeToString(),
        "two copies to merge": plain + plain,
        "an unknown exchange": _record(_book(exchange=9)),  # type: ignore[arg-type]
        "a bad symbol": _record(_book(symbol="btc-usd")),
        "a trailing newline": _record(_book(symbol="BTC-USD\n")),
        "a 17-character base": _record(_book(symbol="A" * 17 + "-USD")),
        "a 17-character quote": _record(_book(symbol="BTC-" + "Z" * 17)),
        "no quote": _record(_book(symbol="BTC-")),
        "a negative price": plain.replace(struct.pack("<d", 100.0), struct.pack("<d", -100.0)),
        "a NaN quantity": plain.replace(struct.pack("<d", 1.5), struct.pack("<d", math.nan)),
        "a quantity of -0.5": plain.replace(struct.pack("<d", 1.5), struct.pack("<d", -0.5)),
        "an infinite price": plain.replace(struct.pack("<d", 100.0), struct.pack("<d", math.inf)),
        "too large": plain + b"\x00" * codec.MAX_RECORD_BYTES,
        "a truncated record": plain[:-3],
    }
    for why, data in left.items():
        assert native.decode_book(data) is None, why
    for kind in (bytearray, memoryview):
        assert native.decode_book(kind(plain)) is None  # bytes only; the caller has bytes
    # a bool's varint other than 1, the widest varints: whatever is taken, taken the same
    head = _book().SerializeToString()
    wrap = lambda inner: b"\x0a" + bytes([len(inner)]) + inner  # noqa: E731
    assert _check(wrap(head + b"\x38\x02")) is not None  # is_snapshot = 2: True
    for varint in (b"\xff" * 9 + b"\x01", b"\xff" * 9 + b"\x7f", b"\x80" * 10 + b"\x00"):
        _check(wrap(head + b"\x18" + varint))  # timestamp_ns
    # the order count is parsed and ignored, as protobuf does
    counted = _book()
    counted.bids[0].order_count = 12
    assert _check(_record(counted)) == _check(plain)


@needs_native
def test_codec_decode_runs_the_compiled_decoder() -> None:
    assert native is not None
    assert codec._native_book is native.decode_book
    assert core.book._compiled_apply is native.apply_verified
    assert core.checksum._compiled_checksum is native.ladder_checksum


# ---- checksum ---------------------------------------------------------------------------

side = st.dictionaries(finite, finite, max_size=25)


def _ladder(desc: bool, levels: dict[float, float]) -> Ladder:
    ladder = Ladder(desc)
    for price, qty in levels.items():
        ladder.set(price, qty)
    return ladder


@needs_native
@PROPS
@given(side, side)
def test_compiled_checksum_equals_the_reference(
    bids: dict[float, float], asks: dict[float, float]
) -> None:
    assert native is not None
    bid, ask = _ladder(True, bids), _ladder(False, asks)
    want = python_ladder_checksum(bid, ask)
    assert native.ladder_checksum(bid._keys, bid.qty, ask._keys, ask.qty) == want
    assert core.checksum.ladder_checksum(bid, ask) == want


delta = st.lists(
    st.tuples(
        st.sampled_from([1.0, 2.0, 3.0, 50.0, 99.5, 100.0, 100.5, 101.0]) | finite,
        st.sampled_from([0.0, -0.0, 1.0, 2.5]) | finite,
    ),
    max_size=8,
)


def _book_with(bids: dict[float, float], asks: dict[float, float]) -> OrderBook:
    book = OrderBook(Exchange.KRAKEN, "BTC-USD")
    book.bid_side, book.ask_side = _ladder(True, bids), _ladder(False, asks)
    return book


def _state(book: OrderBook) -> Any:
    sides = (book.bid_side, book.ask_side)
    return [(_bits(s._keys), _bits(list(s.qty.items()))) for s in sides], book._checksum


@needs_native
@PROPS
@given(side, side, delta, delta, st.booleans(), st.data())
def test_compiled_apply_equals_the_reference(
    bids: dict[float, float],
    asks: dict[float, float],
    delta_bids: list[tuple[float, float]],
    delta_asks: list[tuple[float, float]],
    right: bool,
    data: st.DataObject,
) -> None:
    """Applied and verified, or refused and undone, to the same levels, in the same order,
    with the same key objects (a level's price may repeat within a delta)."""
    compiled, python = _book_with(bids, asks), _book_with(bids, asks)
    after = _book_with(bids, asks)
    for side, levels in ((after.bid_side, delta_bids), (after.ask_side, delta_asks)):
        for p, q in levels:
            if q:
                side.set(p, q)
            else:
                side.remove(p)
    good = python_ladder_checksum(after.bid_side, after.ask_side)
    checksum = good if right else data.draw(st.integers(1, 2**32 - 1).filter(lambda c: c != good))
    update = BookUpdate(Exchange.KRAKEN, "BTC-USD", 0, 1, delta_bids, delta_asks, checksum=checksum)
    ok = compiled._apply_verified(update)
    assert ok == python._python_apply_verified(update) == right
    assert _state(compiled) == _state(python)


@needs_native
def test_compiled_apply_leaves_other_shapes_to_python() -> None:
    assert native is not None
    bid, ask = _ladder(True, {1.0: 1.0}), _ladder(False, {2.0: 1.0})
    before = (list(bid._keys), dict(bid.qty), list(ask._keys), dict(ask.qty))
    for bids in ([[1.5, 1.0]], [(1, 1.0)], [(1.5, 1)], [(1.5,)], ((1.5, 1.0),), [(1.5, 1.0, 0)]):
        got = native.apply_verified(bid._keys, bid.qty, ask._keys, ask.qty, bids, [], 0)
        assert got is None, bids
        assert (bid._keys, bid.qty, ask._keys, ask.qty) == before
    # a checksum no u64 holds cannot match: left to Python (which says False), no OverflowError
    for checksum in (-1, 2**64, 2**70, 1.0, "0", None):
        got = native.apply_verified(
            bid._keys, bid.qty, ask._keys, ask.qty, [(1.5, 1.0)], [], checksum
        )
        assert got is None, checksum
        assert (bid._keys, bid.qty, ask._keys, ask.qty) == before


def test_an_out_of_range_checksum_is_a_mismatch_either_way() -> None:
    for checksum in (-1, 2**64):
        book = _book_with({1.0: 1.0}, {2.0: 1.0})
        before = _state(book)
        update = BookUpdate(Exchange.KRAKEN, "BTC-USD", 0, 1, [(1.5, 1.0)], [], checksum=checksum)
        assert book._apply_verified(update) is False
        assert book._python_apply_verified(update) is False
        assert _state(book) == before


class _Reversed(Ladder):
    """A ladder subclass: the compiled path, which reads Ladder's own fields, is not taken."""

    def flat_top(self, n: int) -> list[float]:
        return [1.0, 2.0] if n else []


def test_other_ladders_take_the_python_checksum() -> None:
    bid, ask = _Reversed(True), _Reversed(False)
    assert core.checksum.ladder_checksum(bid, ask) == python_ladder_checksum(bid, ask)
    # sides the wrong way round (asks descending) are not what the compiled code reads
    bid2, ask2 = _ladder(False, {1.0: 2.0, 3.0: 4.0}), _ladder(True, {5.0: 6.0, 7.0: 8.0})
    assert core.checksum.ladder_checksum(bid2, ask2) == python_ladder_checksum(bid2, ask2)


# ---- loading ----------------------------------------------------------------------------


def test_a_missing_or_stale_build_is_not_used() -> None:
    assert core.native.choose(None, "No module named 'mdgw_native'") == (
        None,
        "pure Python (mdgw_native not loaded: No module named 'mdgw_native')",
    )
    stale = types.ModuleType("mdgw_native")
    stale.ABI = core.native.ABI + 1  # type: ignore[attr-defined]
    module, status = core.native.choose(stale)
    assert module is None and "run scripts/setup" in status
    current = types.ModuleType("mdgw_native")
    current.ABI = core.native.ABI  # type: ignore[attr-defined]
    assert core.native.choose(current)[0] is current


@needs_native
def test_mdgw_native_0_switches_to_the_python_path() -> None:
    code = (
        "from core import native; from schemas import codec; import core.checksum as c; "
        "print(native.native, codec._native_book, c._compiled_checksum, "
        "native.status)"
    )
    env = {**os.environ, "MDGW_NATIVE": "0"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert (
        out
        == "None None None pure Python (mdgw_native not loaded: switched off by MDGW_NATIVE=0)\n"
    )
