"""W4 REST: ``wrk`` against a real ``mdgw api`` process, order book route vs a constant route.

The API reads this run's topics (a simulator keeps the books moving during the
run) and serves ``/bench/const`` (``bench/api_server.py``): the cost of the
HTTP stack alone. The two routes alternate, ``repeats`` times each, in the same
run; medians are reported, with the API process's CPU time per request.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from typing import Any

from bench import procs
from bench.common import bench_config, drop_topics
from bench.fanout import SYMBOLS, free_port

BOOK_PATH = "/api/v1/orderbook/BINANCE:BTC-USDT?depth=20"
CONST_PATH = "/bench/const"


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    if not m:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def parse_wrk(out: str) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) from ``wrk --latency`` output."""
    res: dict[str, float] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["req_per_s"] = float(m.group(1)) if m else float("nan")
    for q in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", out, re.M)
        res[f"p{q}_ms"] = _ms(m.group(1)) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"(\d+) requests in", out)
    res["requests"] = int(m.group(1)) if m else 0
    return res


def wrk(url: str, seconds: float, connections: int, threads: int = 1) -> dict[str, float]:
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(seconds)}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30).stdout
    return parse_wrk(out)


def run(
    seconds: float = 8.0,
    repeats: int = 2,
    connections: int = 64,
    feed: float = 500.0,
    pythonpath: str = "",
) -> dict[str, Any]:
    """``pythonpath``: extra import dirs for the API process (what-if runs, e.g. httptools)."""
    if shutil.which("wrk") is None:
        return {"error": "wrk not installed (Debian: apt-get install -y wrk)"}
    cfg = bench_config(partitions=6)
    port = free_port()
    sim = procs.start_simulator(cfg, feed, SYMBOLS)
    env = procs.kafka_env(
        cfg,
        MDGW_API_RATE_LIMIT=0,
        MDGW_API_GROUP_ID=f"{cfg.kafka.client_id}-api",
    )
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    argv = [procs.PY, "-m", "bench.api_server", "--host", "127.0.0.1", "--port", str(port)]
    api = procs.spawn(f"api{port}", argv, env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if api.popen.poll() is not None:
                raise RuntimeError(f"mdgw api exited with {api.popen.returncode}")
            try:
                procs.http_get(base + "/ready", 2)
                procs.http_get(base + BOOK_PATH, 2)
                break
            except OSError:
                time.sleep(0.3)
        has_const = True
        try:
            procs.http_get(base + CONST_PATH, 2)
        except OSError:
            has_const = False
        runs: dict[str, list[dict[str, float]]] = {"book": [], "const": []}
        for _ in range(repeats):
            for name, path in (("const", CONST_PATH), ("book", BOOK_PATH)):
                if name == "const" and not has_const:
                    continue
                c0 = api.cpu()
                r = wrk(base + path, seconds, connections)
                r["api_cpu_us_per_req"] = (api.cpu() - c0) / max(1, r["requests"]) * 1e6
                runs[name].append(r)
        out: dict[str, Any] = {"connections": connections, "seconds": seconds, "feed": feed}
        out["pythonpath"] = pythonpath
        out["const_route"] = has_const
        for name, rs in runs.items():
            if rs:
                out[name] = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
                out[f"{name}_runs"] = rs
        if runs["const"] and runs["book"]:
            out["book_vs_const"] = out["book"]["req_per_s"] / out["const"]["req_per_s"]
        return out
    finally:
        api.stop()
        sim.stop()
        drop_topics(cfg.kafka)
