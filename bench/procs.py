"""Real processes for ``bench.run``: gateway, API, simulator, load generators, /proc readings.

Every component runs as its own OS process, started the way an operator would
(``python -m mdgw gateway ...``), pointed at a run's fresh topics through the
``MDGW_KAFKA_*`` environment. CPU time and RSS come from ``/proc``, so a reading
covers the whole process tree (``--workers N`` forks N gateway processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from mdgw.config import Config

PY = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")


def kafka_env(cfg: Config, **extra: object) -> dict[str, str]:
    """The environment that points an mdgw process at this run's topics."""
    k = cfg.kafka
    env = dict(os.environ)
    env.update(
        MDGW_KAFKA_BOOTSTRAP=k.bootstrap,
        MDGW_KAFKA_CLIENT_ID=k.client_id,
        MDGW_KAFKA_BOOK_TOPIC=k.book_topic,
        MDGW_KAFKA_TRADES_TOPIC=k.trades_topic,
        MDGW_KAFKA_SNAPSHOTS_TOPIC=k.snapshots_topic,
        MDGW_KAFKA_CHECKPOINTS_TOPIC=k.checkpoints_topic,
        MDGW_KAFKA_STATS_TOPIC=k.stats_topic,
        MDGW_KAFKA_DLQ_TOPIC=k.dlq_topic,
        MDGW_KAFKA_PARTITIONS=str(k.partitions),
        MDGW_TELEMETRY_LOG_LEVEL="WARNING",
        MDGW_TELEMETRY_TRACING="0",
        PYTHONUNBUFFERED="1",
    )
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update({key: str(v) for key, v in extra.items()})
    return env


# ---- /proc ------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """Direct and indirect children of ``pid``."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for k in kids:
            out.append(k)
            out.extend(children(k))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(parts[11]) + int(parts[12])) / CLK_TCK


def tree_cpu(pid: int) -> float:
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children(pid))


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> int:
    return rss_kib(pid) + sum(rss_kib(c) for c in children(pid))


def kafka_pid() -> int | None:
    """The local broker (scripts/kafka-local), to account its CPU in a run."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"kafka.Kafka" in cmd:
            return int(name)
    return None


def machine_busy() -> dict[str, float]:
    """Load average and whole-machine CPU seconds so far (to show how shared the box was)."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    ticks = [int(x) for x in parts]
    idle = ticks[3] + ticks[4]
    return {
        "load1": os.getloadavg()[0],
        "busy_s": (sum(ticks) - idle) / CLK_TCK,
        "total_s": sum(ticks) / CLK_TCK,
    }


# ---- processes --------------------------------------------------------------------------


@dataclass
class Proc:
    """A child process with its CPU reading at a mark."""

    name: str
    popen: subprocess.Popen[bytes]
    marks: dict[str, float] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def cpu(self) -> float:
        return tree_cpu(self.pid)

    def mark(self, label: str) -> None:
        self.marks[label] = self.cpu()

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                for c in children(self.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(c, signal.SIGKILL)
                self.popen.kill()
                self.popen.wait(5)


def log_path(name: str) -> str:
    return f"/tmp/bench-{name}-{os.getpid()}.log"


def spawn(
    name: str, argv: list[str], env: dict[str, str], *, stdout: Any = None, stdin: Any = None
) -> Proc:
    err = open(log_path(name), "wb")  # noqa: SIM115 (kept with the proc)
    popen = subprocess.Popen(
        argv, env=env, stdout=stdout or subprocess.DEVNULL, stderr=err, stdin=stdin
    )
    return Proc(name, popen)


def established(port: int) -> int:
    """TCP connections established to local ``port`` (server side), from /proc/net/tcp*."""
    want = f":{port:04X}"
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    parts = line.split(None, 4)
                    if parts[3] == "01" and parts[1].endswith(want):
                        n += 1
        except OSError:
            pass
    return n


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


GATEWAY_LIMITS_OFF: dict[str, object] = {
    "MDGW_GATEWAY_CONNECTS_PER_MINUTE_PER_IP": 0,
    "MDGW_GATEWAY_MAX_CONNECTIONS_PER_IP": 0,
    "MDGW_GATEWAY_OPS_REQUESTS_PER_SECOND": 0,
    "MDGW_GATEWAY_HANDSHAKE_TIMEOUT": 60,
}
"""Every benchmark client connects from 127.0.0.1: the per-IP limits would refuse them."""


def start_gateway(cfg: Config, port: int, *, workers: int = 1, **env: object) -> Proc:
    """``mdgw gateway`` on 127.0.0.1:port, all clients from one IP allowed."""
    group = {"MDGW_GATEWAY_GROUP_ID": f"{cfg.kafka.client_id}-gw{port}"}
    e = kafka_env(cfg, **(GATEWAY_LIMITS_OFF | group | env))
    argv = [PY, "-m", "mdgw", "gateway", "--host", "127.0.0.1", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    return spawn(f"gateway{port}", argv, e)


def gateway_health(port: int) -> dict[str, Any] | None:
    try:
        return json.loads(http_get(f"http://127.0.0.1:{port}/health", 2.0))
    except (OSError, ValueError):
        return None


def wait_gateway(proc: Proc, port: int, streams: int = 0, timeout: float = 60.0) -> dict[str, Any]:
    """Until /health says ready (and knows ``streams`` books); raises on exit or timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        h = gateway_health(port)
        if h and h.get("ready") and h.get("streams", 0) >= streams:
            return h
        time.sleep(0.2)
    raise TimeoutError(f"{proc.name} not ready with {streams} streams in {timeout}s")


def start_simulator(cfg: Config, rate: float, symbols: int, duration: float = 0.0) -> Proc:
    argv = [PY, "-m", "mdgw", "simulate", "--rate", str(rate), "--symbols", str(symbols)]
    if duration:
        argv += ["--duration", str(duration)]
    return spawn(f"simulate{int(rate)}", argv, kafka_env(cfg))


CLIENT_NICE = 10
"""Niceness of the load generators: they stand for clients on other machines, so on
this shared 2-core box they get the CPU the gateway, Kafka and the simulator leave
(``bench.run --client-nice``; 0 = compete as equals)."""


def start_loadgens(
    url: str, streams: list[str], procs: int, clients: int, args: list[str], name: str = "lg"
) -> list[Proc]:
    """``procs`` load generator processes sharing ``clients`` connections."""
    out = []
    for i in range(procs):
        n = clients // procs + (1 if i < clients % procs else 0)
        argv = ["nice", "-n", str(CLIENT_NICE)] if CLIENT_NICE else []
        argv += [PY, "-m", "bench.loadgen", "--url", url, "--clients", str(n)]
        argv += ["--streams", ",".join(streams), "--seed", str(i + 1), *args]
        out.append(spawn(f"{name}{i}", argv, dict(os.environ), stdout=subprocess.PIPE))
    return out


def collect(procs: list[Proc], timeout: float) -> list[dict[str, Any]]:
    """Each load generator's JSON result (an error entry for one that failed)."""
    results = []
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            out, _ = p.popen.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append(json.loads(out))
        except (subprocess.TimeoutExpired, ValueError) as e:
            p.stop(2)
            results.append({"error": f"{p.name}: {type(e).__name__}"})
    return results


# ---- Prometheus -------------------------------------------------------------------------


def histogram(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of one histogram in exposition text."""
    out: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if line.startswith(prefix):
            labels, value = line[len(prefix) :].rsplit("}", 1)
            le = labels.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = out.get(float(le), 0.0) + float(value)
    return dict(sorted(out.items()))


def hist_delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: n - before.get(le, 0.0) for le, n in after.items()}


def hist_quantile(buckets: dict[float, float], q: float) -> float:
    """Quantile by linear interpolation inside the bucket (as PromQL histogram_quantile)."""
    if not buckets:
        return float("nan")
    total = max(buckets.values())
    if total <= 0:
        return float("nan")
    rank = q * total
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets.items():
        if n >= rank:
            if le == float("inf"):
                return prev_le
            if n == prev_n:
                return le
            return prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
        prev_le, prev_n = le, n
    return prev_le
