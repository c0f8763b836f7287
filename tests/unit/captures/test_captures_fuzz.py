"""Random input into every parser: nothing escapes but CaptureError."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from producers.captures.binance import BinanceHandler
from producers.captures.coinbase import CoinbaseHandler
from producers.captures.common import ReplayContext
from producers.captures.cryptofeed import parse_line, read_cryptofeed
from producers.captures.detect import sniff
from producers.captures.errors import CaptureError
from producers.captures.kraken import KrakenHandler
from producers.captures.native import iter_records
from producers.captures.tardis import BOOK_COLUMNS, parse_row
from tests.examples import examples

FUZZ = settings(max_examples=examples(150), deadline=None)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
numbers_as_text = st.from_regex(r"\A-?[0-9]{1,6}(\.[0-9]{0,8})?\Z") | st.sampled_from(
    ["nan", "inf", "0", "1e3"]
)
json_values = st.recursive(
    scalars | numbers_as_text,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)
levels = st.lists(st.lists(numbers_as_text | scalars, max_size=4), max_size=3) | json_values


def _handlers() -> list[Any]:
    ctx = ReplayContext()
    return [BinanceHandler(ctx), CoinbaseHandler(ctx), KrakenHandler(ctx)]


def _feed(message: Any) -> None:
    for handler in _handlers():
        try:
            handler.on_message(message, 1, "s")
        except CaptureError:
            pass


@FUZZ
@given(st.text(max_size=200))
def test_parse_line(text: str) -> None:
    try:
        parse_line(text)
    except CaptureError:
        pass


@FUZZ
@given(json_values)
def test_handlers_any_json(message: Any) -> None:
    _feed(message)


binance_like = st.fixed_dictionaries(
    {
        "e": st.sampled_from(["depthUpdate", "aggTrade", "trade"]),
        "s": st.sampled_from(["BTCUSDT", 5, ""]),
    },
    optional={k: json_values | levels for k in ("E", "U", "u", "b", "a", "p", "q", "T", "m", "t")},
)
COINBASE_KEYS = ("bids", "asks", "changes", "time", "side", "price", "size", "trade_id")
coinbase_like = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["snapshot", "l2update", "match", "last_match"]),
        "product_id": st.sampled_from(["BTC-USD", "BTCUSD", 3]),
    },
    optional={k: json_values | levels for k in COINBASE_KEYS},
)
kraken_like = st.tuples(
    st.integers(0, 5),
    st.lists(
        st.dictionaries(
            st.sampled_from(["as", "bs", "a", "b", "c"]), levels | json_values, max_size=3
        )
        | levels,
        min_size=1,
        max_size=2,
    ),
    st.sampled_from(["book-10", "book-x", "trade", "spread"]),
    st.sampled_from(["XBT/USD", "XBTUSD", 1]),
).map(lambda t: [t[0], *t[1], t[2], t[3]])


@FUZZ
@given(st.lists(binance_like | coinbase_like | kraken_like, min_size=1, max_size=6))
def test_handlers_venue_shaped(messages: list[Any]) -> None:
    handlers = _handlers()
    snapshot = {"lastUpdateId": 1, "bids": [["1", "1"]], "asks": [["2", "1"]]}
    handlers[0].on_http("https://x/api/v3/depth?symbol=BTCUSDT", snapshot, 0, "h")
    for message in messages:
        for handler in handlers:
            try:
                handler.on_message(message, 1, "s")
            except CaptureError:
                pass


@FUZZ
@given(st.text(max_size=120))
def test_tardis_row(text: str) -> None:
    for kind in ("book", "trades"):
        try:
            parse_row(text, kind, tuple(range(len(BOOK_COLUMNS))))  # type: ignore[arg-type]
        except CaptureError:
            pass


@FUZZ
@given(st.binary(max_size=200))
def test_native_records_and_sniff(data: bytes) -> None:
    sniff(data)
    try:
        for _ in iter_records(io.BytesIO(data), max_record_bytes=64):
            pass
    except CaptureError:
        pass


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.binary(max_size=80) | st.text(max_size=80).map(str.encode), max_size=8))
def test_whole_file_never_raises(lines: list[bytes]) -> None:
    prefix = (
        b"wss://ws.kraken.com <-> 1618678132.3\n"
        b'1618678134.0: [1,{"as":[["1.0","1.0","1.0"]],"bs":[]},"book-10","XBT/USD"]\n'
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "KRAKEN.ws.1.0"
        path.write_bytes(prefix + b"\n".join(lines))
        list(read_cryptofeed([path]))
