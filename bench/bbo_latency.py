"""BBO against a depth-10 book, in the same run (docs/protocol.md §4.8).

    .venv/bin/python -m bench.bbo_latency                 # ~50 s
    .venv/bin/python -m bench.bbo_latency --clients 400 --rate 2000 --seconds 20

One ``mdgw gateway`` on real Kafka, ``mdgw simulate`` feeding its 9 streams, and
two equal groups of ``bench.latency_client`` processes (picows + orjson, JSON, each
client on the same 3 of the 9 streams in both groups): one subscribes to ``book``
at depth 10, speed raw, the other to ``bbo``. Both record receive - ``ingest_ts``
of every message over the same wall-clock window (``bench.latency.Meter``), so the
two distributions share the feed, the broker, the gateway process and the machine.

Writes ``bench/results/bbo_latency.json``; bench/README.md ("BBO against depth 10")
has the committed run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import latency as lat
from bench.common import write_result


def run(a: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-bbo-"))
    port = int(os.environ.get("MDGW_KAFKA_BOOTSTRAP", "127.0.0.1:9092").rsplit(":", 1)[1])
    gw = lat.Gateway()
    try:
        meter = lat.Meter(gw, lat.broker_pid(port))
        life = a.settle + a.seconds + 30
        groups = {
            "book_depth10": ("--channel", "book", "--depth", "10"),
            "bbo": ("--channel", "bbo"),
        }
        clients = {
            name: lat.start_clients(name, gw.port, a.clients, a.procs, life, tmp, extra=extra)
            for name, extra in groups.items()
        }
        meter.clients = list(clients.values())
        lat.wait_connected(clients["bbo"], 2 * a.clients, 60)  # the port counts both groups
        lat.log(f"{2 * a.clients} clients connected; feed {a.rate:,.0f} updates/s")
        w = lat.measure(gw, meter, a.rate, a.seconds, a.settle)
        results = {name: cs.finish() for name, cs in clients.items()}
        out: dict[str, Any] = {
            "settings": vars(a),
            "window": {"t0": w.t0, "t1": w.t1, "cpu_cores": w.cpu, "feed": w.feed_log},
        }
        for name, res in results.items():
            out[name] = lat.summary(res, w, a.rate, a.clients)
        return out
    finally:
        gw.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def table(r: dict[str, Any]) -> str:
    rows = ["| subscription | p50 ms | p99 ms | p99.9 ms | msgs/s delivered | bytes/msg |"]
    rows.append("|---|---|---|---|---|---|")
    for name in ("book_depth10", "bbo"):
        s = r[name]
        a = s["age_ms"]
        rows.append(
            f"| {name} | {a['p50']:.2f} | {a['p99']:.2f} | {a['p999']:.2f} | "
            f"{s['delivered_per_s']:,.0f} | {s['frame_bytes']:.0f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=200, help="per group")
    ap.add_argument("--procs", type=int, default=1, help="client processes per group")
    ap.add_argument("--rate", type=float, default=1000.0, help="book updates/s, all streams")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window")
    ap.add_argument("--settle", type=float, default=3.0)
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    r = run(a)
    path = write_result("bbo_latency", r)
    print(table(r))
    print(f"wrote {path} in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
