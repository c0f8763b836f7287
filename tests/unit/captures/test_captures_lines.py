"""cryptofeed line parsing and the time helpers."""

from __future__ import annotations

import pytest

from producers.captures.common import iso_to_ns, seconds_to_ns
from producers.captures.cryptofeed import parse_line
from producers.captures.errors import CorruptLineError


def test_connect_line() -> None:
    line = parse_line("wss://ws.kraken.com <-> 1618678132.368463")
    assert line is not None
    assert (line.kind, line.url, line.recv_ns) == (
        "connect",
        "wss://ws.kraken.com",
        1618678132368463000,
    )


def test_sent_received_http_config() -> None:
    sent = parse_line('wss://ws.kraken.com <- 1618678132.83097: {"event":"subscribe"}')
    assert sent is not None and sent.kind == "sent" and sent.payload == {"event": "subscribe"}
    recv = parse_line(
        '1618678142.592855: [993,[["354.1","0.8","1.0","s","l",""]],"trade","XMR/USD"]'
    )
    assert recv is not None and recv.kind == "received" and recv.payload[0] == 993
    http = parse_line("https://api.binance.com/api/v3/depth?symbol=X -> 1633998512.320639: {}")
    assert http is not None and http.kind == "http" and http.url.endswith("symbol=X")
    conf = parse_line('configuration: {"trades":["NKN-USDT"]}')
    assert conf is not None and conf.kind == "config" and conf.recv_ns is None


def test_big_integers_parse() -> None:
    line = parse_line('1.5: {"connectionID":18239578009413566319,"x":123456789012345678901234}')
    assert line is not None and line.payload["connectionID"] == 18239578009413566319


@pytest.mark.parametrize(
    "text",
    ['1618678142.59: {"a":', "garbage", "abc: {}", "wss://x <-> notatime", "1.5: ", "1.5 {}"],
)
def test_corrupt(text: str) -> None:
    with pytest.raises(CorruptLineError):
        parse_line(text)


def test_blank() -> None:
    assert parse_line("   ") is None


def test_seconds_to_ns_exact() -> None:
    assert seconds_to_ns("1633998512.0633569") == 1633998512063356900
    assert seconds_to_ns("1618678133") == 1618678133000000000
    assert seconds_to_ns("1.1234567891234") == 1123456789
    for bad in ("-1", "1e9", "", "1.2.3", None, True):
        with pytest.raises(CorruptLineError):
            seconds_to_ns(bad)


def test_iso_to_ns_exact() -> None:
    assert iso_to_ns("2021-04-17T16:43:30.244075Z") == 1618677810244075000
    assert iso_to_ns("2021-04-17T16:43:30Z") == 1618677810000000000
    assert iso_to_ns("2021-04-17T18:43:30.5+02:00") == 1618677810500000000
    for bad in ("2021-13-01T00:00:00Z", "yesterday", 5):
        with pytest.raises(CorruptLineError):
            iso_to_ns(bad)
