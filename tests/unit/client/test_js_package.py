"""The JavaScript client is one file: the npm package's, which the dashboard serves."""

from __future__ import annotations

import json
from pathlib import Path

from litestar.testing import TestClient

from api.app import STATIC_DIR, create_app
from api.state import StateStore
from tests.unit.api.apidata import filled_market, make_config

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "clients" / "js"


def test_the_dashboard_file_is_the_package_file() -> None:
    assert (STATIC_DIR / "mdclient.js").resolve() == (PACKAGE / "mdclient.js").resolve()


def test_the_package_exports_the_module() -> None:
    meta = json.loads((PACKAGE / "package.json").read_text())
    assert meta["type"] == "module" and meta["exports"] == "./mdclient.js"
    assert "mdclient.js" in meta["files"] and not meta.get("dependencies")


def test_the_api_serves_the_client_to_the_dashboard() -> None:
    app = create_app(make_config(rate_limit=0), StateStore(filled_market()))
    with TestClient(app) as client:
        r = client.get("/mdclient.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert r.text == (PACKAGE / "mdclient.js").read_text()
