"""bench/common.py: where results are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import common


def test_a_result_named_with_a_folder_makes_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    path = common.write_result("a_pass/ingest", {"rows": [1]})
    assert path == tmp_path / "results" / "a_pass" / "ingest.json"
    written = json.loads(path.read_text())
    assert written["benchmark"] == "a_pass/ingest" and written["rows"] == [1]
