"""Every error path answers ``{"error": "..."}`` with the right status."""

from __future__ import annotations

import logging

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.state import StateStore
from core.market import Market

Client = TestClient[Litestar]
BOOK = "/api/v1/orderbook/BINANCE:BTC-USDT"


def error(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-cache"
    body = r.json()
    assert list(body) == ["error"] and isinstance(body["error"], str) and body["error"]
    return body["error"]


@pytest.mark.parametrize("depth", ["0", "1001", "abc", "-1", "2.5", ""])
def test_bad_depth_is_400_with_a_clear_message(client: Client, depth: str) -> None:
    assert error(client.get(f"{BOOK}?depth={depth}"), 400) == (
        "depth must be an integer from 1 to 1000"
    )


@pytest.mark.parametrize("depth", ["0", "1001", "x"])
def test_bad_depth_on_the_aggregated_book(client: Client, depth: str) -> None:
    assert "depth" in error(client.get(f"/api/v1/orderbook/aggregated/BTC-USD?depth={depth}"), 400)


@pytest.mark.parametrize("limit", ["0", "1001", "many"])
def test_bad_trade_limit_is_400(client: Client, limit: str) -> None:
    msg = error(client.get(f"/api/v1/trades/KRAKEN:BTC-USD?limit={limit}"), 400)
    assert msg == "limit must be an integer from 1 to 1000"


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("/api/v1/orderbook/BTC-USD?exchange=NYSE", "unknown exchange"),
        ("/api/v1/orderbook/BINANCE:BTC-USDT?exchange=KRAKEN", "contradicts"),
        ("/api/v1/orderbook/BTC-USD", "BTC-USD is listed by COINBASE, KRAKEN: name the venue"),
        ("/api/v1/orderbook/BTC-USDT", "listed by BINANCE"),  # explicit even when unique
        ("/api/v1/orderbook/aggregated/BTC-USD?exchanges=KRAKEN,NYSE", "unknown exchange"),
        ("/api/v1/trades/BTC-USD?exchange=NYSE", "unknown exchange"),
        ("/api/v1/stats/BTC-USD?exchange=nyse", "unknown exchange"),
    ],
)
def test_bad_names_are_400(client: Client, url: str, words: str) -> None:
    assert words in error(client.get(url), 400)


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/orderbook/BINANCE:DOGE-USDT",
        "/api/v1/orderbook/DOGE-USDT?exchange=BINANCE",
        "/api/v1/orderbook/KRAKEN:BTC-USDT",
        "/api/v1/orderbook/DOGE-USD",  # no venue named, and none lists it
        "/api/v1/orderbook/NYSE:BTC-USD",  # a path naming no venue names no stream
        "/api/v1/orderbook/BINANCE:",
        "/api/v1/orderbook/:BTC-USD",
        "/api/v1/trades/NYSE:BTC-USD",
        "/api/v1/stats/nyse:BTC-USD",
        "/api/v1/orderbook/aggregated/DOGE-USD",
        "/api/v1/orderbook/aggregated/KRAKEN:BTC-USD",
        "/api/v1/trades/COINBASE:DOGE-USD",
        "/api/v1/trades/DOGE-USD",
        "/api/v1/stats/KRAKEN:DOGE-USD",
        "/api/v1/stats/DOGE-USD",
    ],
)
def test_unknown_symbol_is_404_symbol_not_found(client: Client, url: str) -> None:
    assert error(client.get(url), 404) == "Symbol not found"


@pytest.mark.parametrize(
    "url", ["/nope", "/api/v1/nope", "/api/v2/symbols", "/api/v1/orderbook/a/b/c", "/x/../../etc"]
)
def test_unknown_route_is_404_without_details(client: Client, url: str) -> None:
    msg = error(client.get(url), 404)
    assert msg == "Not Found"  # never the static router's resolved file path


def test_wrong_method_is_405(client: Client) -> None:
    r = client.post("/api/v1/symbols")
    assert error(r, 405) == "Method Not Allowed"
    assert "GET" in r.headers["allow"]
    assert error(client.delete(BOOK), 405) == "Method Not Allowed"


def test_unexpected_exception_is_500_and_logged(
    make_client, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Market):
        def streams(self) -> list[str]:
            raise RuntimeError("boom")

    c = make_client(state=StateStore(Broken()))
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        assert error(c.get("/api/v1/symbols"), 500) == "Internal server error"
    assert "boom" in caplog.text  # the traceback is in the log, not in the answer


def test_not_ready_before_the_snapshots_are_loaded(make_client, market: Market) -> None:
    state = StateStore(market)
    state.bootstrapped = False
    c = make_client(state=state)
    assert "snapshot topic" in error(c.get("/ready"), 503)
    assert "snapshot topic" in error(c.get(BOOK), 503)
    assert error(c.get("/api/v1/symbols"), 503)
    assert c.get("/health").json() == {"status": "healthy"}
    assert c.get("/api/v1/feeds").status_code == 200  # diagnostics work while loading
    assert c.get("/api/v1/metrics").json()["ready"] is False
    state.bootstrapped = True
    assert c.get("/ready").status_code == 200
    assert c.get(BOOK).status_code == 200


def test_not_ready_while_kafka_is_unreachable(make_client, market: Market) -> None:
    state = StateStore(market)
    state.kafka_ok = False
    c = make_client(state=state)
    assert "Kafka" in error(c.get("/ready"), 503)
    state.kafka_ok = True
    assert c.get("/ready").status_code == 200
