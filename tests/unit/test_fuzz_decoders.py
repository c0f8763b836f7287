"""Fuzzing every decoder of outside input: only the package's own error may escape.

- ``schemas.codec.decode``: random bytes, and valid messages mutated byte by byte
  or rebuilt with hostile field values -> only ``SchemaError``.
- ``gateway.protocol.parse_request``: random JSON-ish text -> only ``ProtocolError``.
- ``core.market.Market.apply_book``: random operation sequences, invalid levels
  included -> only ``CoreError``, and a refused record leaves the book unchanged.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import orjson
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from core.book import ApplyResult, OrderBook
from core.checksum import book_checksum
from core.errors import CoreError
from core.market import Market
from core.types import BookUpdate, Exchange, Statistics, Trade
from gateway.protocol import ProtocolError, Request, parse_request
from schemas import codec
from schemas import market_data_pb2 as pb
from schemas.errors import SchemaError
from tests.examples import examples

FUZZ = settings(
    max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# ---- schemas.codec.decode -------------------------------------------------------------

finite = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)
hostile_float = (
    finite | st.floats() | st.sampled_from([0.0, -0.0, -1.0, math.nan, math.inf, -math.inf])
)
levels = st.lists(st.tuples(finite, finite), max_size=6)
symbols = st.sampled_from(["BTC-USDT", "BTC-USD", "ETH-USD"]) | st.text(max_size=20)
exchange_values = st.integers(1, 3) | st.integers(min_value=-(2**31), max_value=2**31 - 1)


def _valid_messages() -> st.SearchStrategy[bytes]:
    book = st.builds(
        BookUpdate,
        exchange=st.sampled_from([Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN]),
        symbol=st.sampled_from(["BTC-USDT", "BTC-USD", "ETH-USD"]),
        timestamp_ns=st.integers(0, 2**63),
        sequence=st.integers(0, 2**63),
        bids=levels,
        asks=levels,
        is_snapshot=st.booleans(),
        prev_sequence=st.integers(0, 2**63),
        checksum=st.integers(0, 2**32 - 1),
    )
    trade = st.builds(
        Trade,
        exchange=st.sampled_from([Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN]),
        symbol=st.sampled_from(["BTC-USDT", "BTC-USD"]),
        timestamp_ns=st.integers(0, 2**63),
        trade_id=st.text(max_size=8),
        price=finite,
        quantity=finite,
        side=st.sampled_from(["buy", "sell", ""]),
        sequence=st.integers(0, 2**63),
    )
    stats = st.builds(
        Statistics,
        exchange=st.sampled_from(["BINANCE", ""]),
        symbol=st.sampled_from(["BTC-USD"]),
        timestamp_ns=st.integers(0, 2**63),
        window_ns=st.integers(0, 2**63),
    )
    return st.one_of(book, trade, stats).map(codec.encode)


def _decode(data: bytes) -> object:
    try:
        return codec.decode(data)
    except SchemaError:
        return None


@FUZZ
@given(st.binary(max_size=512))
def test_decode_random_bytes(data: bytes) -> None:
    _decode(data)


@FUZZ
@given(_valid_messages(), st.data())
def test_decode_mutated_valid_messages(data: bytes, draw: st.DataObject) -> None:
    """Flip, insert, delete and truncate bytes of a valid encoding."""
    buf = bytearray(data)
    for _ in range(draw.draw(st.integers(1, 6))):
        op = draw.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "set"]))
        pos = draw.draw(st.integers(0, max(len(buf) - 1, 0)))
        if op == "flip" and buf:
            buf[pos] ^= 1 << draw.draw(st.integers(0, 7))
        elif op == "set" and buf:
            buf[pos] = draw.draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            buf[pos:pos] = draw.draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and buf:
            del buf[pos : pos + draw.draw(st.integers(1, 4))]
        elif op == "truncate":
            del buf[pos:]
    _decode(bytes(buf))


@FUZZ
@given(
    exchange=exchange_values,
    symbol=symbols,
    price=hostile_float,
    quantity=hostile_float,
    sequence=st.integers(0, 2**64 - 1),
    is_snapshot=st.booleans(),
    checksum=st.integers(0, 2**32 - 1),
)
@example(1, "BTC-USD\n", 1.0, 1.0, 1, False, 0)  # `$` in a regex also matches before a "\n"
def test_decode_book_with_hostile_fields(
    exchange: int,
    symbol: str,
    price: float,
    quantity: float,
    sequence: int,
    is_snapshot: bool,
    checksum: int,
) -> None:
    """Protobuf-valid content that must be validated: enums, symbols, NaN, negatives."""
    m = pb.OrderBookUpdate(
        exchange=exchange,
        symbol=symbol,
        sequence_number=sequence,
        is_snapshot=is_snapshot,
        checksum=checksum,
    )
    m.bids.add(price=price, quantity=quantity)
    m.asks.add(price=abs(price) + 1 if math.isfinite(price) else price, quantity=quantity)
    data = pb.MarketDataMessage(order_book_update=m).SerializeToString()
    out = _decode(data)
    ask = m.asks[0].price
    # the expected outcome, from docs/protocol.md: accepted exactly when every field is valid
    valid = (
        exchange in (1, 2, 3)
        and _canonical(symbol)
        and all(_level_ok(px, quantity) for px in (price, ask))
    )
    assert (out is not None) == valid, (exchange, symbol, price, quantity)
    if out is not None:
        assert isinstance(out, BookUpdate)
        assert (out.exchange, out.symbol, out.sequence) == (Exchange(exchange), symbol, sequence)
        assert out.bids == [(price, quantity)] and out.asks == [(ask, quantity)]
        assert (out.is_snapshot, out.checksum) == (is_snapshot, checksum)


def _canonical(symbol: str) -> bool:
    """BASE-QUOTE, upper-case letters and digits, nothing before or after."""
    base, dash, quote = symbol.partition("-")
    return bool(dash) and all(
        0 < len(part) <= 16 and all(c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" for c in part)
        for part in (base, quote)
    )


def _level_ok(price: float, quantity: float) -> bool:
    return 0 < price < math.inf and 0 <= quantity < math.inf


@FUZZ
@given(
    exchange=st.text(max_size=10) | st.sampled_from(["BINANCE", "KRAKEN", "binance"]),
    symbol=symbols,
    price=hostile_float,
    quantity=hostile_float,
    side=st.integers(0, 2) | st.integers(-(2**31), 2**31 - 1),
)
@example("KRAKEN", "BTC-USD\n", 1.0, 1.0, 1)
def test_decode_trade_with_hostile_fields(
    exchange: str, symbol: str, price: float, quantity: float, side: int
) -> None:
    m = pb.Trade(exchange=exchange, symbol=symbol, price=price, quantity=quantity, side=side)
    out = _decode(pb.MarketDataMessage(trade=m).SerializeToString())
    valid = (
        exchange in ("BINANCE", "COINBASE", "KRAKEN")
        and _canonical(symbol)
        and 0 < price < math.inf
        and 0 < quantity < math.inf
        and side in (0, 1, 2)
    )
    assert (out is not None) == valid, (exchange, symbol, price, quantity, side)
    if out is not None:
        assert isinstance(out, Trade)
        assert (out.exchange.name, out.symbol, out.price, out.quantity) == (
            exchange,
            symbol,
            price,
            quantity,
        )
        assert out.side == {0: "", 1: "buy", 2: "sell"}[side]


@FUZZ
@given(st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5), st.binary(max_size=16))))
def test_decode_random_field_soup(fields: list[tuple[int, int, bytes]]) -> None:
    """Hand-rolled wire format: arbitrary field numbers and wire types, nested or not."""
    out = bytearray()
    for number, wire_type, payload in fields:
        out += _varint(number << 3 | wire_type)
        if wire_type == 0:
            out += _varint(int.from_bytes(payload[:9] or b"\x00", "little"))
        elif wire_type == 1:
            out += payload[:8].ljust(8, b"\x00")
        elif wire_type == 2:
            out += _varint(len(payload)) + payload
        elif wire_type == 5:
            out += payload[:4].ljust(4, b"\x00")
        else:  # groups (3, 4) are not valid in proto3: the parser must refuse them cleanly
            out += payload
    _decode(bytes(out))


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def test_decode_oversized_record_is_refused() -> None:
    big = codec.encode(BookUpdate(Exchange.KRAKEN, "BTC-USD", 1, 1, bids=[(1.0, 1.0)] * 250_000))
    assert len(big) > codec.MAX_RECORD_BYTES
    assert _decode(big) is None


# ---- gateway.protocol.parse_request ---------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["KRAKEN:BTC-USD", "BINANCE:", ":BTC", "UNKNOWN:X", "2024-01-01T00:00:00Z"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=10,
)
request_like = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(
            ["subscribe", "unsubscribe", "resync", "ping", "auth", "replay", "cancel_replay"]
        )
        | json_scalars,
        "id": json_scalars | st.lists(st.integers(), max_size=2),
        "channel": st.sampled_from(["book", "trades", "stats", "aggregated_book"]) | json_scalars,
        "symbols": st.lists(json_scalars, max_size=4) | json_values,
        "depth": st.sampled_from([0, 10, 20, 7, -1, True, 1e3, "20"]) | json_scalars,
        "speed": st.sampled_from(["raw", "100ms", 0, 1000, 1e9, -1, True]) | json_scalars,
        "token": json_scalars,
        "from": st.sampled_from(
            [
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00",
                "0001-01-01T00:00:00+00:00",
                "9999-12-31T23:59:59-23:59",
                "²",
                "1" * 400,
                -5,
                10**30,
            ]
        )
        | json_scalars,
        "to": st.sampled_from(["live", "2025-01-01T00:00:00Z", 0]) | json_scalars,
    },
)


def _parse(data: str | bytes) -> Request | None:
    try:
        return parse_request(data)
    except ProtocolError as e:
        assert e.code in (
            "bad_request",
            "unknown_op",
            "unknown_channel",
            "unknown_symbol",
        ), e.code
        return None


@FUZZ
@given(st.text(max_size=300) | st.binary(max_size=300))
def test_parse_request_random_text(data: str | bytes) -> None:
    _parse(data)


@FUZZ
@given(json_values)
def test_parse_request_random_json(value: Any) -> None:
    try:
        text = orjson.dumps(value)
    except (orjson.JSONEncodeError, TypeError):
        assume(False)
        return
    _parse(text)


@FUZZ
@given(request_like)
def test_parse_request_request_shaped(msg: dict[str, Any]) -> None:
    try:
        text = orjson.dumps(msg, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):
        assume(False)
        return
    req = _parse(text)
    if req is not None:
        assert req.op == msg["op"]
        if req.op in ("subscribe", "unsubscribe", "replay"):
            assert req.symbols and all(isinstance(s, str) for s in req.symbols)
            assert req.depth in (10, 20, 50, 100, 500, 1000, 0)


times = (
    st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.datetimes().map(lambda d: d.isoformat())
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    | st.sampled_from(["0001-01-01T00:00:00-23:59", "9999-12-31T23:59:59+00:00", "²", "1" * 5000])
)


@FUZZ
@given(
    channel=st.sampled_from(["book", "trades", "stats"]),
    start=times,
    end=times | st.just("live"),
    speed=json_scalars,
    depth=json_scalars,
)
def test_parse_request_replay_times(
    channel: str, start: object, end: object, speed: object, depth: object
) -> None:
    """Replay requests with valid symbols: every time and speed shape is refused cleanly."""
    msg = {
        "op": "replay",
        "id": 1,
        "channel": channel,
        "symbols": ["KRAKEN:BTC-USD"],
        "from": start,
        "to": end,
        "speed": speed,
        "depth": depth,
    }
    try:
        text = orjson.dumps(msg)
    except (orjson.JSONEncodeError, TypeError):
        assume(False)
        return
    req = _parse(text)
    if req is not None:
        assert req.to_ns is None or req.to_ns > req.from_ns
        assert 0 <= req.replay_speed <= 1000


# ---- core.market.Market.apply_book ----------------------------------------------------

prices = st.sampled_from([100.0, 100.5, 101.0, 101.5, 99.5, 99.0, 98.5, 102.0])
bad_floats = st.sampled_from([math.nan, math.inf, -math.inf, -1.0, 0.0, -0.0])
quantities = st.sampled_from([0.0, 0.5, 1.0, 2.0])
good_level = st.tuples(prices, quantities)
any_level = good_level | st.tuples(bad_floats | prices, bad_floats | quantities)
weird_level: st.SearchStrategy[Any] = st.sampled_from(
    [(1.0,), (1.0, 2.0, 3.0), ("1", 2.0), (None, 1.0), (1.0, None), ()]
)


@st.composite
def operations(draw: st.DrawFn) -> list[BookUpdate]:
    """A stream of records around a book: snapshots, deltas, gaps, duplicates, junk."""
    ops: list[BookUpdate] = []
    seq = draw(st.integers(1, 10))
    for _ in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["snapshot", "delta", "delta", "delta", "gap", "old"]))
        exchange = draw(
            st.sampled_from([Exchange.KRAKEN] * 6 + [Exchange.UNKNOWN, Exchange.BINANCE])
        )
        symbol = draw(st.sampled_from(["BTC-USD"] * 6 + ["", "ETH-USD"]))
        junk = draw(st.integers(0, 9)) == 0
        level = st.one_of(any_level, weird_level) if junk else any_level
        if kind == "snapshot":
            bids = draw(st.lists(st.tuples(st.sampled_from([99.0, 99.5, 100.0]), finite)))
            asks = draw(st.lists(st.tuples(st.sampled_from([100.5, 101.0, 101.5]), finite)))
            good = book_checksum(_top(asks), _top(bids, True))
            checksum = draw(st.sampled_from([0, 0, 1, good]))
            if junk:
                bids += draw(st.lists(level, max_size=2))
            seq += 1
            ops.append(BookUpdate(exchange, symbol, seq, seq, bids, asks, True, seq - 1, checksum))
            continue
        delta_bids = draw(st.lists(level, max_size=3))
        delta_asks = draw(st.lists(level, max_size=3))
        if kind == "delta":
            seq += 1
            s = seq
        elif kind == "gap":
            seq += draw(st.integers(2, 4))
            s = seq
        else:
            s = max(seq - draw(st.integers(0, 3)), 0)
        checksum = draw(st.sampled_from([0, 0, 0, 12345]))
        ops.append(
            BookUpdate(exchange, symbol, s, s, delta_bids, delta_asks, False, s - 1, checksum)
        )
    return ops


def _top(levels: list[tuple[float, float]], desc: bool = False) -> list[tuple[float, float]]:
    best: dict[float, float] = {}
    for p, q in levels:
        best.setdefault(p, q)
    return sorted(best.items(), reverse=desc)


def _state(market: Market, stream: str) -> tuple[Any, ...] | None:
    book = market.book(stream)
    if book is None:
        return None
    return (
        book.bids(),
        book.asks(),
        book.sequence,
        book.stale,
        book.stale_reason,
        book.timestamp_ns,
        book.version,
        book.checksum(),
    )


def _agg_state(market: Market, symbol: str) -> tuple[Any, ...] | None:
    agg = market.aggregated(symbol)
    return None if agg is None else (agg.bids(0), agg.asks(0), sorted(agg.venues))


class Expected:
    """What one stream's book must do with a record, spelled out from the sequencing and
    validation rules of docs/protocol.md (dicts, sorted on read; checksum by zlib)."""

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.sequence = 0
        self.stale = True

    def crc(self, bids: dict[float, float], asks: dict[float, float]) -> int:
        top = sorted(asks.items())[:10] + sorted(bids.items(), reverse=True)[:10]
        return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in top))

    def apply(self, u: BookUpdate) -> ApplyResult | None:
        """The result, or None when the record must be refused (and nothing change)."""
        if u.is_snapshot:
            if not self.stale and u.sequence <= self.sequence:
                return ApplyResult.DUPLICATE
            bids, asks = _side(u.bids, snapshot=True), _side(u.asks, snapshot=True)
            if bids is None or asks is None:
                return None
            if bids and asks and max(bids) >= min(asks):
                return None  # crossed
            if u.checksum and u.checksum != self.crc(bids, asks):
                return None
            self.bids, self.asks, self.sequence, self.stale = bids, asks, u.sequence, False
            return ApplyResult.SNAPSHOT
        if self.stale:
            return ApplyResult.STALE_IGNORED
        if u.sequence <= self.sequence:
            return ApplyResult.DUPLICATE
        if u.sequence != self.sequence + 1:
            self.stale = True
            return ApplyResult.GAP
        if _side(u.bids, snapshot=False) is None or _side(u.asks, snapshot=False) is None:
            return None
        bids, asks = dict(self.bids), dict(self.asks)
        for side, levels in ((bids, u.bids), (asks, u.asks)):
            for p, q in levels:
                if q:
                    side[p] = q
                else:
                    side.pop(p, None)
        if u.checksum and u.checksum != self.crc(bids, asks):
            self.stale = True  # diverged from the producer: undone, wait for a snapshot
            return ApplyResult.GAP
        self.bids, self.asks, self.sequence = bids, asks, u.sequence
        return ApplyResult.APPLIED


def _side(levels: list[Any], snapshot: bool) -> dict[float, float] | None:
    """Levels as a dict, or None when one is not (positive finite price, quantity >= 0;
    > 0 in a snapshot) or a snapshot repeats a price."""
    out: dict[float, float] = {}
    for level in levels:
        if len(level) != 2 or not all(isinstance(x, float) for x in level):
            return None
        p, q = level
        if not (0 < p < math.inf and (q > 0 if snapshot else q >= 0) and q < math.inf):
            return None
        if snapshot and p in out:
            return None
        out[p] = q
    return out


@FUZZ
@given(operations())
def test_market_apply_book_random_operations(ops: list[BookUpdate]) -> None:
    """Every record's result is the one the rules predict, and every book equals the
    expected one after each record; a refused record changes nothing."""
    market = Market()
    expected: dict[str, Expected] = {}
    for update in ops:
        streams = market.streams()
        before = {s: _state(market, s) for s in streams}
        aggs = {sym: _agg_state(market, sym) for sym in market.symbols()}
        known = update.exchange in (Exchange.BINANCE, Exchange.COINBASE, Exchange.KRAKEN)
        model = expected.get(update.stream, Expected())
        want = model.apply(update) if known and update.symbol else None
        try:
            event = market.apply_book(update, 1)
        except CoreError:
            assert want is None, f"refused, but the rules say {want}: {update}"
            assert market.streams() == streams, "a refused record created a stream"
            for s in streams:
                assert _state(market, s) == before[s], f"refused record changed {s}"
            for sym, state in aggs.items():
                assert _agg_state(market, sym) == state
            continue
        expected[update.stream] = model
        book = event.book
        assert event.result is want, (event.result, want, update)
        assert (book.sequence, book.stale) == (model.sequence, model.stale)
        if not book.stale:
            assert book.bids() == sorted(model.bids.items(), reverse=True)
            assert book.asks() == sorted(model.asks.items())
            # a live book is always valid: positive finite levels, not crossed
            for p, q in book.bids() + book.asks():
                assert 0 < p < math.inf and 0 < q < math.inf, (p, q)
            bid, ask = book.best_bid(), book.best_ask()
            if event.result is ApplyResult.SNAPSHOT and bid and ask:
                assert bid[0] < ask[0]


@FUZZ
@given(operations())
def test_order_book_refusal_keeps_state(ops: list[BookUpdate]) -> None:
    """The same at the OrderBook level: a CoreError means nothing changed."""
    book = OrderBook(Exchange.KRAKEN, "BTC-USD")
    for update in ops:
        copy = book.copy()
        version, checksum = book.version, book.checksum()
        try:
            book.apply(update)
        except CoreError:
            assert book.same_state(copy)
            assert (book.version, book.checksum()) == (version, checksum)


def test_float_pairs_checksum_matches_contract() -> None:
    """Sanity of the fuzz oracle: §5 checksum over <dd pairs."""
    import zlib

    asks, bids = [(101.0, 1.0)], [(100.0, 2.0)]
    raw = b"".join(struct.pack("<dd", p, q) for p, q in asks + bids)
    assert book_checksum(asks, bids) == zlib.crc32(raw)
