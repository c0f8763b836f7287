"""Pure pieces shared by the connectors: symbols, snapshot requests, backoff, options."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from core.types import Exchange
from producers.connectors.backoff import Backoff
from producers.connectors.base import SnapshotRequests
from producers.connectors.errors import ConnectorConfigError, ConnectorError
from producers.connectors.options import ConnectorOptions
from producers.connectors.run import parse_venue
from producers.connectors.symbols import SubscribedSymbols, Subscription, native_symbol


class TestSymbols:
    @pytest.mark.parametrize(
        ("exchange", "native"),
        [
            (Exchange.BINANCE, "BTCUSDT"),
            (Exchange.COINBASE, "BTC-USDT"),
            (Exchange.KRAKEN, "BTC/USDT"),
        ],
    )
    def test_canonical_to_native(self, exchange: Exchange, native: str) -> None:
        assert native_symbol(exchange, "BTC-USDT") == native

    @pytest.mark.parametrize("bad", ["BTCUSDT", "btc-", "BTC/USD", "", "B-T-C"])
    def test_bad_canonical_is_a_config_error(self, bad: str) -> None:
        with pytest.raises(ConnectorConfigError):
            native_symbol(Exchange.BINANCE, bad)

    def test_build_normalizes_and_dedupes(self) -> None:
        sub = Subscription.build(Exchange.KRAKEN, [" btc-usd", "BTC-USD", "ETH-USD", ""])
        assert sub.canonical == ("BTC-USD", "ETH-USD")
        assert sub.native == ("BTC/USD", "ETH/USD")
        with pytest.raises(ConnectorConfigError):
            Subscription.build(Exchange.KRAKEN, [" "])

    def test_mapper_answers_only_for_subscribed_symbols(self) -> None:
        binance = SubscribedSymbols(Subscription.build(Exchange.BINANCE, ["BTC-USDT"]))
        assert binance.canonical(Exchange.BINANCE, "BTCUSDT") == "BTC-USDT"
        assert binance.canonical(Exchange.BINANCE, "ETHUSDT") is None  # listed, not subscribed
        assert binance.canonical(Exchange.COINBASE, "BTC-USDT") is None
        kraken = SubscribedSymbols(Subscription.build(Exchange.KRAKEN, ["BTC-USD"]))
        assert kraken.canonical(Exchange.KRAKEN, "BTC/USD") == "BTC-USD"
        assert kraken.canonical(Exchange.KRAKEN, "XBT/USD") == "BTC-USD"  # v1 spelling
        assert kraken.canonical(Exchange.KRAKEN, "XXBTZUSD") is None

    def test_venues(self) -> None:
        assert parse_venue(" Kraken ") is Exchange.KRAKEN
        with pytest.raises(ConnectorConfigError, match="unknown venue"):
            parse_venue("bitstamp")


class TestSnapshotRequests:
    def test_one_in_flight_per_stream_and_resend_after_timeout(self) -> None:
        r = SnapshotRequests(timeout_ns=100)
        r.want("A", 10)
        r.want("A", 5)  # earlier wins
        assert r.take_due(4) == [] and r.take_due(5) == ["A"]
        r.want("A", 6)  # in flight: ignored
        assert r.take_due(50) == [] and r.pending("A")
        assert r.take_due(105) == ["A"]  # unanswered for the timeout: sent again
        r.done("A")
        assert not r.pending("A") and r.take_due(10**9) == []

    def test_failed_reschedules_and_reset_forgets(self) -> None:
        r = SnapshotRequests(timeout_ns=100)
        r.mark_sent("B", 0)
        r.failed("B", retry_at_ns=30)
        assert r.take_due(29) == [] and r.take_due(30) == ["B"]
        r.reset()
        assert not r.pending("B")


class TestBackoff:
    def test_grows_caps_and_resets(self) -> None:
        b = Backoff(0.5, 4.0, factor=2.0, jitter=0.0)
        assert [b.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
        b.reset()
        assert b.next() == 0.5

    def test_jitter_stays_within_bounds(self) -> None:
        low = Backoff(1.0, 8.0, jitter=0.5, rand=lambda: 0.999999)
        high = Backoff(1.0, 8.0, jitter=0.5, rand=lambda: 0.0)
        assert 0.5 <= low.next() < 0.51 and high.next() == 1.0

    def test_no_overflow_after_many_attempts(self) -> None:
        b = Backoff(0.5, 30.0, jitter=0.0)
        assert max(b.next() for _ in range(5000)) == 30.0


class TestOptions:
    @pytest.mark.parametrize(
        "kwargs",
        [{"kraken_depth": 20}, {"snapshot_limit": 7}, {"tick": 0}, {"backoff_jitter": 2.0},
         {"idle_timeout": -1.0}],
    )  # fmt: skip
    def test_invalid_options(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ConnectorConfigError):
            ConnectorOptions(**kwargs)  # type: ignore[arg-type]

    def test_errors_share_one_root(self) -> None:
        assert issubclass(ConnectorConfigError, ConnectorError)
        assert not ConnectorConfigError.retriable


PURE = ["base", "binance", "coinbase", "kraken", "symbols", "backoff", "options", "stats", "errors"]
IO = ("asyncio", "socket", "websockets", "urllib.request", "http", "confluent_kafka", "time")


@pytest.mark.parametrize("name", PURE)
def test_handler_modules_do_no_io(name: str) -> None:
    """Only runner.py and run.py may touch the network, the event loop or the clock."""
    module = importlib.import_module(f"producers.connectors.{name}")
    tree = ast.parse(Path(str(module.__file__)).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    bad = {m for m in imported for io in IO if m == io or m.startswith(io + ".")}
    assert not bad, f"{name} imports {bad}"
