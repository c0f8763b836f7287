"""Hardening of the REST service: Kafka's error texts stay in the log."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError

from api.state import StateStore
from core.book import OrderBook
from mdgw import history
from mdgw.history import HistoryError, kafka_boundary
from mdgw.kafka.client import source_error

LEAK = "GroupCoordinator broker-7.internal:9093 (id: 7) SASL authentication failed"


class FailingHistory(StateStore):
    """A store whose history read fails the way the Kafka client fails."""

    async def book_at(self, stream: str, at_ns: int) -> OrderBook:
        with kafka_boundary(f"history of {stream}"):
            raise source_error(KafkaError(KafkaError._TRANSPORT, LEAK))  # as KafkaSource raises it
        raise AssertionError("unreachable")


def test_kafka_error_text_is_logged_never_sent(
    make_client, market, caplog: pytest.LogCaptureFixture
) -> None:
    c = make_client(state=FailingHistory(market))
    with caplog.at_level(logging.WARNING, logger="mdgw.history"):
        r = c.get("/api/v1/orderbook/BINANCE:BTC-USDT?at=1000000000")
    assert r.status_code == 503
    assert r.json() == {"error": "History temporarily unavailable"}
    assert r.headers["Retry-After"] == "1"
    assert "broker-7" not in r.text and "SASL" not in r.text
    assert LEAK in caplog.text


def test_history_errors_carry_a_generic_message() -> None:
    with pytest.raises(HistoryError) as e, kafka_boundary("x"):
        raise source_error(KafkaError(KafkaError._TRANSPORT, LEAK))  # as KafkaSource raises it
    assert e.value.code == "kafka" and str(e.value) == history.UNAVAILABLE


def test_both_services_listen_on_loopback_by_default() -> None:
    from mdgw.config import load_config

    cfg = load_config(env={})
    assert cfg.gateway.host == "127.0.0.1" and cfg.api.host == "127.0.0.1"
    assert cfg.api.cors_origins == ()


def test_dashboard_config_names_the_allowed_ws_hosts(client, make_client) -> None:
    assert client.get("/dashboard.json").json() == {"ws_hosts": [], "traces": False}
    c = make_client(dashboard_ws_hosts=("gw.example:8080",))
    assert c.get("/dashboard.json").json() == {"ws_hosts": ["gw.example:8080"], "traces": False}
