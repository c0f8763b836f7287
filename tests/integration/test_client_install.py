"""mdgw-client installs alone into a fresh virtual environment and works there.

``pip install clients/python`` into a new venv (dependencies from the package
registry, pip's cache reused), then a bot script run by that venv's Python, from a
directory outside the repository, streams a book from a real (in-memory-fed) gateway
and verifies it. The server's packages and heavy dependencies must not be importable
there, and mypy, pointed at that venv, must type-check the script against the
installed package (``py.typed``).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.unit.gateway.memgw import STREAM, memory_gateway, url

pytestmark = [pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

BOT = """
import asyncio
import importlib.util
import json
import sys

from mdgw_client import LocalBook, MarketDataClient


async def main(url: str, stream: str, fmt: str) -> dict[str, object]:
    async with MarketDataClient(url, fmt=fmt, reconnect=False) as client:
        await client.subscribe("book", [stream], depth=10)
        async for event in client.events():
            if event.kind == "book":
                break
        book: LocalBook | None = client.book(stream)
        assert book is not None
        return {
            "valid": book.valid,
            "sequence": book.sequence,
            "bids": book.top_bids(),
            "asks": book.top_asks(),
            "checksum_ok": book.local_checksum() == book.checksum,
            "failures": client.checksum_failures + client.sequence_breaks,
        }


absent = ["litestar", "confluent_kafka", "opentelemetry", "sortedcontainers", "core", "gateway"]
found = [name for name in absent if importlib.util.find_spec(name) is not None]
result = asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
print(json.dumps({"importable": found, **result}))
"""


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env_dir = tmp_path_factory.mktemp("client-venv") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            str(ROOT / "clients" / "python"),
        ],
        check=True,
        timeout=300,
    )
    return python


def test_installed_client_has_only_the_wire_dependencies(fresh_python: Path) -> None:
    listed = subprocess.run(
        [str(fresh_python), "-m", "pip", "list", "--format=json", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {p["name"].lower() for p in json.loads(listed)}
    assert {"mdgw-client", "websockets", "orjson", "protobuf"} <= names
    assert not names & {"litestar", "confluent-kafka", "opentelemetry-sdk", "sortedcontainers"}


@pytest.mark.parametrize("fmt", ["json", "protobuf"])
async def test_a_bot_in_the_fresh_venv_streams_a_verified_book(
    fresh_python: Path, tmp_path: Path, fmt: str
) -> None:
    bot = tmp_path / "bot.py"
    bot.write_text(BOT)
    async with memory_gateway() as (rt, _broker, _states, _clock):
        proc = await run_process([str(fresh_python), str(bot), url(rt), STREAM, fmt], cwd=tmp_path)
        server = rt.market.book(STREAM)
        assert server is not None
        want_bids, want_asks = server.bids(10), server.asks(10)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["importable"] == []
    assert out["valid"] and out["checksum_ok"] and out["failures"] == 0
    assert [tuple(lv) for lv in out["bids"]] == want_bids
    assert [tuple(lv) for lv in out["asks"]] == want_asks


def test_the_installed_package_is_typed(fresh_python: Path, tmp_path: Path) -> None:
    bot = tmp_path / "bot.py"
    bot.write_text(BOT)
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--python-executable",
            str(fresh_python),
            str(bot),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def run_process(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a process without blocking the event loop that serves the gateway."""
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())
