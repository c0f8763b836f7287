"""The trace view's choices in a real Chromium, with the REST answers under the test's control.

The page and its modules come from ``api/static``; ``/dashboard.json`` and the two trace
routes (docs/protocol.md §6.3) are answered by the test through Playwright's routing, so
no service runs and each answer comes exactly when the test lets it. The page must:

- draw by itself the fullest trace of the list, and give way to a complete one (the
  producer's span had reached Jaeger) at a later refresh, marking the others ``partial``;
- keep a trace the user clicked, whatever the refreshes bring;
- draw the last trace clicked, even when an earlier click's answer comes back after it.
"""

from __future__ import annotations

import json
import mimetypes
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_dashboard import chromium  # noqa: F401  (the module-scoped browser fixture)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
ORIGIN = "http://mdgw.test"


def summary(tid: str, services: list[str], spans: int, complete: bool) -> dict[str, Any]:
    return {
        "trace_id": tid,
        "start_us": 1_796_000_000_000_000,
        "duration_us": 2_000,
        "spans": spans,
        "services": services,
        "root": f"{services[-1]}: x",
        "complete": complete,
        "stream": "KRAKEN:BTC-USD",
    }


def waterfall(tid: str) -> dict[str, Any]:
    t0 = 1_796_000_000_000_000
    span = {"parent_id": "", "kind": "internal", "attributes": {}}
    return {
        "trace_id": tid,
        "start_us": t0,
        "duration_us": 1_000,
        "services": ["mdgw-gateway"],
        "truncated": False,
        "spans": [
            span
            | {"span_id": "a1", "service": "mdgw-gateway", "operation": "process x"}
            | {"start_us": t0, "duration_us": 1_000},
        ],
    }


ALL_THREE = ["mdgw-api", "mdgw-gateway", "mdgw-producer"]
WHOLE = summary("a" * 32, ALL_THREE, 6, True)
PARTIAL = summary("b" * 32, ["mdgw-api", "mdgw-gateway"], 4, False)
ALONE = summary("c" * 32, ["mdgw-producer"], 1, True)
NEWER = summary("d" * 32, ALL_THREE, 6, True)


class FakeApi:
    """Serves the page's files and answers the REST calls; a trace id in ``hold`` is
    not answered until :meth:`release`."""

    def __init__(self) -> None:
        self.listed: list[dict[str, Any]] = []
        self.hold: set[str] = set()
        self.held: dict[str, Any] = {}

    def route(self, route: Any) -> None:
        url = urllib.parse.urlsplit(route.request.url)
        path = url.path
        if path == "/dashboard.json":
            self.json(route, {"traces": True})
        elif path == "/api/v1/traces":
            self.json(route, {"service": "mdgw-gateway", "traces": self.listed})
        elif path.startswith("/api/v1/traces/"):
            tid = path.rsplit("/", 1)[1]
            if tid in self.hold:
                self.held[tid] = route
            else:
                self.json(route, waterfall(tid))
        elif (file := STATIC / (path.lstrip("/") or "index.html")).is_file():
            kind = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
            route.fulfill(status=200, body=file.read_bytes(), content_type=kind)
        else:  # the rest of the dashboard (books, stats): not this test's subject
            self.json(route, {"error": "Not Found"}, 404)

    def release(self, tid: str) -> None:
        self.hold.discard(tid)
        self.json(self.held.pop(tid), waterfall(tid))

    @staticmethod
    def json(route: Any, body: Any, status: int = 200) -> None:
        route.fulfill(status=status, body=json.dumps(body), content_type="application/json")


def drawn(page: Any) -> str:
    return str(page.eval_on_selector("#waterfall", "w => w.dataset.trace || ''"))


def test_the_trace_view_picks_the_fullest_keeps_a_click_and_draws_the_last_one(
    chromium: Any,  # noqa: F811
) -> None:
    api = FakeApi()
    api.listed = [ALONE, PARTIAL]
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    context.route("**/*", api.route)
    page = context.new_page()
    # no WebSocket in this test: the page's live panels wait for a gateway that is not there
    page.goto(f"{ORIGIN}/?ws=ws://127.0.0.1:9/ws")

    # across services beats one service, even when newer; a partial one is marked
    page.wait_for_function(
        f"document.querySelector('#waterfall')?.dataset.trace === '{PARTIAL['trace_id']}'"
    )
    labels = page.eval_on_selector_all("#trace-list button", "bs => bs.map(b => b.textContent)")
    assert [("partial" in label) for label in labels] == [False, True], labels

    # a complete trace arrives: the page's own choice gives way at the next refresh (5 s)
    api.listed = [WHOLE, ALONE, PARTIAL]
    page.wait_for_function(
        f"document.querySelector('#waterfall').dataset.trace === '{WHOLE['trace_id']}'",
        timeout=15_000,
    )

    # two clicks, the first one's answer held back until after the second's
    api.hold.add(PARTIAL["trace_id"])
    page.click(f"#trace-list button[data-trace='{PARTIAL['trace_id']}']")
    page.click(f"#trace-list button[data-trace='{ALONE['trace_id']}']")
    page.wait_for_function(
        f"document.querySelector('#waterfall').dataset.trace === '{ALONE['trace_id']}'"
    )
    api.release(PARTIAL["trace_id"])
    page.wait_for_timeout(500)
    assert drawn(page) == ALONE["trace_id"]

    # a clicked trace stays, however full the newer ones are
    api.listed = [NEWER, WHOLE, ALONE, PARTIAL]
    newer = f"#trace-list button[data-trace='{NEWER['trace_id']}']"
    page.wait_for_selector(newer, timeout=15_000)  # the list was read again
    page.wait_for_timeout(300)
    assert drawn(page) == ALONE["trace_id"]
    assert page.evaluate("window.mdgwTraces.selected") == ALONE["trace_id"]
    context.close()
