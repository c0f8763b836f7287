"""The compiled twin of ``bench.latency_client`` (Go, ``bench/goclient``), built on demand.

``bench.latency --client go`` runs it in place of the Python clients: the same flags,
signals and result file, at a fraction of the CPU per message. On a 2-core machine the
load generators share the cores with the gateway, so cheaper clients leave the gateway
more of them: this stands for clients on other machines, which the Python clients at
``nice 10`` did not (they starved, ``bench/README.md``, "Tenth pass").
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "goclient"
BINARY = SOURCE.parent.parent / ".cache" / "bench" / "latency-client"
"""Under the repository's ``.cache/`` (ignored by git); rebuilt when a source is newer."""


class BuildError(RuntimeError):
    """Go is missing or the build failed (the message says which and how to fix it)."""


def stale(binary: Path = BINARY, source: Path = SOURCE) -> bool:
    if not binary.exists():
        return True
    built = binary.stat().st_mtime
    return any(f.stat().st_mtime > built for f in source.iterdir() if f.is_file())


def build(binary: Path = BINARY, source: Path = SOURCE) -> Path:
    """The client's path, built first if missing or older than its sources."""
    if not stale(binary, source):
        return binary
    go = shutil.which("go")
    if go is None:
        raise BuildError("the Go toolchain (go 1.26 or newer) is not on PATH")
    binary.parent.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        [go, "build", "-trimpath", "-o", str(binary), "."],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        raise BuildError(f"go build in {source} failed:\n{r.stderr.strip()}")
    return binary
