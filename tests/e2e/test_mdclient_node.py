"""Runs the JavaScript client's unit tests with Node's test runner.

The same as ``node --test tests/e2e/mdclient.test.mjs`` and, for the npm package,
``cd clients/js && node --test test/``; here so that a plain ``pytest`` run covers the
JS client too. No services, about a second each.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
JS_PACKAGE = HERE.parents[1] / "clients" / "js"


@pytest.mark.parametrize(
    ("cwd", "suite"),
    [
        (HERE, "mdclient.test.mjs"),
        (HERE, "wsurl.test.mjs"),
        (HERE, "waterfall.test.mjs"),
        (HERE, "candles.test.mjs"),
        (HERE, "tracepick.test.mjs"),
        (JS_PACKAGE, "test/"),
    ],
    ids=["mdclient", "wsurl", "waterfall", "candles", "tracepick", "package"],
)
def test_js_client_unit_tests_pass_under_node(cwd: Path, suite: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the JS client's unit tests need Node.js >= 18")
    result = subprocess.run(
        [node, "--test", suite],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
