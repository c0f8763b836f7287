"""``mdgw replay --exchange-info``: Binance names the suffix rule cannot settle, and the
summary's list of names nothing could map."""

from __future__ import annotations

import json
from pathlib import Path

from mdgw.config import Config, KafkaConfig
from producers.replay import replay, run_replay
from tests.unit.kafka.memkafka import broker_for

KAFKA = KafkaConfig(partitions=1)


def capture(path: Path, natives: list[str]) -> Path:
    """A cryptofeed Binance capture: one aggTrade of each native name."""
    lines = ["wss://stream.binance.com:9443/stream?streams=x@aggTrade <-> 1633998511.15"]
    for i, native in enumerate(natives):
        data = {"e": "aggTrade", "E": 1633998523963 + i, "s": native, "a": 42 + i, "p": "1.5",
                "q": "2", "f": 1, "l": 1, "T": 1633998523963 + i, "m": True, "M": True}  # fmt: skip
        msg = {"stream": f"{native.lower()}@aggTrade", "data": data}
        lines.append(f"{1633998512.06 + i}: {json.dumps(msg)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def streams(broker, cfg: KafkaConfig) -> list[str]:
    return [r.key.decode() for r in broker.records(cfg.trades_topic)]


def test_longest_quote_by_default_and_exchange_info_decides(tmp_path: Path) -> None:
    path = capture(tmp_path / "BINANCE.ws.1.0", ["XRPBUSD", "XYZBUSD", "FOOBAR"])
    broker = broker_for(KAFKA)
    result = replay([str(path)], broker, Config(kafka=KAFKA), speed=0)
    assert streams(broker, KAFKA) == ["BINANCE:XRP-BUSD", "BINANCE:XYZ-BUSD"]
    [summary] = result.summaries
    assert [u.native for u in summary.unknown_symbols.values()] == ["FOOBAR"]
    assert "unknown BINANCE symbol 'FOOBAR'" in summary.format()
    info = {"symbols": [{"symbol": "XYZBUSD", "baseAsset": "XYZB", "quoteAsset": "USD"}]}
    broker = broker_for(KAFKA)
    result = replay([str(path)], broker, Config(kafka=KAFKA), speed=0, exchange_info=info)
    assert streams(broker, KAFKA) == ["BINANCE:XRP-BUSD", "BINANCE:XYZB-USD"]
    assert [u.native for u in result.summaries[0].unknown_symbols.values()] == ["FOOBAR"]


def test_a_bad_exchange_info_file_is_refused_before_any_record(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "info.json"
    bad.write_text('{"symbols": "none"}')
    code = run_replay(
        Config(kafka=KAFKA), ["unused"], speed=0, fmt=None, loop=False, progress=False,
        exchange_info=str(bad),
    )  # fmt: skip
    assert code == 2
    assert "not a Binance exchangeInfo answer" in capsys.readouterr().err
