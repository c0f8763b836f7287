"""Client control messages: every op parses, every malformed input has its error code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.protocol import ProtocolError, parse_request, parse_time


def test_subscribe_defaults_and_fields() -> None:
    r = parse_request('{"op":"subscribe","id":1,"channel":"book","symbols":["BINANCE:BTC-USDT"]}')
    assert (r.op, r.id, r.channel, r.symbols, r.depth, r.speed) == (
        "subscribe",
        1,
        "book",
        ("BINANCE:BTC-USDT",),
        20,
        "raw",
    )
    r = parse_request(
        '{"op":"subscribe","id":"a","channel":"aggregated_book","symbols":'
        '["BTC-USD","BTC-USD"],"depth":0,"speed":"100ms"}'
    )
    assert (r.symbols, r.depth, r.speed) == (("BTC-USD",), 0, "100ms")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{", "bad_request"),
        ("[]", "bad_request"),
        ('{"id":1}', "bad_request"),
        ('{"op":"x"}', "unknown_op"),
        ('{"op":"subscribe","channel":"x","symbols":["KRAKEN:BTC-USD"]}', "unknown_channel"),
        ('{"op":"subscribe","channel":"book","symbols":["BTC-USD"]}', "unknown_symbol"),
        ('{"op":"subscribe","channel":"book","symbols":"KRAKEN:BTC-USD"}', "bad_request"),
        ('{"op":"subscribe","channel":"book","symbols":[1]}', "bad_request"),
        (
            '{"op":"subscribe","channel":"book","symbols":["KRAKEN:BTC-USD"],"depth":true}',
            "bad_request",
        ),
        (
            '{"op":"subscribe","channel":"book","symbols":["KRAKEN:BTC-USD"],"depth":25}',
            "bad_request",
        ),
        (
            '{"op":"subscribe","id":{"a":1},"channel":"book","symbols":["KRAKEN:BTC-USD"]}',
            "bad_request",
        ),
        ('{"op":"auth","token":""}', "bad_request"),
        ('{"op":"replay","channel":"stats","symbols":["KRAKEN:BTC-USD"],"from":1}', "bad_request"),
        (
            '{"op":"replay","channel":"book","symbols":["KRAKEN:BTC-USD"],"from":5,"to":4}',
            "bad_request",
        ),
        (
            '{"op":"replay","channel":"book","symbols":["KRAKEN:BTC-USD"],"from":"2026-01-01"}',
            "bad_request",
        ),
        (
            '{"op":"replay","channel":"book","symbols":["KRAKEN:BTC-USD"],"from":1,"speed":-1}',
            "bad_request",
        ),
    ],
)
def test_refusals_carry_contract_codes(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(text)
    assert info.value.code == code


def test_refusal_echoes_the_id_when_readable() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request('{"op":"nope","id":42}')
    assert info.value.req_id == 42


def test_replay_times() -> None:
    r = parse_request(
        '{"op":"replay","id":1,"channel":"book","symbols":["KRAKEN:BTC-USD"],'
        '"from":"2026-11-25T10:00:00Z","to":"live","speed":10}'
    )
    assert r.from_ns == 1_795_600_800 * 10**9 and r.to_ns is None and r.replay_speed == 10
    assert parse_time("1795600800000000000", "at", None) == 1_795_600_800 * 10**9
    assert parse_time("2026-11-25T11:00:00+01:00", "at", None) == 1_795_600_800 * 10**9


@given(st.text(max_size=300))
def test_any_text_is_parsed_or_refused_cleanly(text: str) -> None:
    try:
        parse_request(text)
    except ProtocolError:
        pass


def test_bbo_takes_streams_and_canonical_symbols() -> None:
    r = parse_request('{"op":"subscribe","channel":"bbo","symbols":["BINANCE:BTC-USDT","BTC-USD"]}')
    assert (r.channel, r.symbols, r.since) == ("bbo", ("BINANCE:BTC-USDT", "BTC-USD"), None)


def test_since_one_sequence_or_a_map() -> None:
    r = parse_request('{"op":"subscribe","channel":"book","symbols":["KRAKEN:BTC-USD"],"since":7}')
    assert r.since == {"KRAKEN:BTC-USD": 7}
    r = parse_request(
        '{"op":"subscribe","channel":"aggregated_book","symbols":["BTC-USD","ETH-USD"],'
        '"since":{"ETH-USD":3}}'
    )
    assert r.since == {"ETH-USD": 3}


@pytest.mark.parametrize(
    "since",
    ["-1", "true", '"7"', "1.5", '{"KRAKEN:ETH-USD":1}', "18446744073709551616"],
)
def test_since_refusals(since: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(
            '{"op":"subscribe","channel":"book","symbols":["KRAKEN:BTC-USD"],"since":' + since + "}"
        )
    assert info.value.code == "bad_request"


@pytest.mark.parametrize(
    "text",
    [
        '{"op":"subscribe","channel":"book","symbols":["KRAKEN:BTC-USD","KRAKEN:ETH-USD"],'
        '"since":3}',
        '{"op":"subscribe","channel":"trades","symbols":["KRAKEN:BTC-USD"],"since":3}',
        '{"op":"subscribe","channel":"bbo","symbols":["BTC-USD"],"since":3}',
    ],
)
def test_since_only_for_one_book_view_or_a_map(text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_request(text)
    assert info.value.code == "bad_request"
