"""The gateway's latency against its floor, in one command (issue 14).

    .venv/bin/python -m bench.latency            # everything, ~10 min
    .venv/bin/python -m bench.latency --quick    # smoke version, ~4 min, no 10,000-client run
    .venv/bin/python -m bench.latency --only capacity,moderate,hops

The floor is ``bench.latency_floor``: a plain picows broadcaster with no Kafka and
no books, sending pre-built JSON book updates of the gateway's frame size, each
stamped with a fresh ``ingest_ts``. Every figure of the gateway (real Kafka,
``mdgw simulate`` feeding the 9 streams of ``--symbols 3``, ``mdgw gateway``) is
measured beside the floor's, with the same clients (``bench.latency_client``:
picows + orjson, each on 3 of the 9 streams, depth 20, raw, JSON), in the same run.

Workloads (``--only``): ``capacity`` (the floor's rate stepped up; always run,
every other rate derives from it), ``moderate`` (a quarter of it, 1,000
clients), ``big`` (the same messages/s to 10,000 clients in 8 processes),
``hops`` (the gateway's /metrics over the moderate window), ``kafkafed`` (the
moderate window on the same broadcaster behind Kafka, ``bench.latency_floor --feed
kafka``, fed by ``mdgw simulate`` as the gateway is: the floor of a Kafka-sourced
gateway, measured beside the gateway's), ``nobroker`` (the
moderate window on the same gateway code with an in-memory broker and the simulator
in its process, ``bench.memory_gateway``: its latency without the Kafka hop, i.e.
the gateway's own share), ``overload`` (4x the
capacity: ages, resyncs, 1013 closes, the spread per client), ``responsive``
(during overload: 1,000 new clients connect, a few ping every 100 ms),
``workers`` (overload with ``--workers 2``), ``kafka`` (producer linger.ms and
consumer fetch.wait.max.ms sweep at moderate load), ``ingest`` (gateway CPU per
record with no clients, broker CPU with and without the gateway).

Writes ``bench/results/latency.json`` and ``bench/results/latency.png`` and prints
the tables; bench/README.md ("Latency against the floor") explains the method.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import latency_stats as st
from bench import procs
from bench.common import bench_config, drop_topics, write_result
from bench.fanout import free_port
from mdgw.config import Config, KafkaConfig
from mdgw.kafka.source import IDLE_FETCH_MIN_BYTES
from producers.simulator import default_streams

SYMBOLS = 3
STREAMS = [s.key for s in default_streams(SYMBOLS)]
PER_CLIENT = 3
SHARE = PER_CLIENT / len(STREAMS)
"""Each message goes to this share of the clients."""
CLIENT = [procs.PY, "-m", "bench.latency_client"]
"""The client processes' command (``--client go``: the compiled twin's binary)."""
GATEWAY_ENV: dict[str, object] = {
    "MDGW_GATEWAY_MAX_CONNECTIONS": 20_000,
    # pings every 100 ms are 10 control messages/s: above the default 5/s limit
    "MDGW_GATEWAY_CONTROL_RATE": 50,
    "MDGW_GATEWAY_CONTROL_BURST": 100,
}
ALL = (
    "capacity",
    "moderate",
    "hops",
    "kafkafed",
    "nobroker",
    "big",
    "overload",
    "responsive",
    "workers",
    "kafka",
    "ingest",
)
QUICK = (
    "capacity",
    "moderate",
    "hops",
    "kafkafed",
    "nobroker",
    "overload",
    "responsive",
    "workers",
    "kafka",
    "ingest",
)


def log(msg: str) -> None:
    print(f"[latency {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---- processes --------------------------------------------------------------------------


def broker_pid(port: int) -> int | None:
    """The broker listening on ``port`` (other brokers may run on this machine)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" not in cmd:
            continue
        props = (
            cmd[cmd.index(b"kafka.Kafka") + 1] if cmd.index(b"kafka.Kafka") + 1 < len(cmd) else b""
        )
        try:
            text = Path(props.decode()).read_text()
        except (OSError, UnicodeDecodeError):
            continue
        if f":{port}" in "".join(ln for ln in text.splitlines() if ln.startswith("listeners")):
            return int(name)
    return None


@dataclass
class Clients:
    """A set of ``bench.latency_client`` processes."""

    name: str
    port: int
    count: int
    procs: list[procs.Proc] = field(default_factory=list)
    outs: list[Path] = field(default_factory=list)
    snaps: int = 0

    def cpu(self) -> float:
        return sum(p.cpu() for p in self.procs)

    sizes: list[int] = field(default_factory=list)
    """Clients per process."""

    def send(self, sig: int, ready_timeout: float = 30.0) -> None:
        """``sig`` to every process once it handles signals (a loaded machine can take
        seconds to start an interpreter; the default action would kill it)."""
        deadline = time.monotonic() + ready_timeout
        for p, out in zip(self.procs, self.outs, strict=True):
            ready = Path(f"{out}.ready")
            while not ready.exists() and p.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, sig)

    def snapshot(self, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Every process's results so far (SIGUSR2), without stopping them."""
        self.snaps += 1
        self.send(signal.SIGUSR2)
        return [self._read(i, self.snaps, timeout) for i in range(len(self.outs))]

    def finish(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        self.send(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.popen.wait(max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.stop(2)
        return [self._read(i, -1, 2.0) for i in range(len(self.outs))]

    def _read(self, i: int, snap: int, timeout: float) -> dict[str, Any]:
        out = self.outs[i]
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                r = json.loads(out.read_text())
                if r.get("snapshot") == snap or snap == -1:
                    return dict(r)
            if time.monotonic() > deadline:
                return {"error": f"{out.name}: no result {snap}", "clients": self.sizes[i]}
            time.sleep(0.1)


def start_clients(
    name: str,
    port: int,
    clients: int,
    nprocs: int,
    duration: float,
    tmp: Path,
    *,
    offset: int = 0,
    pingers: int = 0,
    extra: tuple[str, ...] = (),
) -> Clients:
    cs = Clients(name, port, clients)
    first = offset
    for i in range(nprocs):
        n = clients // nprocs + (1 if i < clients % nprocs else 0)
        out = tmp / f"{name}-{i}.json"
        argv = ["nice", "-n", str(procs.CLIENT_NICE)] if procs.CLIENT_NICE else []
        argv += [*CLIENT, "--url", f"ws://127.0.0.1:{port}/ws"]
        argv += ["--clients", str(n), "--offset", str(first), "--streams", ",".join(STREAMS)]
        argv += ["--duration", str(duration), "--out", str(out), "--pingers", str(pingers)]
        argv += extra
        cs.procs.append(procs.spawn(f"{name}{i}", argv, dict(os.environ)))
        cs.outs.append(out)
        cs.sizes.append(n)
        first += n
    return cs


def wait_connected(cs: Clients, expect: int, timeout: float) -> float:
    """Seconds until ``expect`` connections are established on the port (or timeout)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if procs.established(cs.port) >= expect:
            break
        if all(p.popen.poll() is not None for p in cs.procs):
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - t0
    time.sleep(1.0 + cs.count / 5000)  # subscriptions and first snapshots drain
    return elapsed


class Server:
    """The floor or a gateway: a port to connect to, a feed rate to set, CPU to read."""

    port: int
    proc: procs.Proc
    kind: str

    def feed(self, rate: float, seconds: float, **env: object) -> procs.Proc | None:
        raise NotImplementedError

    def metrics(self) -> str:
        return ""

    def counters(self) -> dict[str, int]:
        return {}

    def stop(self) -> dict[str, Any]:
        raise NotImplementedError


class PipedServer(Server):
    """A server process that says ``ready`` on stdout and reads its feed rate (updates/s,
    one number per line) from stdin: the floor, the gateway without a broker."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.proc = procs.spawn(
            f"{name}{self.port}", argv, env, stdout=subprocess.PIPE, stdin=subprocess.PIPE
        )
        assert self.proc.popen.stdout is not None
        line = self.proc.popen.stdout.readline()
        if not line.startswith(b"ready"):
            self.proc.stop(10)
            raise RuntimeError(f"{name} did not start: {line!r}")

    def feed(self, rate: float, seconds: float, **env: object) -> procs.Proc | None:
        stdin = self.proc.popen.stdin
        assert stdin is not None
        stdin.write(f"{rate}\n".encode())
        stdin.flush()
        return None


def scrape(port: int) -> str:
    """A gateway's ``/metrics`` ("" when it does not answer)."""
    try:
        return procs.http_get(f"http://127.0.0.1:{port}/metrics", 20.0).decode()
    except OSError:
        return ""


class Floor(PipedServer):
    kind = "floor"

    def __init__(self, frame_bytes: int, stamp: str = "due", wake: str = "feed") -> None:
        self.port = free_port()
        argv = [procs.PY, "-m", "bench.latency_floor", "--port", str(self.port)]
        argv += ["--streams", ",".join(STREAMS), "--frame-bytes", str(frame_bytes)]
        argv += ["--stamp", stamp, "--wake", wake]
        super().__init__("floor", argv, dict(os.environ))

    def counters(self) -> dict[str, Any]:
        """Messages produced, frames sent and dropped so far, and the histogram of each
        message's wait before its frame was built (the floor prints them on "?")."""
        p = self.proc.popen
        assert p.stdin is not None and p.stdout is not None
        p.stdin.write(b"?\n")
        p.stdin.flush()
        return dict(json.loads(p.stdout.readline()))

    def stop(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.popen.stdin is not None and self.proc.popen.stdout is not None
            self.proc.popen.stdin.close()
            out = json.loads(self.proc.popen.stdout.readline() or b"{}")
        self.proc.stop(10)
        return out


class KafkaFed(Floor):
    """The floor's broadcaster behind Kafka (``bench.latency_floor --feed kafka``) on
    topics of its own, fed by ``mdgw simulate`` as the gateway is."""

    kind = "kafkafed"

    def __init__(self, frame_bytes: int) -> None:
        self.cfg: Config = bench_config()
        self.port = free_port()
        argv = [procs.PY, "-m", "bench.latency_floor", "--port", str(self.port)]
        argv += ["--streams", ",".join(STREAMS), "--frame-bytes", str(frame_bytes)]
        argv += ["--feed", "kafka"]
        try:
            PipedServer.__init__(self, "kafkafed", argv, procs.kafka_env(self.cfg))
        except Exception:
            drop_topics(self.cfg.kafka)
            raise

    def feed(self, rate: float, seconds: float, **env: object) -> procs.Proc | None:
        return simulate(self.cfg, rate, seconds, **env)

    def stop(self) -> dict[str, Any]:
        try:
            return super().stop()
        finally:
            with contextlib.suppress(Exception):
                drop_topics(self.cfg.kafka)


def simulate(cfg: Config, rate: float, seconds: float, **env: object) -> procs.Proc:
    """``mdgw simulate`` at ``rate`` updates/s over the 9 streams, into ``cfg``'s topics."""
    argv = [procs.PY, "-m", "mdgw", "simulate", "--rate", str(rate)]
    argv += ["--symbols", str(SYMBOLS), "--duration", str(seconds)]
    return procs.spawn(f"sim{int(rate)}", argv, procs.kafka_env(cfg, **env))


class NoBroker(PipedServer):
    """The gateway on an in-memory broker, the simulator in its process
    (``bench.memory_gateway``)."""

    kind = "nobroker"

    def __init__(self, stamp: str = "due", feed: str = "ahead") -> None:
        self.port = free_port()
        argv = [procs.PY, "-m", "bench.memory_gateway", "--port", str(self.port)]
        argv += ["--symbols", str(SYMBOLS), "--stamp", "due" if stamp == "due" else "published"]
        argv += ["--feed", feed]
        # its own in-memory topics: nothing is created in (or asked of) a Kafka cluster
        env = procs.kafka_env(Config(), **procs.GATEWAY_LIMITS_OFF, **GATEWAY_ENV)
        super().__init__("nobroker", argv, env)

    def metrics(self) -> str:
        return scrape(self.port)

    def stop(self) -> dict[str, Any]:
        with contextlib.suppress(OSError, ValueError):
            assert self.proc.popen.stdin is not None
            self.proc.popen.stdin.close()
        self.proc.stop(20)
        return {}


class Gateway(Server):
    kind = "gateway"

    def __init__(self, workers: int = 1, **env: object) -> None:
        self.cfg: Config = bench_config()
        self.port = free_port()
        self.proc = procs.start_gateway(self.cfg, self.port, workers=workers, **(GATEWAY_ENV | env))
        try:
            procs.wait_gateway(self.proc, self.port, timeout=90)
            prime = self.feed(200, 1.0)
            assert prime is not None
            prime.popen.wait(60)
            procs.wait_gateway(self.proc, self.port, streams=len(STREAMS), timeout=60)
        except Exception:
            self.stop()
            raise

    def feed(self, rate: float, seconds: float, **env: object) -> procs.Proc | None:
        return simulate(self.cfg, rate, seconds, **env)

    def metrics(self) -> str:
        return scrape(self.port)

    def stop(self) -> dict[str, Any]:
        self.proc.stop(20)
        with contextlib.suppress(Exception):
            drop_topics(self.cfg.kafka)
        return {}


@dataclass
class Window:
    t0: float
    t1: float
    cpu: dict[str, float]
    """CPU seconds per wall second (cores) of each process group."""
    m0: str = ""
    m1: str = ""
    feed_log: str = ""
    counters: dict[str, Any] = field(default_factory=dict)
    """The floor's counters over the window."""


class Meter:
    """CPU of the server, the clients, the broker and a feed process over a window."""

    def __init__(self, server: Server, broker: int | None) -> None:
        self.server = server
        self.broker = broker
        self.clients: list[Clients] = []

    def read(self, feed: procs.Proc | None) -> dict[str, float]:
        out = {
            "server": self.server.proc.cpu(),
            "clients": sum(c.cpu() for c in self.clients),
            "machine": procs.machine_busy()["busy_s"],
        }
        if self.broker:
            out["broker"] = procs.cpu_seconds(self.broker)
        if feed is not None:
            out["feed"] = feed.cpu()
        return out

    def window(
        self, seconds: float, feed: procs.Proc | None = None, scrape: bool = False
    ) -> Window:
        # whole wall-clock seconds, as the clients count per second: the floor's counters and
        # the clients' counts then cover the same span
        time.sleep(1.0 - time.time() % 1.0 + 0.002)
        # scrapes just outside the CPU readings: the records they count span the window
        m0 = self.server.metrics() if scrape else ""
        t0, c0, k0 = time.time(), self.read(feed), self.server.counters()
        time.sleep(max(1.0, round(seconds)) - (time.time() - t0) + 0.002)
        t1, c1, k1 = time.time(), self.read(feed), self.server.counters()
        m1 = self.server.metrics() if scrape else ""
        wall = t1 - t0
        cpu = {k: round(max(0.0, c1[k] - c0.get(k, 0.0)) / wall, 3) for k in c1}
        counters = {k: counter_delta(v, k0.get(k)) for k, v in k1.items()}
        return Window(t0, t1, cpu, m0, m1, counters=counters)


# ---- workloads --------------------------------------------------------------------------


@dataclass
class Plan:
    """Rates and durations of one run, from the arguments and the measured capacity."""

    a: argparse.Namespace
    tmp: Path
    broker: int | None
    capacity: float = 0.0
    """Updates/s (all streams) the floor delivers to the 1,000 clients without falling behind."""

    @property
    def moderate(self) -> float:
        return self.capacity / 4

    @property
    def overload(self) -> float:
        return self.capacity * 4


def measure(
    server: Server,
    meter: Meter,
    rate: float,
    seconds: float,
    settle: float,
    *,
    scrape: bool = False,
    env: dict[str, object] | None = None,
) -> Window:
    """Feed ``rate`` updates/s; measure ``seconds`` after ``settle``; feed off again."""
    feed = server.feed(rate, settle + seconds + 1.5, **(env or {}))
    time.sleep(settle + (1.0 if feed else 0.0))  # a simulator needs ~1 s to start
    w = meter.window(seconds, feed, scrape)
    if feed is None:
        server.feed(0.0, 0.0)
        time.sleep(0.5)
    else:
        feed.popen.wait(settle + seconds + 60)
        w.feed_log = feed_log(feed)
    return w


def feed_log(feed: procs.Proc) -> str:
    """The simulator's summary line (what it actually sent)."""
    with contextlib.suppress(OSError):
        lines = Path(procs.log_path(feed.name)).read_text().splitlines()
        return next((ln for ln in reversed(lines) if ln.startswith("simulated")), "")
    return ""


def summary(results: list[dict[str, Any]], w: Window, rate: float, clients: int) -> dict[str, Any]:
    out = st.window(results, w.t0, w.t1)
    out["rate"] = rate
    out["offered_per_s"] = offered(w, rate, clients)
    out["cpu_cores"] = w.cpu
    out["frame_bytes"] = _frame_bytes(results)
    if w.feed_log:
        out["feed"] = w.feed_log
    if w.counters:
        late = w.counters.get("late") or []
        out["floor_counters"] = {k: v for k, v in w.counters.items() if k != "late"}
        if sum(late):
            # how long the floor's messages waited for its loop before their frame was built
            out["floor_wait_ms"] = {k: round(v, 3) for k, v in st.hist_ms(late).items()}
    return out


def counter_delta(now: Any, before: Any) -> Any:
    """``now - before`` of one of the floor's counters: a number, or a list of bucket counts."""
    if isinstance(now, list):
        prev = before if isinstance(before, list) else []
        return [n - (prev[i] if i < len(prev) else 0) for i, n in enumerate(now)]
    return now - (before or 0)


FEED_LINE = re.compile(r"simulated (\d+) events in ([\d.]+)s")


def offered(w: Window, rate: float, clients: int) -> float:
    """Messages/s the clients should get: the floor's frames sent and dropped over the window,
    or the simulator's actual events/s (its Poisson draw may be off the nominal rate) to a
    third of the clients, or the nominal rate."""
    wall = w.t1 - w.t0
    if w.counters and wall > 0:
        k = w.counters  # arrivals the floor itself skipped (starved of CPU) count as offered
        total = k.get("sent", 0) + k.get("dropped", 0) + k.get("skipped", 0) * clients * SHARE
        return total / wall
    m = FEED_LINE.search(w.feed_log)
    if m and float(m.group(2)) > 0:
        return int(m.group(1)) / float(m.group(2)) * clients * SHARE
    return rate * clients * SHARE


def _frame_bytes(results: list[dict[str, Any]]) -> float:
    n = sum(r.get("updates", 0) for r in results if "error" not in r)
    b = sum(r.get("update_bytes", 0) for r in results if "error" not in r)
    return round(b / n, 1) if n else float("nan")


def capacity(p: Plan, floor: Floor, meter: Meter) -> dict[str, Any]:
    """Step the floor's rate up until the clients stop keeping up; ``p.capacity`` is the last
    rate where delivered >= 95 % of offered and p99 age <= the limit."""
    a = p.a
    cs = start_clients("cap", floor.port, a.clients, a.client_procs, 3600, p.tmp)
    meter.clients = [cs]
    steps: list[dict[str, Any]] = []
    try:
        wait_connected(cs, a.clients, 120)
        rate, best, fail = a.cap_start, a.capacity, 0.0
        for _ in range(0 if a.capacity else a.cap_steps):
            w = measure(floor, meter, rate, a.step_s, 1.0)
            s = summary(cs.snapshot(), w, rate, a.clients)
            s["pass"] = bool(
                s["delivered_per_s"] >= 0.95 * s["offered_per_s"]
                and s["age_ms"]["p50"] <= a.cap_p50_ms
                and (not a.cap_p99_ms or s["age_ms"]["p99"] <= a.cap_p99_ms)
            )
            steps.append(s)
            log(
                f"  floor {rate:,.0f}/s: {s['delivered_per_s']:,.0f} of "
                f"{s['offered_per_s']:,.0f} msgs/s, p99 {s['age_ms']['p99']:.1f} ms "
                f"{'ok' if s['pass'] else 'behind'}"
            )
            if s["pass"]:
                best = max(best, rate)
            else:
                fail = min(fail, rate) if fail else rate
            if best and fail and fail / best <= a.cap_resolution:
                break
            if not best:  # behind from the first step: step down
                rate /= a.cap_factor
            elif not fail:
                rate *= a.cap_factor
            else:
                rate = (best * fail) ** 0.5
            time.sleep(1.0)  # drain
        p.capacity = best or a.cap_start
        moderate = None
        if {"moderate", "nobroker", "kafkafed"} & set(a.only):  # all are compared with it
            log(f"  floor moderate {p.moderate:,.1f}/s")
            w = measure(floor, meter, p.moderate, a.window_s, 1.0)
            moderate = summary(cs.snapshot(), w, p.moderate, a.clients)
    finally:
        cs.finish()
    best_step = next((s for s in steps if s["rate"] == p.capacity), None)
    return {
        "steps": steps,
        "rate": p.capacity,
        "delivered_per_s": best_step["delivered_per_s"] if best_step else float("nan"),
        "p50_limit_ms": a.cap_p50_ms,
        "p99_limit_ms": a.cap_p99_ms,
        "moderate": moderate,
    }


def steady(
    p: Plan,
    server: Server,
    meter: Meter,
    rate: float,
    clients: int,
    nprocs: int,
    name: str,
    *,
    scrape: bool = False,
    extra: list[tuple[str, dict[str, object]]] | None = None,
    kafka_floor_s: float = 0.0,
) -> dict[str, Any]:
    """``clients`` connect; ``rate`` for a window (and one more window per ``extra`` env;
    with ``kafka_floor_s``, one more in which ``bench.kafka_floor`` reads the same records:
    its result is under ``KAFKA_FLOOR``)."""
    a = p.a
    cs = start_clients(name, server.port, clients, nprocs, 3600, p.tmp)
    meter.clients = [cs]
    windows: list[tuple[str, Window]] = []
    bare: list[list[float]] = []
    try:
        conn = wait_connected(cs, clients, max(120, clients / 50))
        windows.append(("", measure(server, meter, rate, a.window_s, a.settle, scrape=scrape)))
        if kafka_floor_s > 0 and isinstance(server, Gateway):
            with kafka_floor(server, p.tmp) as bare:
                w = measure(server, meter, rate, kafka_floor_s, a.settle, scrape=True)
            windows.append((KAFKA_FLOOR, w))
        for label, env in extra or []:
            windows.append((label, measure(server, meter, rate, a.sweep_s, a.settle, env=env)))
    finally:
        results = cs.finish()
    out: dict[str, Any] = {}
    for label, w in windows:
        s = summary(results, w, rate, clients)
        s["connect_s"] = round(conn, 2)
        if scrape or label == KAFKA_FLOOR:
            s["hops"] = hops(w.m0, w.m1)
        if label == KAFKA_FLOOR:
            s["kafka_alone"] = bare_hop(bare, w.t0, w.t1)
        out[label] = s
    return out


KAFKA_FLOOR = "kafka_floor"
"""Label of the window in which ``bench.kafka_floor`` reads the gateway's records too."""


@contextlib.contextmanager
def kafka_floor(gw: Gateway, tmp: Path) -> Iterator[list[list[float]]]:
    """``bench.kafka_floor`` on the gateway's topics while the block runs; the list it
    yields holds its ``[receive_wall_s, hop_ms]`` samples once the block has ended."""
    out = tmp / "kafka_floor.json"
    proc = procs.spawn(
        "kafkafloor",
        [procs.PY, "-m", "bench.kafka_floor", str(out)],
        procs.kafka_env(gw.cfg),
        stdout=subprocess.PIPE,
    )
    samples: list[list[float]] = []
    try:
        assert proc.popen.stdout is not None
        line = proc.popen.stdout.readline()  # assigned at the topic's end: reads what comes next
        if not line.startswith(b"ready"):
            raise RuntimeError(f"kafka floor did not start: {line!r}")
        yield samples
    finally:
        proc.stop(20)
    with contextlib.suppress(OSError, ValueError):
        samples.extend(json.loads(out.read_text())["samples"])


def bare_hop(samples: list[list[float]], t0: float, t1: float) -> dict[str, Any]:
    """p50/p99/p99.9 (ms, exact) of the bare consumer's hop over the records it got in
    ``[t0, t1)``."""
    hops_ms = [h for t, h in samples if t0 <= t < t1]
    out: dict[str, Any] = {"count": len(hops_ms)}
    for q, label in ((0.5, "p50_ms"), (0.99, "p99_ms"), (0.999, "p999_ms")):
        out[label] = round(st.percentile(hops_ms, q), 4) if hops_ms else "n/a"
    return out


HOPS = ("kafka", "handoff", "apply", "fanout")


def hops(m0: str, m1: str) -> dict[str, Any]:
    """The gateway's own histograms between two scrapes; "n/a" for any it does not keep."""
    out = {h: st.hop_summary(m0, m1, "gateway_hop_seconds", hop=h) for h in HOPS}
    out["broadcast"] = st.hop_summary(m0, m1, "message_broadcast_latency_seconds")
    out["end_to_end"] = st.hop_summary(m0, m1, "end_to_end_latency_seconds")
    return out


def overload(p: Plan, server: Server, meter: Meter, name: str, responsive: bool) -> dict[str, Any]:
    """4x capacity: the 1,000 clients' ages and what they were told; then (``responsive``)
    1,000 new clients connect and a few ping while the feed goes on."""
    a = p.a
    cs = start_clients(name, server.port, a.clients, a.client_procs, 3600, p.tmp)
    meter.clients = [cs]
    out: dict[str, Any] = {"rate": p.overload}
    total = a.settle + a.over_s + (a.resp_s + 4.0 if responsive else 0.0)
    try:
        wait_connected(cs, a.clients, 120)
        feed = server.feed(p.overload, total + 2.0)
        time.sleep(a.settle + (1.0 if feed else 0.0))
        w = meter.window(a.over_s, feed)
        if responsive:
            t_new = time.time()
            new = start_clients(
                f"{name}new", server.port, a.clients, 1, 3600, p.tmp, offset=a.clients
            )
            ping = start_clients(
                f"{name}ping", server.port, a.pingers, 1, 3600, p.tmp, pingers=a.pingers
            )
            meter.clients = [cs, new, ping]
            wr = meter.window(a.resp_s, feed)
            new_res, ping_res = new.finish(), ping.finish()
            out["responsive"] = {
                "connect": st.connects(new_res),
                "connect_started": t_new,
                "pings": st.pings(ping_res, wr.t0 - 2.0, wr.t1),
                "pingers": a.pingers,
                "cpu_cores": wr.cpu,
            }
        if feed is None:
            server.feed(0.0, 0.0)
        else:
            feed.stop(5)
    finally:
        results = cs.finish()
    out.update(summary(results, w, p.overload, a.clients))
    return out


IDLE_FETCH = {
    "MDGW_KAFKA_FETCH_MIN_BYTES": IDLE_FETCH_MIN_BYTES,
    "MDGW_KAFKA_FETCH_WAIT_MAX_MS": KafkaConfig().idle_fetch_wait_ms,
}
"""What an idle gateway's consumer fetches with (``kafka.idle_fetch_wait_ms``,
``mdgw.kafka.source.IDLE_FETCH_MIN_BYTES``): the bare decode loop's fetch beside it."""
EAGER = {"MDGW_KAFKA_IDLE_FETCH_WAIT_MS": 0}
"""A gateway that never switches to the idle fetch: what ingest costs with clients."""


def _fixed(fetch: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """A fetch setting measured as it is: the gateway never switches to the idle fetch,
    and the bare decode loop beside it fetches the same way."""
    return {**fetch, **EAGER}, fetch


def _batched(wait_ms: int) -> tuple[dict[str, object], dict[str, object]]:
    return _fixed({"MDGW_KAFKA_FETCH_MIN_BYTES": 65536, "MDGW_KAFKA_FETCH_WAIT_MAX_MS": wait_ms})


def _idle(wait_ms: int) -> tuple[dict[str, object], dict[str, object]]:
    """The idle fetch with another ``kafka.idle_fetch_wait_ms`` (the bare loop's the same)."""
    floor = {**IDLE_FETCH, "MDGW_KAFKA_FETCH_WAIT_MAX_MS": wait_ms}
    return {"MDGW_KAFKA_IDLE_FETCH_WAIT_MS": wait_ms}, floor


INGEST_FETCH: dict[str, tuple[dict[str, object], dict[str, object]]] = {
    # no clients: the gateway switches to the idle fetch (measured once it has)
    "default": ({}, IDLE_FETCH),
    # the eager fetch a gateway with clients uses (fetch.min.bytes 1)
    "eager": _fixed({}),
    # the broker holds a fetch until 64 KiB or 5 ms: fewer, larger batches
    "batched": _batched(5),
    # the same with other waits, for the curve (--ingest-fetch)
    "batched-2ms": _batched(2),
    "batched-10ms": _batched(10),
    # the idle fetch's wait, for its curve (CPU per record vs the first client's backlog)
    "idle-50ms": _idle(50),
    "idle-100ms": _idle(100),
    "idle-250ms": _idle(250),
    "idle-500ms": _idle(500),
    "idle-1000ms": _idle(1000),
}
"""Fetch settings the ingest workload compares (CPU per record vs the Kafka hop), as
(the gateway's environment, the bare decode loop's); ``--ingest-fetch`` picks them."""


def wait_idle_fetch(gw: Gateway, timeout: float = 60.0) -> bool:
    """Until the gateway says its consumer fetches in bulk (``kafka_fetch_idle``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (st.prom_sum(gw.metrics(), "kafka_fetch_idle") or 0.0) >= 1.0:
            return True
        time.sleep(0.5)
    return False


def ingest(p: Plan) -> dict[str, Any]:
    """Gateway CPU per record consumed with no clients, for each of :data:`INGEST_FETCH`,
    with the Kafka hop meanwhile; broker CPU with and without the gateway."""
    a = p.a
    rows: list[dict[str, Any]] = []
    cfg = None
    for fetch in a.ingest_fetch:
        env, floor_env = INGEST_FETCH[fetch]
        gw = Gateway(**env)
        cfg = cfg or gw.cfg
        meter = Meter(gw, p.broker)
        try:
            switches = fetch == "default" or fetch.startswith("idle-")
            idle_fetch = wait_idle_fetch(gw) if switches else False
            if switches and not idle_fetch:
                log(f"  ingest {fetch}: the gateway never switched to the idle fetch")
            for rate in a.ingest_rates:
                m0 = gw.metrics()
                w = measure(gw, meter, rate, a.ingest_s, a.settle, scrape=True)
                r0 = st.prom_sum(w.m0 or m0, "kafka_records_consumed_total") or 0.0
                r1 = st.prom_sum(w.m1, "kafka_records_consumed_total")
                wall = w.t1 - w.t0
                records = (r1 - r0) if r1 is not None else float("nan")
                per_s = records / wall
                kafka = st.hop_summary(w.m0 or m0, w.m1, "gateway_hop_seconds", hop="kafka")
                rows.append(
                    {
                        "fetch": fetch,
                        "fetch_env": env,
                        "floor_fetch_env": floor_env,
                        "idle_fetch": idle_fetch,
                        "rate": rate,
                        "records_per_s": round(per_s, 1),
                        "gateway_cores": w.cpu["server"],
                        "gateway_us_per_record": round(w.cpu["server"] / per_s * 1e6, 2)
                        if per_s > 0
                        else float("nan"),
                        "kafka_hop": kafka,
                        "broker_cores_with_gateway": w.cpu.get("broker", float("nan")),
                        "feed_cores": w.cpu.get("feed", float("nan")),
                    }
                )
                log(f"  ingest {fetch} {rate:,.0f}/s: {rows[-1]}")
        finally:
            gw.proc.stop(20)
            if gw.cfg is not cfg:
                with contextlib.suppress(Exception):
                    drop_topics(gw.cfg.kafka)
    assert cfg is not None
    # The same feeds without the gateway: first with no consumer (the broker's own cost
    # of taking them), then with the bare decode loop (bench.ingest_floor, the floor of
    # what reading and decoding these records can cost), once per fetch setting.
    floors: dict[tuple[str, float], dict[str, float]] = {}
    idle: dict[float, float] = {}
    """Broker cores with no consumer, per rate (the fetch setting plays no part)."""
    try:
        for row in rows:
            rate = float(row["rate"])
            key = (str(row["fetch"]), rate)
            if key not in floors:
                floors[key] = ingest_floor(p, cfg, rate, row["floor_fetch_env"], idle)
                log(f"  ingest floor {key[0]} {rate:,.0f}/s: {floors[key]}")
            f = floors[key]
            row["broker_cores_without_gateway"] = idle[rate]
            row["floor_records_per_s"] = f["records_per_s"]
            row["floor_cores"] = f["cores"]
            row["floor_us_per_record"] = f["us_per_record"]
            row["broker_cores_with_floor"] = f["broker_cores_with_floor"]
            if f["us_per_record"] > 0:
                row["us_over_floor"] = round(row["gateway_us_per_record"] - f["us_per_record"], 2)
                row["ratio_to_floor"] = round(row["gateway_us_per_record"] / f["us_per_record"], 2)
    finally:
        with contextlib.suppress(Exception):
            drop_topics(cfg.kafka)
    return {"rates": rows}


def ingest_floor(
    p: Plan, cfg: Config, rate: float, fetch_env: dict[str, object], idle: dict[float, float]
) -> dict[str, float]:
    """One feed at ``rate``: the broker's CPU with no consumer (into ``idle``, once per
    rate), then the bare decode loop's CPU per record (and the broker's beside it) with
    the fetch settings of ``fetch_env``."""
    a = p.a
    windows = 1 if rate in idle else 2
    duration = str(windows * (a.settle + a.ingest_s) + 3.0)
    sim = ["simulate", "--rate", str(rate), "--symbols", str(SYMBOLS), "--duration", duration]
    feed = procs.spawn("simfloor", [procs.PY, "-m", "mdgw", *sim], procs.kafka_env(cfg))
    count = Path(tempfile.mkdtemp(prefix="bench-ingest-floor-")) / "count"
    floor: procs.Proc | None = None

    def broker() -> float:
        return procs.cpu_seconds(p.broker) if p.broker else 0.0

    try:
        if rate not in idle:
            time.sleep(a.settle + 1.0)
            t0, b0 = time.time(), broker()
            time.sleep(a.ingest_s)
            idle[rate] = round((broker() - b0) / (time.time() - t0), 3)
        env = procs.kafka_env(cfg, **fetch_env)
        floor = procs.spawn("ingestfloor", [procs.PY, "-m", "bench.ingest_floor", str(count)], env)
        time.sleep(a.settle + 1.0)

        def decoded() -> int:
            try:
                return int(count.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return 0

        t0, n0, c0, b0 = time.time(), decoded(), floor.cpu(), broker()
        time.sleep(a.ingest_s)
        t1, n1, c1, b1 = time.time(), decoded(), floor.cpu(), broker()
        per_s = (n1 - n0) / (t1 - t0)
        cores = (c1 - c0) / (t1 - t0)
        return {
            "records_per_s": round(per_s, 1),
            "cores": round(cores, 4),
            "us_per_record": round(cores / per_s * 1e6, 2) if per_s > 0 else float("nan"),
            "broker_cores_with_floor": round((b1 - b0) / (t1 - t0), 3),
        }
    finally:
        if floor is not None:
            floor.popen.terminate()
            floor.popen.wait(30)
        feed.popen.wait(60)
        shutil.rmtree(count.parent, ignore_errors=True)


def no_broker_result(p: Plan, floor: Any, nb: Any) -> dict[str, Any]:
    """The ``nobroker`` window beside the floor's moderate one (``gateway`` holds its
    summary and hops, or the error)."""
    window = main_window(nb)
    ok = isinstance(window, dict) and "age_ms" in window
    out: dict[str, Any] = {"rate": p.moderate, "clients": p.a.clients, "gateway": window}
    out["diff_ms"] = diff(floor, window) if ok and isinstance(floor, dict) else {}
    return out


def run_kafka_fed(p: Plan, guarded: Any) -> Any:
    """The moderate window on :class:`KafkaFed` (its summary, or the error)."""
    try:
        kf = KafkaFed(p.a.frame_bytes)
    except Exception as e:
        log(f"floor behind Kafka failed: {e!r}")
        return {"error": repr(e)}
    try:
        meter = Meter(kf, p.broker)
        a = p.a
        out = guarded(
            "kafka-fed floor", steady, p, kf, meter, p.moderate, a.clients, a.client_procs, "kfed"
        )
    finally:
        kf.stop()
    return main_window(out)


def main_window(out: Any) -> Any:
    """A ``steady`` result's main window (label ``""``), or ``out`` itself (an error)."""
    return out.get("") if isinstance(out, dict) and "" in out else out


def kafka_fed_result(p: Plan, floor: Any, kafka_fed: Any, gateway: Any) -> dict[str, Any]:
    """The Kafka-fed floor's moderate window beside the floor's and the gateway's:
    ``kafka_minus_floor`` is what the Kafka hop costs a plain broadcaster,
    ``diff_ms`` the gateway's own share over a Kafka-sourced floor."""
    ok = isinstance(kafka_fed, dict) and "age_ms" in kafka_fed
    gw_ok = isinstance(gateway, dict) and "age_ms" in gateway
    floor_ok = isinstance(floor, dict) and "age_ms" in floor
    return {
        "rate": p.moderate,
        "clients": p.a.clients,
        "kafka_fed": kafka_fed,
        "kafka_minus_floor": diff(floor, kafka_fed) if ok and floor_ok else {},
        "diff_ms": diff(kafka_fed, gateway) if ok and gw_ok else {},
    }


def diff(floor: dict[str, Any] | None, gw: dict[str, Any] | None) -> dict[str, float]:
    if not floor or not gw:
        return {}
    return {k: round(gw["age_ms"][k] - floor["age_ms"][k], 3) for k in ("p50", "p99", "p999")}


def run(a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    try:
        return run_in(a, tmp)
    finally:
        if not a.keep_tmp:  # the clients' per-process files: megabytes per run
            shutil.rmtree(tmp, ignore_errors=True)


def run_in(a: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = int(os.environ.get("MDGW_KAFKA_BOOTSTRAP", "127.0.0.1:9092").rsplit(":", 1)[1])
    p = Plan(a, tmp, broker_pid(port))
    res: dict[str, Any] = {"settings": vars(a) | {"client_nice": procs.CLIENT_NICE}}
    only = a.only

    def guarded(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # one broken workload must not lose the others' numbers
            log(f"{name} failed: {e!r}")
            return {"error": repr(e)}

    # ---- the floor
    log(f"floor: {a.clients} clients in {a.client_procs} processes, 3 of 9 streams each")
    floor = Floor(a.frame_bytes, a.stamp, a.floor_wake)
    fm = Meter(floor, p.broker)
    try:
        res["capacity"] = capacity(p, floor, fm)
        log(
            f"floor capacity {p.capacity:,.0f} updates/s; moderate {p.moderate:,.1f}/s, "
            f"overload {p.overload:,.0f}/s"
        )
        floor_big = floor_over = None
        if "big" in only:
            rate = p.moderate * a.clients / a.big_clients
            log(f"floor: {a.big_clients} clients in {a.big_procs} processes at {rate:,.1f}/s")
            floor_big = guarded(
                "floor big", steady, p, floor, fm, rate, a.big_clients, a.big_procs, "fbig"
            )
        if "overload" in only:
            log(f"floor overload {p.overload:,.0f}/s")
            floor_over = guarded(
                "floor overload", overload, p, floor, fm, "fover", "responsive" in only
            )
    finally:
        res["floor_stats"] = floor.stop()

    # ---- the gateway without Kafka (its own share of the latency)
    if "nobroker" in only:
        log(f"gateway without a broker: moderate {p.moderate:,.1f}/s, {a.clients} clients")
        nb: Any = None
        try:
            nobroker = NoBroker(a.stamp, a.nobroker_feed)
            try:
                nb = guarded(
                    "no broker",
                    steady,
                    p,
                    nobroker,
                    Meter(nobroker, None),
                    p.moderate,
                    a.clients,
                    a.client_procs,
                    "nb",
                    scrape=True,
                )
            finally:
                nobroker.stop()
        except Exception as e:
            log(f"gateway without a broker failed: {e!r}")
            nb = {"error": repr(e)}
        res["no_broker"] = no_broker_result(p, res["capacity"].get("moderate"), nb)

    # ---- the gateway, 1 worker
    gw_mod = gw_big = gw_over = None
    sweep_linger = (
        [(f"linger_ms={v}", {"MDGW_KAFKA_PRODUCER_LINGER_MS": v}) for v in a.linger_ms]
        if "kafka" in only
        else []
    )
    if {"moderate", "hops", "big", "overload", "kafka"} & set(only):
        log("gateway (1 worker)")
        try:
            gw = Gateway(workers=a.gateway_workers)
            gm = Meter(gw, p.broker)
            try:
                if a.warmup_s > 0:
                    # A broker just started runs its produce and fetch paths interpreted
                    # until the JIT has compiled them: a cold one made the first moderate
                    # window p99 101 ms against 38 warm, at 3.4x the broker's CPU. The
                    # overload rate warms it in seconds (no clients yet: ingest only).
                    log(f"warming the broker: {a.warmup_s:.0f} s at {p.overload:,.0f}/s")
                    warm = gw.feed(p.overload, a.warmup_s)
                    if warm is not None:
                        warm.popen.wait(a.warmup_s + 60)
                if {"moderate", "hops", "kafka"} & set(only):
                    log(f"gateway moderate {p.moderate:,.1f}/s, {a.clients} clients")
                    gw_mod = guarded(
                        "gateway moderate",
                        steady,
                        p,
                        gw,
                        gm,
                        p.moderate,
                        a.clients,
                        a.client_procs,
                        "gmod",
                        scrape=True,
                        extra=sweep_linger,
                        kafka_floor_s=a.kafka_floor_s if "hops" in only else 0.0,
                    )
                if "big" in only:
                    rate = p.moderate * a.clients / a.big_clients
                    log(f"gateway: {a.big_clients} clients at {rate:,.1f}/s")
                    gw_big = guarded(
                        "gateway big",
                        steady,
                        p,
                        gw,
                        gm,
                        rate,
                        a.big_clients,
                        a.big_procs,
                        "gbig",
                        scrape=True,
                    )
                if "overload" in only:
                    log(f"gateway overload {p.overload:,.0f}/s")
                    gw_over = guarded(
                        "gateway overload", overload, p, gw, gm, "gover", "responsive" in only
                    )
            finally:
                gw.stop()
        except Exception as e:
            log(f"gateway failed: {e!r}")
            res["gateway_error"] = repr(e)

    floor_mod = res["capacity"].get("moderate")
    gmod0 = gw_mod.get("") if isinstance(gw_mod, dict) else None

    # ---- the floor behind Kafka, right after the gateway's moderate window (broker warm)
    if "kafkafed" in only:
        log(f"floor behind Kafka: moderate {p.moderate:,.1f}/s, {a.clients} clients")
        res["kafka_fed"] = kafka_fed_result(p, floor_mod, run_kafka_fed(p, guarded), gmod0)
    res["moderate"] = (
        None
        if "moderate" not in only
        else {
            "rate": p.moderate,
            "clients": a.clients,
            "floor": floor_mod,
            "gateway": gmod0,
            "diff_ms": diff(floor_mod, gmod0) if gmod0 and "age_ms" in gmod0 else {},
        }
    )
    if gmod0 and "hops" in gmod0:
        res["hops"] = gmod0.pop("hops")
    kf = gw_mod.get(KAFKA_FLOOR) if isinstance(gw_mod, dict) else None
    if kf and "kafka_alone" in kf:
        res["kafka_floor"] = {
            "rate": p.moderate,
            "bare": kf["kafka_alone"],
            "gateway_hops": kf["hops"],
            "gateway_age_ms": kf.get("age_ms"),
            "gateway_cpu_cores": kf.get("cpu_cores"),
        }
    fb = floor_big.get("") if isinstance(floor_big, dict) else None
    gb = gw_big.get("") if isinstance(gw_big, dict) else None
    res["big"] = (
        {
            "rate": p.moderate * a.clients / a.big_clients,
            "clients": a.big_clients,
            "floor": fb,
            "gateway": gb,
            "diff_ms": diff(fb, gb) if fb and gb and "age_ms" in fb and "age_ms" in gb else {},
        }
        if "big" in only
        else None
    )
    res["overload"] = {"floor": floor_over, "gateway": gw_over} if "overload" in only else None

    # ---- --workers 2 on the overload workload
    if "workers" in only:
        log(f"gateway --workers 2, overload {p.overload:,.0f}/s")
        w2: Any
        try:
            gw2 = Gateway(workers=2)
            try:
                w2 = guarded("workers 2", overload, p, gw2, Meter(gw2, p.broker), "gw2", False)
            finally:
                gw2.stop()
        except Exception as e:
            w2 = {"error": repr(e)}
        res["workers"] = {"1": gw_over, "2": w2}

    # ---- consumer fetch.wait.max.ms: one gateway per value
    if "kafka" in only:
        sweep: list[dict[str, Any]] = []
        if isinstance(gw_mod, dict):
            for label, s in gw_mod.items():
                if s and "age_ms" in s and label != KAFKA_FLOOR:
                    sweep.append({"setting": label or "defaults", **_sweep_row(s)})
        for v in a.fetch_wait_ms:
            log(f"gateway with fetch.wait.max.ms={v}")
            try:
                g = Gateway(MDGW_KAFKA_FETCH_WAIT_MAX_MS=v)
                try:
                    r = steady(
                        p, g, Meter(g, p.broker), p.moderate, a.clients, a.client_procs, f"fw{v}"
                    )
                finally:
                    g.stop()
                sweep.append({"setting": f"fetch_wait_max_ms={v}", **_sweep_row(r[""])})
            except Exception as e:
                sweep.append({"setting": f"fetch_wait_max_ms={v}", "error": repr(e)})
        res["kafka_settings"] = {"rate": p.moderate, "floor": floor_mod, "rows": sweep}

    if "ingest" in only:
        log(f"ingest: no clients, {a.ingest_rates} updates/s")
        res["ingest"] = guarded("ingest", ingest, p)
    return res


def _sweep_row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "age_ms": s["age_ms"],
        "delivered_per_s": s["delivered_per_s"],
        "cpu_cores": s["cpu_cores"],
    }


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="smoke version, ~4 min")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the clients' result files")
    ap.add_argument(
        "--name", default="latency", help="results file: bench/results/NAME.json (and .png)"
    )
    ap.add_argument("--only", default="", help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument(
        "--gateway-workers", type=int, default=1, help="--workers of the measured gateway"
    )
    ap.add_argument("--client-procs", type=int, default=2)
    ap.add_argument("--big-clients", type=int, default=10_000)
    ap.add_argument("--big-procs", type=int, default=8)
    ap.add_argument("--pingers", type=int, default=5)
    ap.add_argument("--frame-bytes", type=int, default=330, help="floor frame size (gateway ~326)")
    ap.add_argument(
        "--stamp",
        choices=("due", "produced"),
        default="due",
        help="ingest_ts of the floor and of the gateway without a broker: each message's "
        "arrival time (default: its wait for the process's loop counts, as it does for the "
        "gateway on Kafka, whose feed is another process) or when it is built or published "
        "(before the nineteenth pass)",
    )
    ap.add_argument(
        "--floor-wake",
        choices=("feed", "tick"),
        default="feed",
        help="what wakes the floor's loop to produce: a feed thread at each arrival (default, "
        "as the gateway's consumer thread does) or a 1 ms timer (before the nineteenth pass)",
    )
    ap.add_argument(
        "--nobroker-feed",
        choices=("ahead", "live"),
        default="ahead",
        help="the gateway without a broker: its simulator runs ahead and each record is "
        "handed over at its arrival (default), or each event is made as it comes due, "
        "competing with the gateway's loop for the interpreter lock",
    )
    ap.add_argument("--cap-start", type=float, default=60.0, help="first floor step, updates/s")
    ap.add_argument(
        "--capacity",
        type=float,
        default=0.0,
        help="skip the search: the floor's capacity, updates/s",
    )
    ap.add_argument("--cap-factor", type=float, default=1.5)
    ap.add_argument("--cap-steps", type=int, default=10)
    ap.add_argument("--cap-resolution", type=float, default=1.15, help="stop bisecting here")
    ap.add_argument(
        "--cap-p50-ms",
        type=float,
        default=20.0,
        help="a capacity step keeps up: delivered >= 95 %% of offered and p50 age under this",
    )
    ap.add_argument(
        "--cap-p99-ms",
        type=float,
        default=0.0,
        help="and p99 under this (0 = not checked: on a shared machine p99 is others' noise)",
    )
    ap.add_argument("--step-s", type=float, default=5.0, help="window of a capacity step")
    ap.add_argument("--window-s", type=float, default=12.0, help="window of a moderate run")
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument(
        "--kafka-floor-s",
        type=float,
        default=20.0,
        help="with hops: a window this long at the moderate rate in which a bare consumer "
        "process reads the gateway's records too (0: none)",
    )
    ap.add_argument(
        "--warmup-s",
        type=float,
        default=30.0,
        help="feed the first gateway this long at the overload rate before measuring (a "
        "cold broker's JIT); 0: none",
    )
    ap.add_argument("--over-s", type=float, default=20.0)
    ap.add_argument("--resp-s", type=float, default=12.0)
    ap.add_argument("--sweep-s", type=float, default=10.0)
    ap.add_argument("--linger-ms", default="0,5,20", help="producer linger.ms values swept")
    ap.add_argument("--fetch-wait-ms", default="1,20,100", help="consumer fetch.wait.max.ms")
    ap.add_argument("--ingest-rates", default="200,2000,20000")
    ap.add_argument("--ingest-s", type=float, default=8.0)
    ap.add_argument(
        "--ingest-fetch",
        default="default,eager,batched",
        help=f"comma-separated fetch settings for the ingest workload, of {','.join(INGEST_FETCH)}",
    )
    ap.add_argument(
        "--client",
        choices=("python", "go"),
        default="python",
        help="the client processes: bench.latency_client (picows + orjson), or its compiled "
        "twin (bench/goclient, built with the Go toolchain), which costs the shared cores less",
    )
    ap.add_argument(
        "--client-nice",
        type=int,
        default=0,
        help="niceness of the client processes (the machine is shared: niced clients starve)",
    )
    a = ap.parse_args(argv)
    if a.quick:
        a.cap_factor, a.cap_resolution, a.cap_steps = 1.7, 1.3, 6
        a.step_s, a.window_s, a.settle = 3.0, 8.0, 1.0
        a.over_s, a.resp_s, a.sweep_s, a.ingest_s = 8.0, 6.0, 5.0, 3.0
        a.kafka_floor_s = min(a.kafka_floor_s, 8.0)
        a.linger_ms, a.fetch_wait_ms = "0", ""  # a gateway per fetch.wait value: full run only
    a.only = tuple(a.only.split(",")) if a.only else (QUICK if a.quick else ALL)
    if unknown_only := [w for w in a.only if w not in ALL]:
        # a misspelt workload would otherwise be skipped without a word
        ap.error(f"--only: unknown {', '.join(unknown_only)}; known: {', '.join(ALL)}")
    # ints: the settings are integer milliseconds and the config parses the variable as such
    a.linger_ms = [int(v) for v in floats(a.linger_ms)]
    a.fetch_wait_ms = [int(v) for v in floats(a.fetch_wait_ms)]
    a.ingest_rates = floats(a.ingest_rates)
    a.ingest_fetch = [f for f in a.ingest_fetch.split(",") if f]
    unknown = [f for f in a.ingest_fetch if f not in INGEST_FETCH]
    if unknown:
        raise SystemExit(f"--ingest-fetch: unknown {unknown}; known: {', '.join(INGEST_FETCH)}")
    return a


def main(argv: list[str] | None = None) -> None:
    from bench import compiled_client, latency_report

    a = parse(argv)
    procs.CLIENT_NICE = a.client_nice
    if a.client == "go":
        try:
            CLIENT[:] = [str(compiled_client.build())]
        except compiled_client.BuildError as e:
            raise SystemExit(f"--client go: {e}") from None
    started = time.time()
    m0 = procs.machine_busy()
    res = run(a)
    m1 = procs.machine_busy()
    wall = time.time() - started
    res["machine_during_run"] = {
        "wall_s": round(wall, 1),
        "cores_busy_avg": round((m1["busy_s"] - m0["busy_s"]) / wall, 2),
        "load1_end": m1["load1"],
    }
    res["when"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    path = write_result(a.name, res)
    latency_report.print_tables(res)
    latency_report.plot(res, path.with_suffix(".png"))
    log(f"done in {wall:.0f}s: {path}")


if __name__ == "__main__":
    main()
