"""``--workers N`` (gateway/workers.py): N spawned processes sharing the port, one
metrics directory, SIGTERM forwarded, the worst exit code returned.

The workers here are stand-ins (a gateway needs a real broker: serve_gateway builds
its own Kafka clients): a module-level function the spawned children import, which
reports what it was given in a file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway import limits, workers
from mdgw.config import Config, GatewayConfig

OUT = "MDGW_TEST_WORKERS_DIR"
WAIT = "MDGW_TEST_WORKERS_WAIT"


def stand_in(config: Config, index: int, reuse_port: bool) -> None:
    """A worker: writes what it was given, then exits with its index (or waits for SIGTERM
    and exits 3; 9 if none came)."""
    report = {
        "reuse_port": reuse_port,
        "workers": config.gateway.workers,
        "metrics_dir": os.environ.get("PROMETHEUS_MULTIPROC_DIR"),
    }
    if os.environ.get(WAIT):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    (Path(os.environ[OUT]) / f"{index}.json").write_text(json.dumps(report))
    if os.environ.get(WAIT):
        time.sleep(60)  # a bound only: SIGTERM ends it long before
        sys.exit(9)
    sys.exit(index)


def config(n: int, max_connections: int = 100) -> Config:
    gw = dataclasses.replace(GatewayConfig(), workers=n, max_connections=max_connections)
    return dataclasses.replace(Config(), gateway=gw)


@pytest.fixture
def spawned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Workers are stand-ins; signal handlers and the metrics directory are restored."""
    monkeypatch.setattr(workers, "_worker", stand_in)
    monkeypatch.setenv(OUT, str(tmp_path))
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield tmp_path
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
        made = os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        if made:
            shutil.rmtree(made, ignore_errors=True)


def reports(out: Path, n: int) -> list[dict[str, Any]]:
    return [json.loads((out / f"{i}.json").read_text()) for i in range(n)]


def test_n_workers_share_the_port_and_one_metrics_directory(spawned: Path) -> None:
    assert workers.run_workers(config(2)) == 1  # the worst exit code: worker 1's
    got = reports(spawned, 2)
    assert all(r["reuse_port"] is True and r["workers"] == 2 for r in got)
    made = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert Path(made).is_dir() and {r["metrics_dir"] for r in got} == {made}


def test_sigterm_is_forwarded_to_every_worker(spawned: Path, monkeypatch) -> None:
    monkeypatch.setenv(WAIT, "1")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(spawned))  # given: kept

    def terminate_when_ready() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            forwarding = signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, None)
            if forwarding and all((spawned / f"{i}.json").exists() for i in range(2)):
                os.kill(os.getpid(), signal.SIGTERM)  # to the launcher, as systemd would
                return
            time.sleep(0.02)

    killer = threading.Thread(target=terminate_when_ready, daemon=True)
    killer.start()
    assert workers.run_workers(config(2)) == 3  # each ended by the forwarded SIGTERM
    killer.join()
    assert {r["metrics_dir"] for r in reports(spawned, 2)} == {str(spawned)}


def test_one_worker_runs_in_this_process(monkeypatch, caplog) -> None:
    calls: list[tuple[int, bool]] = []
    monkeypatch.setattr(workers, "_worker", lambda cfg, i, reuse: calls.append((i, reuse)))
    monkeypatch.setattr(limits, "raise_open_file_limit", lambda: (1024, 1024))
    with caplog.at_level(logging.WARNING, logger="gateway.workers"):
        assert workers.run_workers(config(1, max_connections=500)) == 0
        assert calls == [(0, False)] and "open-file limit" not in caplog.text
        assert workers.run_workers(config(1, max_connections=5000)) == 0
    assert "open-file limit 1024 is below gateway.max_connections (5000)" in caplog.text


@pytest.mark.parametrize("have_uvloop", [True, False])
def test_a_worker_serves_its_index_on_uvloop_when_installed(monkeypatch, have_uvloop) -> None:
    import uvloop

    import gateway.app
    import mdgw.logs

    if not have_uvloop:
        monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop: ImportError
    seen: list[Any] = []

    async def serve(cfg: Config, index: int, reuse_port: bool) -> None:
        seen.append((cfg, index, reuse_port, asyncio.get_running_loop()))

    monkeypatch.setattr(gateway.app, "serve_gateway", serve)
    monkeypatch.setattr(mdgw.logs, "setup_logging", lambda level, as_json: seen.append(level))
    cfg = config(2)
    try:
        workers._worker(cfg, 1, True)
    finally:
        asyncio.set_event_loop_policy(None)  # uvloop.install() set it for the process
    assert seen[0] == cfg.telemetry.log_level
    assert seen[1][:3] == (cfg, 1, True)
    assert isinstance(seen[1][3], uvloop.Loop) is have_uvloop
