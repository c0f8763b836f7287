"""The README's settings table is generated from mdgw/config.py; keep them equal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_settings_table_matches_the_config_module() -> None:
    table = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config-table")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    readme = (ROOT / "README.md").read_text()
    assert table in readme, "README settings table is stale: paste `scripts/config-table`"


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "scripts/demo" in readme and "scripts/test" in readme
    for path in ("scripts/demo", "scripts/test", "scripts/setup", "scripts/kafka-local"):
        assert (ROOT / path).is_file()
