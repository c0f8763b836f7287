"""The OpenAPI document is served, describes the contract's shapes, and the app keeps to it."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.state import StateStore
from tests.unit.api.apidata import filled_market, make_config

MAX_EXAMPLES = 30
"""Per operation; the whole property run stays within a few seconds."""


def test_openapi_document_is_served(client: TestClient[Litestar]) -> None:
    r = client.get("/schema/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/api/v1/orderbook/{symbol}",
        "/api/v1/orderbook/aggregated/{symbol}",
        "/api/v1/trades/{symbol}",
        "/api/v1/candles/{symbol}",
        "/api/v1/stats/{symbol}",
        "/api/v1/symbols",
        "/api/v1/feeds",
        "/api/v1/metrics",
        "/api/v1/traces",
        "/api/v1/traces/{trace_id}",
        "/health",
        "/ready",
        "/metrics",
    }
    assert client.get("/schema").status_code == 200  # the browsable page


def test_openapi_documents_shapes_errors_and_examples(client: TestClient[Litestar]) -> None:
    doc = client.get("/schema/openapi.json").json()
    book = doc["paths"]["/api/v1/orderbook/{symbol}"]["get"]
    params = {p["name"]: p for p in book["parameters"]}
    assert (
        params["depth"]["schema"]["minimum"] == 1 and params["depth"]["schema"]["maximum"] == 1000
    )
    assert params["depth"]["schema"]["default"] == 20
    assert {"symbol", "exchange", "If-None-Match"} <= set(params)
    ok = book["responses"]["200"]
    assert ok["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderBookBody"
    }
    assert "ETag" in ok["headers"]
    for status in ("304", "400", "401", "404", "429", "503"):
        assert status in book["responses"], status
    err = book["responses"]["404"]["content"]["application/json"]
    assert err["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    assert next(iter(err["examples"].values()))["value"] == {"error": "Symbol not found"}
    schemas = doc["components"]["schemas"]
    props = schemas["OrderBookBody"]["properties"]
    assert {"exchange", "symbol", "timestamp", "sequence", "checksum", "bids", "asks"} <= set(props)
    assert props["bids"]["examples"] == [[[97000.5, 1.2]]]
    agg = schemas["AggregatedBookBody"]["properties"]["bids"]["items"]["prefixItems"]
    assert agg[2]["type"] == "object"
    trade = schemas["TradeItem"]["properties"]
    assert set(trade) == {"exchange", "trade_id", "price", "quantity", "side", "timestamp"}


def _schema() -> schemathesis.BaseSchema:
    """Loaded at import: schemathesis' lazy ``from_fixture`` breaks on pytest 9 (``_nodeid``)."""
    app = create_app(make_config(rate_limit=0), StateStore(filled_market()))
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    schema.config.generation.update(max_examples=MAX_EXAMPLES, modes=["positive", "negative"])
    return schema


SCHEMA = _schema()


@SCHEMA.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_app_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    """No 5xx, statuses and bodies as documented, valid data served, invalid data refused."""
    case.call_and_validate()
