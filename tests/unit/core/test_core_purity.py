"""The core stays pure: no I/O, no event loop, no threads, no clocks (STYLE.md).

Checked on the source of every module in ``core/``: imports of forbidden
modules, and calls of clock functions however they were imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[3] / "core"

FORBIDDEN_MODULES = {
    "asyncio",
    "socket",
    "ssl",
    "selectors",
    "threading",
    "multiprocessing",
    "concurrent",
    "subprocess",
    "time",
    "datetime",
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "logging",
    "random",
    "secrets",
    "uuid",
    "kafka",
    "aiokafka",
    "confluent_kafka",
    "websockets",
    "litestar",
    "uvicorn",
    "uvloop",
    "httpx",
    "requests",
}
CLOCK_CALLS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns"}
CLOCK_CALLS |= {"perf_counter", "perf_counter_ns", "process_time", "sleep"}
FORBIDDEN_BUILTINS = {"open", "input", "print", "breakpoint"}


def core_modules() -> list[Path]:
    return sorted(CORE.glob("*.py"))


def offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in CLOCK_CALLS or (isinstance(f, ast.Name) and name in FORBIDDEN_BUILTINS):
                found.append(f"line {node.lineno}: calls {name}()")
        elif isinstance(node, ast.Name) and node.id == "__import__":
            found.append(f"line {node.lineno}: __import__")
        for name in names:
            if name.split(".")[0] in FORBIDDEN_MODULES:
                found.append(f"line {getattr(node, 'lineno', 0)}: imports {name}")
    return found


def test_there_are_core_modules() -> None:
    names = {p.name for p in core_modules()}
    assert {"book.py", "views.py", "aggregate.py", "stats.py", "market.py"} <= names


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert offences(path) == [], f"{path.name} is not pure"


def test_the_checker_catches_offences(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncio\nfrom os import path\nimport time as t\n"
        "from datetime import datetime\nx = datetime.now()\ny = t.monotonic()\nopen('f')\n"
    )
    found = {f.split(": ")[1] for f in offences(bad)}
    assert found == {
        "imports asyncio",
        "imports os",
        "imports time",
        "imports datetime",
        "calls now()",
        "calls monotonic()",
        "calls open()",
    }
