"""The client distribution's generated protobuf module is the server's, byte for byte."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLIENT = ROOT / "clients" / "python"


@pytest.mark.parametrize("name", ["market_data_pb2.py", "market_data_pb2.pyi"])
def test_vendored_generated_code_matches_the_server(name: str) -> None:
    vendored = (CLIENT / "src" / "mdgw_client" / name).read_bytes()
    assert vendored == (ROOT / "schemas" / name).read_bytes(), (
        "run scripts/gen-proto (it copies the module into clients/python) and commit"
    )


def test_client_depends_on_the_wire_libraries_only() -> None:
    project = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    names = {
        dep.split(">")[0].split("<")[0].split("=")[0].strip() for dep in project["dependencies"]
    }
    assert names == {"websockets", "orjson", "protobuf"}


def test_client_imports_nothing_of_the_server() -> None:
    import ast

    server = {"core", "schemas", "gateway", "api", "producers", "mdgw", "sortedcontainers"}
    for path in (CLIENT / "src").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                roots = {node.module.split(".")[0]}
            else:
                continue
            assert not roots & server, f"{path.name} imports {roots & server}"
