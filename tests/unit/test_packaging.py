"""What is shipped imports only its runtime dependencies: benchmarks and their clients stay out."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "schemas", "gateway", "api", "producers", "mdgw")
BENCH_ONLY = {"aiokafka", "bench", "matplotlib", "picows"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_shipped_packages_never_import_benchmark_modules() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_roots(path) & BENCH_ONLY)
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if imported_roots(path) & BENCH_ONLY
    }
    assert not offenders


def test_benchmark_clients_are_an_extra_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "aiokafka" not in runtime
    assert any(dep.startswith("aiokafka") for dep in project["optional-dependencies"]["bench"])
    assert not (ROOT / "api" / "bench.py").exists()
