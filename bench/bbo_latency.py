"""BBO against a depth-10 book, in the same run (docs/protocol.md §4.8).

    .venv/bin/python -m bench.bbo_latency                 # ~50 s
    .venv/bin/python -m bench.bbo_latency --clients 400 --rate 2000 --seconds 20

One ``mdgw gateway`` on real Kafka, ``mdgw simulate`` feeding its 9 streams, and
two equal groups of ``bench.latency_client`` processes (picows + orjson, JSON, each
client on the same 3 of the 9 streams in both groups): one subscribes to ``book``
at depth 10, speed raw, the other to ``bbo``. Both record receive - ``ingest_ts``
of every message over the same wall-clock window (``bench.latency.Meter``), so the
two distributions share the feed, the broker, the gateway process and the machine.

``--core``: the gateway's own CPU per record in-process, without Kafka or sockets:
apply the record, then apply + the bbo fast path (top compared, message encoded
when it changed), then apply + a depth-10 view (delta computed and encoded), over
the same simulated records (``producers.simulator``, 300 levels a side).

Writes ``bench/results/bbo_latency.json``; bench/README.md ("BBO against depth 10")
has the committed run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import latency as lat
from bench.common import write_result
from core.bbo import BboBoard
from core.market import Market
from core.types import BookUpdate
from core.views import DepthView
from producers.simulator import SimulatedBook, default_streams
from schemas import wire


def records(n: int, seed: int = 7) -> list[BookUpdate]:
    spec = default_streams(3)[0]
    sim = SimulatedBook(spec, 300, random.Random(seed))
    bids, asks = sim.snapshot_levels()
    out = [BookUpdate(spec.exchange, spec.symbol, 1, 1, bids, asks, True)]
    for seq in range(2, n + 2):
        b, a = sim.book_event()
        out.append(BookUpdate(spec.exchange, spec.symbol, seq, seq, b, a, False, seq - 1))
    return out


def core_cost(n: int, rounds: int = 5) -> dict[str, Any]:
    """CPU ns per record of: apply; apply + bbo; apply + depth-10 view (best of rounds)."""
    recs = records(n)
    stream = recs[0].stream

    def run(mode: str) -> tuple[int, int]:
        market = Market(verify_checksums=False)
        market.apply_book(recs[0], 0)
        book = market.book(stream)
        assert book is not None
        board = BboBoard(market)
        board.open(stream)
        view = DepthView(book, 10)
        sent = 0
        t0 = time.process_time_ns()
        for u in recs[1:]:
            market.apply_book(u, 0)
            if mode == "bbo":
                msg, _ = board.on_book(book)
                if msg is not None:
                    wire.bbo_json(msg)
                    sent += 1
            elif mode == "depth10":
                delta = view.on_update()
                if delta is not None:
                    wire.book_json(delta)
                    sent += 1
        return time.process_time_ns() - t0, sent

    out: dict[str, Any] = {"records": n}
    for mode in ("apply", "bbo", "depth10"):
        best, sent = min(run(mode) for _ in range(rounds))
        out[mode] = {"ns_per_record": round(best / n), "messages": sent}
    for mode in ("bbo", "depth10"):
        extra = out[mode]["ns_per_record"] - out["apply"]["ns_per_record"]
        out[mode]["extra_ns_per_record"] = extra
    return out


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
    ap.add_argument("--core", action="store_true", help="also the in-process CPU per record")
    ap.add_argument("--core-records", type=int, default=50_000)
    a = ap.parse_args(argv)
    t0 = time.monotonic()
    r = run(a)
    if a.core:
        r["core"] = core_cost(a.core_records)
        print(f"core: {r['core']}")
    path = write_result("bbo_latency", r)
    print(table(r))
    print(f"wrote {path} in {time.monotonic() - t0:.0f} s")


if __name__ == "__main__":
    main()
