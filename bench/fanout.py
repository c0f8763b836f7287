"""One fan-out experiment against real processes: gateway, simulator steps, load generators.

The gateway and the clients stay up while the simulator is run at a list of
feed rates, one ``mdgw simulate --duration`` process per step; each step is cut
out of the clients' samples by wall-clock time (its first ``settle`` seconds are
dropped), so one set of connections gives a whole latency-vs-load curve.
Per step: delivered book messages/s, latency percentiles (gateway hop and
producer -> client), the gateway's own ``message_broadcast_latency_seconds``
histogram (delta of two /metrics scrapes), incidents (breaks, checksum
failures, stale/resync statuses) and CPU seconds of every process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench import procs
from bench.common import bench_config, drop_topics, percentile
from mdgw.config import Config
from producers.simulator import default_streams

SYMBOLS = 34
"""Per exchange: 3 x 34 = 102 streams."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stream_names(symbols: int = SYMBOLS) -> list[str]:
    return [s.key for s in default_streams(symbols)]


@dataclass
class Shape:
    """Who connects and what they ask for."""

    clients: int = 1000
    per_client: int = 10
    depth: int = 20
    fmt: str = "protobuf"
    batch: bool = False
    compression: bool = False
    verify: str = "full"
    full_every: int = 0
    procs: int = 4
    sample: int = 1
    connect_rate: int = 0

    def loadgen_args(self) -> list[str]:
        args = ["--per-client", str(self.per_client), "--depth", str(self.depth)]
        args += ["--format", self.fmt, "--verify", self.verify, "--sample", str(self.sample)]
        args += ["--duration", "3600", "--warmup", "0", "--ramp", "0"]
        args += ["--full-every", str(self.full_every), "--connect-rate", str(self.connect_rate)]
        if self.batch:
            args.append("--batch")
        if self.compression:
            args.append("--compression")
        return args


@dataclass
class Step:
    rate: float
    t0: float
    t1: float
    cpu: dict[str, float]
    hist: dict[float, float]
    sim_log: str = ""


@dataclass
class Experiment:
    """A running gateway with connected clients; run ``step`` per feed rate."""

    cfg: Config
    port: int
    gateway: procs.Proc
    streams: list[str]
    loadgens: list[procs.Proc] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    kafka: int | None = None
    reference: bool = False
    """The server is bench.ceiling (rates go to its stdin), not a gateway fed by Kafka."""

    def cpu_now(self) -> dict[str, float]:
        out = {
            "gateway": self.gateway.cpu(),
            "clients": sum(p.cpu() for p in self.loadgens),
            "machine_busy": procs.machine_busy()["busy_s"],
        }
        if self.kafka:
            out["kafka"] = procs.cpu_seconds(self.kafka)
        return out

    def metrics(self) -> str:
        try:
            return procs.http_get(f"http://127.0.0.1:{self.port}/metrics", 20.0).decode()
        except OSError:
            return ""

    def step(self, rate: float, seconds: float, settle: float) -> Step:
        """Feed at ``rate`` updates/s for ``seconds``; the window skips ``settle`` s."""
        if self.reference:
            return self._reference_step(rate, seconds, settle)
        sim = procs.start_simulator(self.cfg, rate, SYMBOLS, duration=seconds)
        time.sleep(settle + 0.8)  # interpreter start-up, then the settle time
        t0, c0 = time.time(), self.cpu_now()
        h0 = procs.histogram(self.metrics(), "message_broadcast_latency_seconds")
        s0 = sim.cpu()
        sim.popen.wait(seconds + 60)
        t1, c1 = time.time(), self.cpu_now()
        h1 = procs.histogram(self.metrics(), "message_broadcast_latency_seconds")
        cpu = {k: c1[k] - c0.get(k, 0.0) for k in c1}
        cpu["simulator"] = max(0.0, sim.cpu() - s0)  # 0 once exited: read by the log instead
        log = _read_log(sim)
        step = Step(rate, t0, t1 - 0.2, cpu, procs.hist_delta(h1, h0), log)
        self.steps.append(step)
        return step

    def _reference_step(self, rate: float, seconds: float, settle: float) -> Step:
        stdin = self.gateway.popen.stdin
        assert stdin is not None
        stdin.write(f"{rate}\n".encode())
        stdin.flush()
        time.sleep(settle)
        t0, c0 = time.time(), self.cpu_now()
        time.sleep(max(1.0, seconds - settle))
        t1, c1 = time.time(), self.cpu_now()
        stdin.write(b"0\n")
        stdin.flush()
        cpu = {k: c1[k] - c0.get(k, 0.0) for k in c1}
        step = Step(rate, t0, t1, cpu, {}, "")
        self.steps.append(step)
        time.sleep(0.5)  # drain before the next step
        return step

    def finish(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        for p in self.loadgens:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGUSR1)
        return procs.collect(self.loadgens, timeout)


def _read_log(p: procs.Proc) -> str:
    path = procs.log_path(p.name)
    try:
        with open(path) as f:
            return f.read().strip().splitlines()[-1] if os.path.getsize(path) else ""
    except (OSError, IndexError):
        return ""


@contextlib.contextmanager
def experiment(
    shape: Shape, *, workers: int = 1, env: dict[str, object] | None = None, partitions: int = 6
) -> Iterator[Experiment]:
    """Fresh topics, a gateway process, primed books, connected clients; torn down after."""
    cfg = bench_config(partitions=partitions)
    port = free_port()
    gw = procs.start_gateway(cfg, port, workers=workers, **(env or {}))
    exp = Experiment(cfg, port, gw, stream_names(), kafka=procs.kafka_pid())
    try:
        procs.wait_gateway(gw, port, timeout=60)
        prime = procs.start_simulator(cfg, 200, SYMBOLS, duration=1.0)
        prime.popen.wait(60)
        procs.wait_gateway(gw, port, streams=len(exp.streams), timeout=60)
        exp.info["rss_before_kib"] = procs.tree_rss(gw.pid)
        url = f"ws://127.0.0.1:{port}/ws"
        t0 = time.time()
        exp.loadgens = procs.start_loadgens(
            url, exp.streams, shape.procs, shape.clients, shape.loadgen_args()
        )
        exp.info["connected"] = _wait_connected(exp, shape.clients, t0)
        exp.info["rss_after_kib"] = procs.tree_rss(gw.pid)
        yield exp
    finally:
        for p in exp.loadgens:
            p.stop(5)
        gw.stop(20)
        with contextlib.suppress(Exception):
            drop_topics(cfg.kafka)


def _wait_connected(exp: Experiment, clients: int, t0: float) -> dict[str, Any]:
    """Until every client holds an established connection (or a load generator died)."""
    deadline = time.monotonic() + max(60.0, clients / 100)
    seen = 0
    while time.monotonic() < deadline:
        if any(p.popen.poll() is not None for p in exp.loadgens):
            break
        seen = procs.established(exp.port)
        if seen >= clients:
            break
        time.sleep(0.1)
    elapsed = time.time() - t0
    time.sleep(1.0 + clients / 5000)  # let subscriptions and snapshots drain
    return {"established": seen, "seconds": round(elapsed, 2)}


@contextlib.contextmanager
def reference(shape: Shape, transport: str = "raw", pool: int = 3000) -> Iterator[Experiment]:
    """The bench.ceiling server in place of the gateway, same clients."""
    import subprocess

    port = free_port()
    streams = stream_names()
    argv = [procs.PY, "-m", "bench.ceiling", "--port", str(port), "--transport", transport]
    argv += ["--streams", ",".join(streams), "--pool", str(pool)]
    srv = procs.spawn(
        f"ceiling-{transport}",
        argv,
        dict(os.environ),
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
    )
    exp = Experiment(None, port, srv, streams, kafka=None, reference=True)  # type: ignore[arg-type]
    try:
        assert srv.popen.stdout is not None
        line = srv.popen.stdout.readline()
        if not line.startswith(b"ready"):
            raise RuntimeError(f"ceiling server did not start: {line!r}")
        url = f"ws://127.0.0.1:{port}/ws"
        t0 = time.time()
        exp.loadgens = procs.start_loadgens(
            url, streams, shape.procs, shape.clients, shape.loadgen_args()
        )
        exp.info["connected"] = _wait_connected(exp, shape.clients, t0)
        yield exp
    finally:
        for p in exp.loadgens:
            p.stop(5)
        if srv.popen.stdin is not None:
            with contextlib.suppress(OSError):
                srv.popen.stdin.close()
        srv.stop(10)


# ---- reading results --------------------------------------------------------------------


def summarize(step: Step, results: list[dict[str, Any]]) -> dict[str, Any]:
    """One step's numbers from all load generators' outputs."""
    t0n, t1n = int(step.t0 * 1e9), int(step.t1 * 1e9)
    gw: list[int] = []
    e2e: list[int] = []
    incidents = 0
    delivered = 0
    lo, hi = int(step.t0) + 1, int(step.t1)  # whole seconds inside the window
    for r in results:
        if "error" in r:
            continue
        for t, g, e in zip(r["sample_t_ns"], r["gateway_lat_ns"], r["e2e_lat_ns"], strict=True):
            if t0n <= t <= t1n:
                gw.append(g)
                e2e.append(e)
        incidents += sum(1 for t in r.get("incident_t_ns", []) if t0n <= t <= t1n)
        delivered += sum(v for k, v in r["per_second"].items() if lo <= int(k) < hi)
    secs = max(1, hi - lo)
    wall = step.t1 - step.t0
    hist_total = max(step.hist.values(), default=0.0)
    out = {
        "feed_rate": step.rate,
        "delivered_per_s": delivered / secs,
        "samples": len(e2e),
        "incidents": incidents,
        "cpu_s_per_s": {k: round(v / wall, 3) for k, v in step.cpu.items()},
        "simulator": step.sim_log,
        "broadcast_records": hist_total,
        "broadcast_p50_ms": procs.hist_quantile(step.hist, 0.5) * 1e3,
        "broadcast_p99_ms": procs.hist_quantile(step.hist, 0.99) * 1e3,
    }
    for name, vals in (("gateway", gw), ("e2e", e2e)):
        for q, label in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999")):
            out[f"{name}_{label}_ms"] = percentile(vals, q) / 1e6 if vals else float("nan")
    return out


def totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("connected", "failed", "breaks", "checksum_failures", "closed_by_server")
    out: dict[str, Any] = {k: sum(r.get(k, 0) for r in results) for k in keys}
    out["book_messages"] = sum(r.get("book_messages", 0) for r in results)
    out["full_verify_clients"] = sum(r.get("full_verify_clients", 0) for r in results)
    status: dict[str, int] = {}
    for r in results:
        for k, v in r.get("status", {}).items():
            status[k] = status.get(k, 0) + v
    out["status"] = status
    out["errors"] = [r["error"] for r in results if "error" in r] + [
        r["errors"] for r in results if r.get("errors")
    ]
    firsts = [r["first_attempt"] for r in results if r.get("first_attempt")]
    lasts = [r["last_connected"] for r in results if r.get("last_connected")]
    out["connect_all_s"] = (max(lasts) - min(firsts)) if firsts and lasts else float("nan")
    return out
