"""Helpers of the observability tests: free ports, the local Jaeger and Prometheus scripts."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP_CODE = 4
"""Exit code of scripts/jaeger-local and prometheus-local: the tool cannot be had here.
Any other failure (jaeger-local's 5: the build broke) fails the test."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_script(name: str, args: list[str], env: dict[str, str], timeout: float) -> None:
    """Run scripts/<name>; skip the test when it says the tool is missing (exit 4)."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / name), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode == SKIP_CODE:
        pytest.skip(f"scripts/{name}: {proc.stderr.strip().splitlines()[-1]}")
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/{name} {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")


def stop_script(name: str, env: dict[str, str]) -> None:
    subprocess.run(
        [str(ROOT / "scripts" / name), "stop"],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
    )
