"""API keys, open paths, client addresses behind proxies, and the per-IP rate limit."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from litestar.middleware.rate_limit import CacheObject
from prometheus_client import REGISTRY

from api.app import create_app
from api.security import (
    ApiKeys,
    LocalRateLimitMiddleware,
    client_ip,
    is_open,
    load_digests,
    parse_networks,
    rate_limit_config,
)
from api.state import StateStore
from core.market import Market
from mdgw.config import AuthConfig, ConfigError
from tests.unit.api.apidata import API_KEY, API_KEY_DIGEST, make_config

KEYS = {"auth": {"api_keys": (API_KEY_DIGEST,)}}


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# ---- API keys ------------------------------------------------------------------------


def test_without_configured_keys_everything_is_open(client) -> None:
    assert client.get("/api/v1/symbols").status_code == 200


def test_missing_key_is_401(make_client) -> None:
    c = make_client(**KEYS)
    before = counter("auth_failures_total", where="api", reason="missing")
    r = c.get("/api/v1/symbols")
    assert r.status_code == 401
    assert r.json() == {"error": "Missing API key: send a valid key in the X-API-Key header"}
    assert counter("auth_failures_total", where="api", reason="missing") == before + 1


def test_wrong_key_is_401_and_the_key_is_never_logged(
    make_client, caplog: pytest.LogCaptureFixture
) -> None:
    c = make_client(**KEYS)
    before = counter("auth_failures_total", where="api", reason="invalid")
    with caplog.at_level(logging.WARNING, logger="api.security"):
        r = c.get("/api/v1/orderbook/BINANCE:BTC-USDT", headers={"X-API-Key": "guess-123"})
    assert r.status_code == 401 and r.json()["error"].startswith("Invalid API key")
    assert counter("auth_failures_total", where="api", reason="invalid") == before + 1
    assert "invalid API key" in caplog.text and "/api/v1/orderbook" in caplog.text
    assert "guess-123" not in caplog.text


def test_valid_key_is_accepted_on_every_api_route(make_client) -> None:
    c = make_client(**KEYS)
    h = {"X-API-Key": API_KEY}
    for url in (
        "/api/v1/orderbook/BINANCE:BTC-USDT",
        "/api/v1/orderbook/aggregated/BTC-USD",
        "/api/v1/trades/BTC-USD",
        "/api/v1/stats/BTC-USD",
        "/api/v1/symbols",
        "/api/v1/feeds",
        "/api/v1/metrics",
    ):
        assert c.get(url, headers=h).status_code == 200, url
        assert c.get(url).status_code == 401, url


def test_open_paths_stay_open_with_keys(make_client) -> None:
    c = make_client(**KEYS)
    for url in ("/health", "/ready", "/metrics", "/schema/openapi.json", "/schema", "/"):
        assert c.get(url).status_code == 200, url


def test_an_api_route_can_be_opened_by_config(make_client) -> None:
    c = make_client(**KEYS, open_paths=("/health", "/api/v1/symbols"))
    assert c.get("/api/v1/symbols").status_code == 200
    assert c.get("/api/v1/feeds").status_code == 401


def test_openapi_documents_the_key_only_when_keys_are_on(make_client) -> None:
    on = make_client(**KEYS).get("/schema/openapi.json").json()
    scheme = on["components"]["securitySchemes"]["ApiKey"]
    assert scheme == {
        "type": "apiKey",
        "name": "X-API-Key",
        "in": "header",
        "description": scheme["description"],
    }
    assert on["paths"]["/api/v1/symbols"]["get"]["security"] == [{"ApiKey": []}]
    off = make_client().get("/schema/openapi.json").json()
    assert "securitySchemes" not in off.get("components", {})


def test_key_file_with_comments_and_case(tmp_path: Path) -> None:
    other = hashlib.sha256(b"other").hexdigest()
    f = tmp_path / "keys"
    f.write_text(f"# ops keys\n{API_KEY_DIGEST.upper()}\n\n  {other}  \n")
    digests = load_digests(AuthConfig(api_keys_file=str(f)))
    assert digests == {API_KEY_DIGEST, other}
    keys = ApiKeys(digests)
    assert keys.refusal(API_KEY) is None and keys.refusal("other") is None
    assert keys.refusal("nope") == "invalid" and keys.refusal("") == "missing"


@pytest.mark.parametrize("entry", ["my-plain-key", "abc", API_KEY_DIGEST[:-1] + "g"])
def test_plain_keys_in_the_config_are_refused_without_echoing_them(entry: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_digests(AuthConfig(api_keys=(entry,)))
    assert entry not in str(e.value) and "digest" in str(e.value)


def test_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="api_keys_file"):
        load_digests(AuthConfig(api_keys_file=str(tmp_path / "absent")))


def test_create_app_refuses_a_plain_key() -> None:
    with pytest.raises(ConfigError):
        create_app(make_config(auth={"api_keys": ("plain",)}), StateStore(Market()))


@pytest.mark.parametrize(
    ("path", "opened"),
    [
        ("/health", True),
        ("/schema/openapi.json", True),
        ("/", True),
        ("/api/v1/x", False),
        ("/healthz", False),
        ("/metricsx", False),
    ],
)
def test_is_open(path: str, opened: bool) -> None:
    assert is_open(path, ("/health", "/ready", "/metrics", "/schema", "/")) is opened


# ---- client address ---------------------------------------------------------------------

PROXIES = parse_networks(["10.0.0.0/8", "fd00::1"])


@pytest.mark.parametrize(
    ("peer", "xff", "expected"),
    [
        ("203.0.113.9", None, "203.0.113.9"),
        ("203.0.113.9", "1.2.3.4", "203.0.113.9"),  # untrusted peer: header ignored
        ("10.1.2.3", "1.2.3.4", "1.2.3.4"),
        ("10.1.2.3", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # the left part is client-supplied
        ("10.1.2.3", "1.2.3.4, 10.9.9.9", "1.2.3.4"),  # chained trusted proxies skipped
        ("10.1.2.3", "10.9.9.9, 10.8.8.8", "10.9.9.9"),  # all trusted: leftmost
        ("10.1.2.3", "not-an-ip", "10.1.2.3"),  # junk is not a free rate-limit key
        ("10.1.2.3", "", "10.1.2.3"),
        ("fd00::1", "2001:db8::7", "2001:db8::7"),
        (None, "1.2.3.4", "unknown"),
    ],
)
def test_client_ip(peer: str | None, xff: str | None, expected: str) -> None:
    assert client_ip(peer, xff, PROXIES) == expected


def test_client_ip_without_trusted_proxies_is_the_peer() -> None:
    assert client_ip("10.1.2.3", "1.2.3.4", ()) == "10.1.2.3"


def test_bad_trusted_proxy_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        parse_networks(["10.0.0.0/8", "proxy.local"])
    assert parse_networks(["10.0.0.1"]) == (ipaddress.ip_network("10.0.0.1/32"),)


# ---- rate limit --------------------------------------------------------------------------


def test_burst_over_the_limit_is_429_with_retry_after(
    make_client, caplog: pytest.LogCaptureFixture
) -> None:
    c = make_client(rate_limit=5)
    before = counter("rate_limited_total", where="api")
    # 16 requests within < 1 s span at most two 1-second windows (10 allowed).
    with caplog.at_level(logging.WARNING, logger="api.security"):
        answers = [c.get("/api/v1/symbols") for _ in range(16)]
    refused = [r for r in answers if r.status_code == 429]
    assert refused, [r.status_code for r in answers]
    r = refused[0]
    assert r.json() == {"error": "Too many requests: slow down and retry after Retry-After seconds"}
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["ratelimit-limit"] == "5"
    assert counter("rate_limited_total", where="api") == before + len(refused)
    assert all(r.status_code == 200 for r in answers[:5])
    logged = [m for m in caplog.messages if m.startswith("rate limit: client=testclient")]
    assert 1 <= len(logged) <= 2  # once per window, not once per refusal


def test_probes_are_not_rate_limited(make_client) -> None:
    c = make_client(rate_limit=2)
    assert all(c.get("/health").status_code == 200 for _ in range(10))
    assert all(c.get("/ready").status_code == 200 for _ in range(10))


async def _statuses(app: Litestar, peer: str, xffs: list[str]) -> list[int]:
    transport = httpx.ASGITransport(app=app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        return [
            (await c.get("/api/v1/symbols", headers={"X-Forwarded-For": x})).status_code
            for x in xffs
        ]


async def test_rate_limit_is_per_forwarded_client_behind_a_trusted_proxy(market: Market) -> None:
    config = make_config(rate_limit=3, trusted_proxies=("10.0.0.0/8",))
    app = create_app(config, StateStore(market))
    # Seven clients behind the proxy, each well under its own limit.
    xffs = [f"198.51.100.{i}" for i in range(7)]
    assert await _statuses(app, "10.0.0.5", xffs) == [200] * 7


async def test_forwarded_header_from_an_untrusted_peer_does_not_dodge_the_limit(
    market: Market,
) -> None:
    config = make_config(rate_limit=3, trusted_proxies=("10.0.0.0/8",))
    app = create_app(config, StateStore(market))
    statuses = await _statuses(app, "203.0.113.50", [f"198.51.100.{i}" for i in range(10)])
    assert 429 in statuses


def test_windows_of_clients_gone_quiet_are_swept() -> None:
    config = rate_limit_config(make_config(rate_limit=5).api, ())
    assert config is not None
    middleware = LocalRateLimitMiddleware(app=None, config=config)  # type: ignore[arg-type]
    windows = middleware._windows
    windows["a"] = CacheObject(history=[1000], reset=1001)
    windows["b"] = CacheObject(history=[1000], reset=1030)
    middleware._sweep(1010)
    assert set(middleware._windows) == {"b"}


def test_stock_limiter_refusal_still_gets_retry_after() -> None:
    from litestar.exceptions import TooManyRequestsException

    from api.errors import on_http_error

    exc = TooManyRequestsException(headers={"RateLimit-Reset": "0"})
    r = on_http_error(None, exc)  # type: ignore[arg-type]
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
