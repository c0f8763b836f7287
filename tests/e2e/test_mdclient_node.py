"""Runs the JavaScript client's unit tests (mdclient.test.mjs) with Node's test runner.

The same as ``node --test tests/e2e/mdclient.test.mjs``; here so that a plain
``pytest`` run covers the JS client too. No services, about a second.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize(
    "suite", ["mdclient.test.mjs", "wsurl.test.mjs", "waterfall.test.mjs", "candles.test.mjs"]
)
def test_js_client_unit_tests_pass_under_node(suite: str) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not found: the JS client's unit tests need Node.js >= 18")
    result = subprocess.run(
        [node, "--test", str(HERE / suite)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
