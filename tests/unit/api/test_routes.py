"""Every route of docs/protocol.md §6 and its shape, over an in-memory Market."""

from __future__ import annotations

import struct
import zlib

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import STATIC_DIR, create_app
from api.models import OrderBookBody
from api.state import StateStore
from core.market import Market
from core.types import BookUpdate, Exchange, Statistics
from tests.unit.api.apidata import BINANCE_ASKS, BINANCE_BIDS, NOW, make_config

Client = TestClient[Litestar]
BOOK_KEYS = {"exchange", "symbol", "timestamp", "sequence", "checksum", "bids", "asks", "status"}


def contract_checksum(bids: list[list[float]], asks: list[list[float]]) -> int:
    """docs/protocol.md §5, verbatim."""
    return zlib.crc32(b"".join(struct.pack("<dd", p, q) for p, q in asks[:10] + bids[:10]))


def test_orderbook_shape_and_headers(client: Client) -> None:
    r = client.get("/api/v1/orderbook/BINANCE:BTC-USDT?depth=3")
    assert r.status_code == 200
    body = r.json()
    assert list(body) == list(OrderBookBody.__struct_fields__)  # what /schema documents
    assert set(body) == BOOK_KEYS
    assert body["exchange"] == "BINANCE" and body["symbol"] == "BTC-USDT"
    assert body["sequence"] == 101 and body["timestamp"] == NOW + 101
    assert body["status"] == "live"
    assert body["bids"] == [[97000.0, 5.5], [96999.0, 1.1], [96998.0, 1.2]]
    assert body["asks"] == [[97001.0, 2.0], [97002.0, 2.1], [97003.0, 2.2]]
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["content-type"] == "application/json"
    assert r.headers["etag"] == '"BINANCE:BTC-USDT-101-3"'


@pytest.mark.parametrize("depth", [1, 2, 5, 9, 10, 11, 20, 100, 1000])
def test_orderbook_checksum_is_contract_5_over_the_answer(client: Client, depth: int) -> None:
    body = client.get(f"/api/v1/orderbook/BINANCE:BTC-USDT?depth={depth}").json()
    assert len(body["bids"]) == min(depth, len(BINANCE_BIDS))
    assert len(body["asks"]) == min(depth, len(BINANCE_ASKS))
    assert body["checksum"] == contract_checksum(body["bids"], body["asks"])


def test_orderbook_default_depth_is_20(client: Client) -> None:
    body = client.get("/api/v1/orderbook/BINANCE:BTC-USDT").json()
    assert len(body["bids"]) == len(body["asks"]) == 20


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/orderbook/BTC-USDT?exchange=BINANCE",
        "/api/v1/orderbook/btc-usdt?exchange=binance",
        "/api/v1/orderbook/binance:btc-usdt",
        "/api/v1/orderbook/BINANCE:BTC-USDT?exchange=BINANCE",
    ],
)
def test_orderbook_names(client: Client, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 200
    assert (r.json()["exchange"], r.json()["symbol"]) == ("BINANCE", "BTC-USDT")


def test_stale_book_is_served_and_says_so(client: Client) -> None:
    body = client.get("/api/v1/orderbook/KRAKEN:ETH-USD").json()
    assert body["status"] == "stale" and body["sequence"] == 10


def test_if_none_match_gives_304_until_the_book_moves(make_client, market: Market) -> None:
    client = make_client()
    url = "/api/v1/orderbook/BINANCE:BTC-USDT?depth=5"
    etag = client.get(url).headers["etag"]
    r = client.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.content == b""
    assert r.headers["etag"] == etag and r.headers["cache-control"] == "no-cache"
    assert client.get(url, headers={"If-None-Match": f'"other", W/{etag}'}).status_code == 304
    assert client.get(url.replace("5", "6"), headers={"If-None-Match": etag}).status_code == 200
    market.apply_book(BookUpdate(Exchange.BINANCE, "BTC-USDT", NOW, 102, asks=[(97001.0, 0)]), NOW)
    r = client.get(url, headers={"If-None-Match": etag})
    assert r.status_code == 200 and r.headers["etag"] != etag
    assert r.json()["asks"][0] == [97002.0, 2.1]


def test_aggregated_book(client: Client) -> None:
    r = client.get("/api/v1/orderbook/aggregated/BTC-USD?depth=2")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    body = r.json()
    assert body["symbol"] == "BTC-USD"
    assert body["exchanges"] == ["COINBASE", "KRAKEN"]
    assert body["bids"] == [
        [96990.0, 1.5, {"COINBASE": 1.0, "KRAKEN": 0.5}],
        [96989.0, 2.0, {"COINBASE": 2.0}],
    ]
    assert body["asks"] == [
        [96995.0, 1.75, {"COINBASE": 1.5, "KRAKEN": 0.25}],
        [96996.0, 0.5, {"COINBASE": 0.5}],
    ]
    totals = ([[p, q] for p, q, _ in body["bids"]], [[p, q] for p, q, _ in body["asks"]])
    assert body["checksum"] == contract_checksum(*totals)
    assert isinstance(body["timestamp"], int) and body["sequence"] >= 1


def test_aggregated_book_restricted_to_venues(client: Client) -> None:
    body = client.get("/api/v1/orderbook/aggregated/BTC-USD?depth=2&exchanges=kraken").json()
    assert body["exchanges"] == ["KRAKEN"]
    assert body["bids"] == [[96990.0, 0.5, {"KRAKEN": 0.5}], [96988.0, 3.0, {"KRAKEN": 3.0}]]
    assert body["asks"] == [[96995.0, 0.25, {"KRAKEN": 0.25}], [96997.0, 1.0, {"KRAKEN": 1.0}]]
    totals = ([[p, q] for p, q, _ in body["bids"]], [[p, q] for p, q, _ in body["asks"]])
    assert body["checksum"] == contract_checksum(*totals)
    both = client.get("/api/v1/orderbook/aggregated/BTC-USD?exchanges=KRAKEN,COINBASE").json()
    assert both["bids"] == client.get("/api/v1/orderbook/aggregated/BTC-USD").json()["bids"]


def test_aggregated_etag_304(client: Client) -> None:
    url = "/api/v1/orderbook/aggregated/BTC-USD?depth=2"
    etag = client.get(url).headers["etag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_trades_of_one_venue_newest_first(client: Client) -> None:
    r = client.get("/api/v1/trades/KRAKEN:BTC-USD?limit=3")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    body = r.json()
    assert body["symbol"] == "BTC-USD" and body["exchange"] == "KRAKEN"
    assert [t["trade_id"] for t in body["trades"]] == ["k4", "k3", "k2"]
    assert set(body["trades"][0]) == {
        "exchange",
        "trade_id",
        "price",
        "quantity",
        "side",
        "timestamp",
    }
    assert body["trades"][0] == {
        "exchange": "KRAKEN",
        "trade_id": "k4",
        "price": 96991.0,
        "quantity": 0.2,
        "side": "sell",
        "timestamp": NOW + 45,
    }


def test_trades_of_every_venue_merged_by_time(client: Client) -> None:
    body = client.get("/api/v1/trades/BTC-USD?limit=4").json()
    assert body["exchange"] == ""
    assert [t["trade_id"] for t in body["trades"]] == ["k4", "c4", "k3", "c3"]
    stamps = [t["timestamp"] for t in client.get("/api/v1/trades/BTC-USD").json()["trades"]]
    assert stamps == sorted(stamps, reverse=True) and len(stamps) == 10


def test_trades_default_limit_and_with_exchange_param(client: Client) -> None:
    body = client.get("/api/v1/trades/BTC-USD?exchange=COINBASE").json()
    assert [t["trade_id"] for t in body["trades"]] == ["c4", "c3", "c2", "c1", "c0"]


def test_trades_of_a_book_without_trades_is_empty(client: Client) -> None:
    assert client.get("/api/v1/trades/BINANCE:BTC-USDT").json()["trades"] == []


def test_stats_of_one_venue(client: Client) -> None:
    r = client.get("/api/v1/stats/COINBASE:BTC-USD")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    body = r.json()
    assert set(body) == set(Statistics.__slots__)  # type: ignore[attr-defined]
    assert body["exchange"] == "COINBASE" and body["symbol"] == "BTC-USD"
    assert body["trade_count"] == 5 and body["open"] == 96990.0 and body["last"] == 96994.0
    assert body["best_bid"] == 96990.0 and body["best_ask"] == 96995.0
    assert body["spread"] == 5.0


def test_stats_of_a_symbol_over_every_venue(client: Client) -> None:
    body = client.get("/api/v1/stats/BTC-USD").json()
    assert body["exchange"] == "" and body["trade_count"] == 10
    assert client.get("/api/v1/stats/BTC-USD?exchange=KRAKEN").json()["trade_count"] == 5


def test_symbols(client: Client) -> None:
    r = client.get("/api/v1/symbols")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-cache"
    rows = {(s["exchange"], s["symbol"]): s for s in r.json()}
    assert set(rows) == {
        ("BINANCE", "BTC-USDT"),
        ("COINBASE", "BTC-USD"),
        ("KRAKEN", "BTC-USD"),
        ("KRAKEN", "ETH-USD"),
    }
    assert rows[("BINANCE", "BTC-USDT")] == {
        "exchange": "BINANCE",
        "symbol": "BTC-USDT",
        "sequence": 101,
        "timestamp": NOW + 101,
        "status": "live",
    }
    assert rows[("KRAKEN", "ETH-USD")]["status"] == "stale"


def test_feeds(client: Client) -> None:
    body = client.get("/api/v1/feeds").json()
    feeds = {f["stream"]: f for f in body["feeds"]}
    assert set(feeds) == {
        "BINANCE:BTC-USDT",
        "COINBASE:BTC-USD",
        "KRAKEN:BTC-USD",
        "KRAKEN:ETH-USD",
    }
    eth = feeds["KRAKEN:ETH-USD"]
    assert eth["status"] == "stale" and eth["gaps"] == 1 and eth["stale_reason"] == "sequence gap"
    btc = feeds["BINANCE:BTC-USDT"]
    assert btc["status"] == "live" and btc["sequence"] == 101 and btc["updates"] == 1
    assert btc["snapshots"] == 1 and btc["checksum_failures"] == 0
    assert btc["age_ms"] > 0 and btc["lag"] is None
    assert body["lag_total"] == 0


def test_system_metrics(client: Client) -> None:
    body = client.get("/api/v1/metrics").json()
    assert body["streams"] == 4 and body["stale_streams"] == 1 and body["symbols"] == 3
    assert body["ready"] is True and body["rss_bytes"] > 1_000_000 and body["uptime_s"] >= 0
    for key in ("records_consumed", "records_applied", "dlq", "lag_total", "threads"):
        assert isinstance(body[key], int)


def test_prometheus_metrics_count_requests_by_route_template(client: Client) -> None:
    client.get("/api/v1/orderbook/BINANCE:BTC-USDT")
    client.get("/api/v1/orderbook/COINBASE:BTC-USD")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert r.headers["content-type"].count("charset") == 1
    assert (
        'api_requests_total{method="GET",route="/api/v1/orderbook/{symbol}",status="200"}' in r.text
    )
    assert "BINANCE:BTC-USDT" not in r.text  # the raw path never becomes a label


def test_health_and_ready(client: Client) -> None:
    assert client.get("/health").json() == {"status": "healthy"}
    r = client.get("/ready")
    assert r.status_code == 200 and r.json()["status"] == "ready" and r.json()["streams"] == 4


def test_dashboard_index_served_at_root(client: Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == (STATIC_DIR / "index.html").read_text()


def test_gzip_for_large_answers_only(client: Client) -> None:
    big = client.get(
        "/api/v1/orderbook/BINANCE:BTC-USDT?depth=100", headers={"Accept-Encoding": "gzip"}
    )
    assert big.headers.get("content-encoding") == "gzip" and big.json()["sequence"] == 101
    small = client.get("/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers


def test_cors_is_off_unless_configured(client: Client, make_client) -> None:
    preflight = {
        "Origin": "https://example.org",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "X-API-Key",
    }
    r = client.get("/api/v1/symbols", headers={"Origin": "https://example.org"})
    assert "access-control-allow-origin" not in r.headers
    r = client.options("/api/v1/symbols", headers=preflight)
    assert "access-control-allow-origin" not in r.headers
    c = make_client(cors_origins=("https://example.org",))
    r = c.options("/api/v1/symbols", headers=preflight)
    assert r.status_code in (200, 204)
    assert r.headers["access-control-allow-origin"] == "https://example.org"


def test_cors_origins_from_config(make_client) -> None:
    c = make_client(cors_origins=("https://dash.example",))
    ok = c.get("/api/v1/symbols", headers={"Origin": "https://dash.example"})
    assert ok.headers["access-control-allow-origin"] == "https://dash.example"
    other = c.get("/api/v1/symbols", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_the_api_serves_no_bench_route_and_extra_routes_on_request(market: Market) -> None:
    from bench.api_server import BENCH_ROUTES

    with TestClient(create_app(make_config(rate_limit=0), StateStore(market))) as plain:
        assert plain.get("/bench/const").status_code == 404
    app = create_app(make_config(rate_limit=0), StateStore(market), extra_routes=BENCH_ROUTES)
    with TestClient(app) as bench:
        r = bench.get("/bench/const")
        assert r.status_code == 200 and r.json() == {"status": "ok"}
        assert bench.get("/api/v1/symbols").status_code == 200
