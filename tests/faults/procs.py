"""Real processes for fault tests: ``python -m mdgw simulate|gateway|api`` on a test's topics.

Every process is started by :class:`Stack`, logs to its own file and is killed
(by its own pid, never by name) when the stack closes, whatever the test did.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from mdgw.config import KafkaConfig

ROOT = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    """A port nobody listens on right now (the usual bind-to-0 race is acceptable here)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kafka_env(cfg: KafkaConfig) -> dict[str, str]:
    """The MDGW_KAFKA_* variables that point a process at exactly these topics."""
    return {
        f"MDGW_KAFKA_{f.name.upper()}": str(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
    }


def base_env(cfg: KafkaConfig, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    env.update(kafka_env(cfg))
    env.update(
        PYTHONUNBUFFERED="1",
        MDGW_API_RATE_LIMIT="0",  # tests poll the API fast; the limiter is tested elsewhere
        MDGW_GATEWAY_CONNECTS_PER_MINUTE_PER_IP="1000000",
        MDGW_GATEWAY_MAX_CONNECTIONS_PER_IP="0",
        MDGW_GATEWAY_OPS_REQUESTS_PER_SECOND="0",  # tests poll /health and /metrics fast
    )
    env.update(extra)
    return env


class Proc:
    """One child process and its log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=self._fh, stderr=subprocess.STDOUT
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def term(self, timeout: float = 45.0) -> int:
        """SIGTERM and wait; returns the exit code. A process still running after
        ``timeout`` fails the test with its last output (what it was doing). The default
        is above a producer's 30 s flush bound, so a flush that gives up shows as its own
        failure (records unacknowledged, exit 1) rather than as a hang."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still running {timeout:.0f} s after SIGTERM:\n{self.tail()}"
            ) from None

    def close(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._fh.close()

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text(errors="replace")

    def tail(self, n: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-n:])


class Stack:
    """The processes of one test: simulator(s), gateway(s), API(s) on one KafkaConfig."""

    def __init__(self, cfg: KafkaConfig, logs: Path, **env: str) -> None:
        self.cfg = cfg
        self.logs = logs
        self.env = env
        self.procs: list[Proc] = []
        self.gateway_port = free_port()
        self.api_port = free_port()
        self.group = f"{cfg.client_id}-{os.getpid()}"

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> Proc:
        env = base_env(self.cfg, **{**self.env, **extra})
        n = sum(1 for p in self.procs if p.name == name)
        proc = Proc(
            name,
            [sys.executable, "-m", "mdgw", *args],
            env,
            self.logs / f"{name}-{n}.log",
        )
        self.procs.append(proc)
        return proc

    def simulate(self, rate: float = 300.0, seed: int = 7, **extra: str) -> Proc:
        return self._spawn(
            "simulate", ["simulate", "--rate", str(rate), "--seed", str(seed)], extra
        )

    def gateway(self, **extra: str) -> Proc:
        env = {"MDGW_GATEWAY_GROUP_ID": f"{self.group}-gw", **extra}
        return self._spawn(
            "gateway", ["gateway", "--host", "127.0.0.1", "--port", str(self.gateway_port)], env
        )

    def api(self, **extra: str) -> Proc:
        env = {"MDGW_API_GROUP_ID": f"{self.group}-api", **extra}
        return self._spawn("api", ["api", "--host", "127.0.0.1", "--port", str(self.api_port)], env)

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.gateway_port}/ws"

    @property
    def gateway_http(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def api_http(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def close(self) -> None:
        for p in reversed(self.procs):
            p.close()

    def dump(self) -> str:
        """Tails of every log, for assertion messages."""
        return "\n".join(f"==== {p.name} (pid {p.pid}) ====\n{p.tail()}" for p in self.procs)


@contextmanager
def stack(cfg: KafkaConfig, logs: Path, **env: str) -> Iterator[Stack]:
    s = Stack(cfg, logs, **env)
    try:
        yield s
    finally:
        s.close()


# ---- waiting and probing ---------------------------------------------------------------


def wait_until(
    pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    """Poll ``pred`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        time.sleep(interval)


async def await_until(
    pred: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition"
) -> Any:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not met within {timeout}s")
        await asyncio.sleep(interval)


def http_get(url: str, timeout: float = 2.0) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=timeout)
    except httpx.HTTPError:
        return None


def gateway_health(base: str) -> dict[str, Any] | None:
    r = http_get(f"{base}/health")
    return r.json() if r is not None and r.status_code == 200 else None


def gateway_ready(base: str, streams: int = 9) -> bool:
    h = gateway_health(base)
    return bool(h and h.get("ready") and h.get("streams", 0) >= streams)


def api_ready(base: str) -> bool:
    r = http_get(f"{base}/ready")
    return r is not None and r.status_code == 200 and r.json().get("streams", 0) > 0


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEinfNa]+)")


def metric_total(base: str, name: str) -> float:
    """Sum of every sample of one metric (all label sets) scraped from ``base/metrics``."""
    r = httpx.get(f"{base}/metrics", timeout=5)
    r.raise_for_status()
    total = 0.0
    for line in r.text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            total += float(m.group(3))
    return total


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


SUMMARY = re.compile(
    r"simulated (\d+) events .*?: (\d+) book records \((\d+) snapshots\), (\d+) trades"
    r"[^;\n]*(?:; delivered (\d+), failed (\d+))?"
)


def simulator_summary(output: str) -> dict[str, int]:
    """The counts of ``mdgw simulate``'s last summary line (after a clean stop)."""
    found = SUMMARY.findall(output)
    if not found:
        raise AssertionError(f"no simulator summary in its output:\n{output[-2000:]}")
    events, books, snaps, trades, delivered, failed = found[-1]
    return {
        "events": int(events),
        "book_records": int(books),
        "snapshots": int(snaps),
        "trades": int(trades),
        "delivered": int(delivered or -1),
        "failed": int(failed or -1),
    }
