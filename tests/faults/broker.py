"""A private Kafka broker for fault tests: its own home dir and ports, never the shared 9092.

``scripts/kafka-local`` runs it with ``MDGW_KAFKA_HOME`` pointing at a directory
of this test session, so stopping, killing and restarting it disturbs nobody.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.faults.procs import ROOT, free_port

SCRIPT = ROOT / "scripts" / "kafka-local"


def _preferred(port: int) -> int:
    """``port`` when nothing listens there (the issue names 19092), else any free one."""
    import socket

    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka binds it
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return free_port()
    return port


class FaultBroker:
    """One single-node KRaft broker under ``home`` on ``port``."""

    def __init__(self, home: Path, port: int | None = None, controller_port: int | None = None):
        self.home = home
        self.port = port or _preferred(19092)
        self.controller_port = controller_port or free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MDGW_KAFKA_")},
            "MDGW_KAFKA_HOME": str(home),
            "MDGW_KAFKA_PORT": str(self.port),
            "MDGW_KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "MDGW_KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        }

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, cmd: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(SCRIPT), cmd], env=self.env, capture_output=True, text=True, timeout=timeout
        )

    def start(self) -> float:
        """Start (or confirm running); returns the seconds it took to be ready."""
        t0 = time.monotonic()
        r = self._run("start")
        if r.returncode != 0:
            raise RuntimeError(f"kafka-local start failed:\n{r.stdout}\n{r.stderr}")
        return time.monotonic() - t0

    def stop(self) -> float:
        """Controlled shutdown; returns the seconds it took."""
        t0 = time.monotonic()
        self._run("stop")
        return time.monotonic() - t0

    def pid(self) -> int | None:
        try:
            return int((self.home / "kafka.pid").read_text())
        except (OSError, ValueError):
            return None

    def kill(self) -> None:
        """SIGKILL the broker this object started (a crash: no controlled shutdown)."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)

    def kill_timed(self) -> float:
        """``kill``; returns the seconds it took (for the report, like ``stop``)."""
        t0 = time.monotonic()
        self.kill()
        return time.monotonic() - t0

    def running(self) -> bool:
        return self._run("status", timeout=20).returncode == 0


def fault_broker(home: Path) -> Iterator[FaultBroker]:
    """Generator for a fixture: a started private broker, stopped at the end."""
    broker = FaultBroker(home)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
