"""Fixtures of the API unit tests: the app over a hand-filled Market, no Kafka."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import create_app
from api.state import StateStore
from core.market import Market
from tests.unit.api.apidata import filled_market, make_config


@pytest.fixture
def market() -> Market:
    return filled_market()


@pytest.fixture
def make_client(market: Market) -> Iterator[Callable[..., TestClient[Litestar]]]:
    """``make_client(state=..., **api_settings)`` -> a started TestClient; all closed at the end."""
    clients: list[TestClient[Litestar]] = []

    def make(state: StateStore | None = None, **api: Any) -> TestClient[Litestar]:
        api.setdefault("rate_limit", 0)
        app = create_app(make_config(**api), state or StateStore(market))
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient[Litestar]]:
    """One app per module over its own market, for tests that only read it."""
    app = create_app(make_config(rate_limit=0), StateStore(filled_market()))
    with TestClient(app) as c:
        yield c
