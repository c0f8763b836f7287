"""Every workload against real Kafka and real processes, in one command.

    .venv/bin/python -m bench.run            # the full run (~15 min)
    .venv/bin/python -m bench.run --quick    # a smoke version (~3 min)
    .venv/bin/python -m bench.run --only w1,w5

Workloads (bench/README.md has the targets and the latest numbers):

- W1 fan-out: 102 streams, clients x 10 random streams at depth 20, raw, a list
  of feed rates (the last is the target, 5,000 updates/s); protobuf and JSON.
  Every message is verified (sequences and checksums). Latency: gateway_ts -
  ingest_ts, receive - ingest_ts, and the gateway's broadcast histogram.
- W2 connections: 10,000 clients, one subscription each, compression off and on:
  RSS per connection, time to connect all, then the W1 feed.
- W3 ceiling: batching clients, the feed raised step by step until p99 end to end
  passes 50 ms or a message is lost; 1 worker and --workers 2.
- W4 REST: wrk on the order book route vs the constant route.
- W5 ingest: records/s consumed, decoded and applied with no clients.
- Reference: bench.ceiling (no book, no encoding) with W3's clients, and the
  websockets / picows / raw transports side by side at one load.

Writes bench/results/<workload>.json, bench/results/summary.json and
bench/results/latency_vs_load.png, and prints the targets-vs-measured table.
CPU seconds of every process are recorded: the machine has 2 cores shared with
other work, so per-CPU-second figures are the comparable ones.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from typing import Any

from bench import fanout, procs
from bench.common import RESULTS, table, write_result
from bench.fanout import Shape, experiment, reference, summarize, totals

ALL = ("w5", "w4", "w1", "w2", "w3", "ref")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def slim(step: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in step.items()}


def run_steps(
    exp: fanout.Experiment, steps: list[float], seconds: float, settle: float
) -> list[dict[str, Any]]:
    """Every feed rate in turn on the same connections; one summary per step."""
    for r in steps:
        st = exp.step(r, seconds, settle)
        log(f"  feed {r:,.0f}/s: cpu s { ({k: round(v, 1) for k, v in st.cpu.items()}) }")
    results = exp.finish()
    out = [slim(summarize(st, results)) for st in exp.steps]
    tot = totals(results)
    for s in out:
        s["totals"] = tot
    return out


# ---- workloads --------------------------------------------------------------------------


def w1(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": a.clients, "per_client": 10, "depth": 20, "formats": {}}
    for fmt in a.formats.split(","):
        steps = rates(a.w1_rates) if fmt == "protobuf" else rates(a.w1_json_rates)
        shape = Shape(a.clients, 10, 20, fmt, procs=a.client_procs, sample=a.sample)
        log(f"W1 {fmt}: {a.clients} clients, feed steps {steps}")
        with experiment(shape) as exp:
            log(f"  connected {exp.info['connected']}")
            res = run_steps(exp, steps, a.step_seconds, a.settle)
            out["formats"][fmt] = {"connect": exp.info, "steps": res}
    return out


def w2(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": a.w2_clients, "runs": {}}
    for comp in (False, True):
        shape = Shape(
            a.w2_clients,
            1,
            20,
            "protobuf",
            compression=comp,
            verify="seq",
            full_every=10,
            procs=a.w2_procs,
            sample=a.sample * 4,
        )
        env = {"MDGW_GATEWAY_COMPRESSION": int(comp), "MDGW_GATEWAY_MAX_CONNECTIONS": a.w2_clients}
        log(f"W2 compression={comp}: {a.w2_clients} clients")
        with experiment(shape, env=env) as exp:
            info = dict(exp.info)
            log(f"  connected {info['connected']}")
            before, after = info["rss_before_kib"], info["rss_after_kib"]
            conns = max(1, info["connected"]["established"])
            info["rss_per_conn_kib"] = (after - before) / conns
            steps = run_steps(exp, rates(a.w1_rates)[-1:], a.step_seconds, a.settle)
            info["connect_all_s"] = steps[0]["totals"]["connect_all_s"]
            out["runs"]["on" if comp else "off"] = {"info": info, "steps": steps}
    return out


def w3_stop(s: dict[str, Any]) -> bool:
    """A step past the ceiling: p99 end to end over 50 ms, or data lost (break/resync)."""
    return s["incidents"] > 0 or not (s["e2e_p99_ms"] <= 50.0)


def w3(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"clients": a.clients, "workers": {}}
    for workers in (1, 2):
        shape = Shape(
            a.clients,
            10,
            20,
            "protobuf",
            batch=True,
            verify="seq",
            full_every=20,
            procs=a.client_procs,
            sample=a.sample * 4,
        )
        log(f"W3 workers={workers}: batching clients, feed steps {rates(a.w3_rates)}")
        with experiment(shape, workers=workers) as exp:
            log(f"  connected {exp.info['connected']}")
            steps = run_steps(exp, rates(a.w3_rates), a.step_seconds, a.settle)
        ok = [s for s in steps if not w3_stop(s)]
        best = max(ok, key=lambda s: s["delivered_per_s"]) if ok else None
        out["workers"][str(workers)] = {
            "steps": steps,
            "best_delivered_per_s": best["delivered_per_s"] if best else 0.0,
            "best_feed_rate": best["feed_rate"] if best else 0.0,
        }
    return out


def ref(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    steps = rates(a.ref_rates)
    pool = int(sum(steps) * a.step_seconds / 102 * 1.3) + 200
    shape = Shape(
        a.clients,
        10,
        20,
        "protobuf",
        batch=True,
        verify="seq",
        full_every=0,
        procs=a.client_procs,
        sample=a.sample * 4,
    )
    log(f"ceiling reference (raw sockets, batching): feed steps {steps}")
    with reference(shape, "raw", pool) as exp:
        res = run_steps(exp, steps, a.step_seconds, 1.0)
    ok = [s for s in res if s["incidents"] == 0]
    out["batch"] = {
        "steps": res,
        "best_delivered_per_s": max((s["delivered_per_s"] for s in ok), default=0.0),
    }
    # transports side by side: one message per frame, one fixed load
    out["transports"] = {}
    tshape = Shape(a.ref_clients, 10, 20, "protobuf", verify="seq", procs=a.client_procs)
    tpool = int(a.ref_transport_rate * a.step_seconds / 102 * 1.3) + 200
    for transport in ("raw", "websockets", "picows"):
        log(f"transport {transport}: {a.ref_clients} clients, feed {a.ref_transport_rate}/s")
        try:
            with reference(tshape, transport, tpool) as exp:
                (s,) = run_steps(exp, [a.ref_transport_rate], a.step_seconds, 1.0)
        except Exception as e:  # a transport that cannot run is reported, not fatal
            out["transports"][transport] = {"error": repr(e)}
            continue
        s["server_cpu_us_per_msg"] = (
            s["cpu_s_per_s"]["gateway"] / max(1, s["delivered_per_s"]) * 1e6
        )
        out["transports"][transport] = s
    return out


def w4(a: argparse.Namespace) -> dict[str, Any]:
    from bench import rest

    log(f"W4 REST: wrk -c64, {a.wrk_seconds}s x {a.wrk_repeats} per route")
    out = rest.run(a.wrk_seconds, a.wrk_repeats, 64)
    if a.w4_pythonpath:
        log(f"W4 what-if: the API with extra imports from {a.w4_pythonpath}")
        out["what_if"] = rest.run(a.wrk_seconds, a.wrk_repeats, 64, pythonpath=a.w4_pythonpath)
    return out


def w5(a: argparse.Namespace) -> dict[str, Any]:
    from bench import ingest_bench

    log(f"W5 ingest: fill {a.fill_seconds}s at max simulator rate, then read back")
    return ingest_bench.run(a.fill_seconds)


# ---- the table --------------------------------------------------------------------------


def fmt(v: float, unit: str = "", nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:,.{nd}f}{unit}"


def targets(r: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []

    def row(name: str, target: str, measured: str, met: bool | None) -> None:
        rows.append((name, target, measured, {True: "yes", False: "NO", None: "-"}[met]))

    for fmt_name, d in r.get("w1", {}).get("formats", {}).items():
        s = d["steps"][-1]
        t = s["totals"]
        row(
            f"W1 {fmt_name} record->frames written p99 (gw histogram)",
            "< 1 ms",
            fmt(s["broadcast_p99_ms"], " ms", 2),
            s["broadcast_p99_ms"] < 1,
        )
        row(
            f"W1 {fmt_name} gateway_ts-ingest_ts p50/p99/p99.9",
            "-",
            f"{fmt(s['gateway_p50_ms'], '', 1)}/{fmt(s['gateway_p99_ms'], '', 1)}/"
            f"{fmt(s['gateway_p999_ms'], ' ms', 1)}",
            None,
        )
        row(
            f"W1 {fmt_name} producer->client p99 (p50/p99.9)",
            "< 5 ms",
            f"{fmt(s['e2e_p99_ms'], ' ms')} ({fmt(s['e2e_p50_ms'])}/{fmt(s['e2e_p999_ms'])})",
            s["e2e_p99_ms"] < 5,
        )
        row(
            f"W1 {fmt_name} breaks / checksum failures / resyncs",
            "0",
            f"{t['breaks']} / {t['checksum_failures']} / {sum(t['status'].values())}",
            t["breaks"] == 0 and t["checksum_failures"] == 0 and not t["status"],
        )
        row(
            f"W1 {fmt_name} delivered msgs/s at feed {s['feed_rate']:,.0f}/s",
            "-",
            fmt(s["delivered_per_s"], "", 0),
            None,
        )
        lo = d["steps"][0]
        row(
            f"W1 {fmt_name} at feed {lo['feed_rate']:,.0f}/s ({lo['delivered_per_s']:,.0f} msgs/s):"
            " frames written p50/p99, gateway_ts p99, e2e p99",
            "-",
            f"{fmt(lo['broadcast_p50_ms'], '', 2)}/{fmt(lo['broadcast_p99_ms'], '', 2)}, "
            f"{fmt(lo['gateway_p99_ms'])}, {fmt(lo['e2e_p99_ms'], ' ms')}",
            None,
        )
    for mode, d in r.get("w2", {}).get("runs", {}).items():
        info = d["info"]
        limit = 20 if mode == "off" else 64
        row(
            f"W2 RSS per connection, compression {mode}",
            f"<= {limit} KiB",
            fmt(info["rss_per_conn_kib"], " KiB"),
            info["rss_per_conn_kib"] <= limit,
        )
        row(
            f"W2 connect all ({info['connected']['established']}), compression {mode}",
            "< 10 s",
            fmt(info["connect_all_s"], " s"),
            info["connect_all_s"] < 10,
        )
        s = d["steps"][-1]
        row(
            f"W2 feed {s['feed_rate']:,.0f}/s, compression {mode}: delivered / e2e p99",
            "-",
            f"{fmt(s['delivered_per_s'], '', 0)}/s / {fmt(s['e2e_p99_ms'], ' ms')}",
            None,
        )
    ref_steps = r.get("ref", {}).get("batch", {}).get("steps", [])
    ceiling = r.get("ref", {}).get("batch", {}).get("best_delivered_per_s", 0.0)
    for workers, d in r.get("w3", {}).get("workers", {}).items():
        best = d["best_delivered_per_s"]
        target = ">= 300,000/s" if workers == "1" else "-"
        row(
            f"W3 sustained delivered msgs/s, {workers} worker(s), batching",
            target,
            fmt(best, "/s", 0),
            best >= 300_000 if workers == "1" else None,
        )
        top = max(d["steps"], key=lambda s: s["delivered_per_s"])
        row(
            f"W3 {workers} worker(s): most delivered, any latency (feed {top['feed_rate']:,.0f}/s)",
            "-",
            f"{fmt(top['delivered_per_s'], '/s', 0)}, e2e p99 {fmt(top['e2e_p99_ms'], ' ms', 0)}",
            None,
        )
        eff = cpu_efficiency(d["steps"], ref_steps)
        if eff:
            row(
                f"W3 {workers} worker(s): CPU per message vs raw fan-out at the same load",
                "-",
                f"{eff[1]:.2f} vs {eff[2]:.2f} us/msg = {100 * eff[0]:.0f} % of the ceiling's "
                f"efficiency (at {eff[3]:,.0f} msgs/s)",
                None,
            )
        if ceiling:
            row(
                f"W3 {workers} worker(s) as share of the raw-socket ceiling ({ceiling:,.0f}/s)",
                ">= 60 %" if workers == "1" else "-",
                fmt(100 * best / ceiling, " %"),
                best / ceiling >= 0.6 if workers == "1" else None,
            )
    w4r = r.get("w4", {})
    if "book" in w4r:
        b = w4r["book"]
        row(
            "W4 order book req/s (64 conns, 1 worker)",
            ">= 10,000",
            fmt(b["req_per_s"], "", 0),
            b["req_per_s"] >= 10_000,
        )
        row("W4 order book p99", "< 10 ms", fmt(b["p99_ms"], " ms", 2), b["p99_ms"] < 10)
        if "book_vs_const" in w4r:
            row(
                "W4 order book / constant route",
                ">= 75 %",
                fmt(100 * w4r["book_vs_const"], " %"),
                w4r["book_vs_const"] >= 0.75,
            )
    elif w4r:
        row("W4 REST", "-", w4r.get("error", "no result"), None)
    w5r = r.get("w5", {})
    if w5r:
        v = w5r["gateway_records_per_cpu_s"]
        row(
            "W5 gateway ingest records per CPU-second (per core)",
            ">= 200,000",
            fmt(v, "", 0),
            v >= 200_000,
        )
        row(
            "W5 gateway catch-up records/s (wall, shared box)",
            "-",
            fmt(w5r["gateway_records_per_s"], "", 0),
            None,
        )
    return rows


def us_per_msg(s: dict[str, Any]) -> float:
    return s["cpu_s_per_s"]["gateway"] / max(1.0, s["delivered_per_s"]) * 1e6


def cpu_efficiency(
    steps: list[dict[str, Any]], ref_steps: list[dict[str, Any]]
) -> tuple[float, float, float, float] | None:
    """(ref us/msg / gateway us/msg, gateway us/msg, ref us/msg, load) at the closest loads."""
    best = None
    for g in steps:
        for f in ref_steps:
            ratio = g["delivered_per_s"] / max(1.0, f["delivered_per_s"])
            gap = abs(1 - ratio)
            if gap < 0.25 and (best is None or gap < best[0]):
                best = (gap, g, f)
    if best is None:
        return None
    _, g, f = best
    return us_per_msg(f) / us_per_msg(g), us_per_msg(g), us_per_msg(f), g["delivered_per_s"]


def write_all(
    r: dict[str, Any], args: argparse.Namespace, started: float, workloads: bool = True
) -> None:
    for name, data in r.items():
        if name != "machine" and workloads:
            write_result(f"{name}_{NAMES[name]}", data)
    try:
        rows = targets(r)
    except (KeyError, TypeError, IndexError) as e:  # a failed workload: keep the rest
        log(f"targets table incomplete: {e!r}")
        rows = []
    old = json.loads((RESULTS / "summary.json").read_text()) if not workloads else {}
    summary = {
        "args": old.get("args", vars(args)),
        "elapsed_s": old.get("elapsed_s", round(time.time() - started, 1)),
        "machine_during_run": r.get("machine"),
        "targets": [
            dict(zip(("metric", "target", "measured", "met"), x, strict=True)) for x in rows
        ],
    }
    write_result("summary", summary)
    try:
        from bench.plot import latency_vs_load

        path = latency_vs_load(r, RESULTS / "latency_vs_load.png")
        log(f"wrote {path}")
    except ImportError as e:
        log(f"no plot ({e}): pip install -e '.[bench]'")
    print()
    print(table(rows, ("metric", "target", "measured", "met")))


NAMES = {
    "w1": "fanout",
    "w2": "connections",
    "w3": "ceiling",
    "w4": "rest",
    "w5": "ingest",
    "ref": "reference",
}


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="short smoke version (~3 min)")
    ap.add_argument(
        "--report-only",
        action="store_true",
        help="no runs: table, summary.json and plot again from bench/results/*.json",
    )
    ap.add_argument("--only", default=",".join(ALL), help=f"comma-separated subset of {ALL}")
    ap.add_argument("--clients", type=int, default=1000, help="W1/W3 clients")
    ap.add_argument("--client-procs", type=int, default=4, help="load generator processes")
    ap.add_argument("--formats", default="protobuf,json")
    ap.add_argument(
        "--w1-rates", default="100,250,500,1000,5000", help="feed steps (last = target)"
    )
    ap.add_argument("--w1-json-rates", default="250,5000", help="feed steps of the JSON run")
    ap.add_argument(
        "--client-nice", type=int, default=10, help="niceness of the load generators (0 = none)"
    )
    ap.add_argument("--w2-clients", type=int, default=10_000)
    ap.add_argument("--w2-procs", type=int, default=5)
    ap.add_argument("--w3-rates", default="1000,2000,3000,4000,6000,8000")
    ap.add_argument("--ref-rates", default="1000,2000,4000,8000,16000")
    ap.add_argument("--ref-clients", type=int, default=1000)
    ap.add_argument("--ref-transport-rate", type=float, default=1000.0)
    ap.add_argument("--step-seconds", type=float, default=9.0)
    ap.add_argument("--settle", type=float, default=2.0, help="seconds dropped per step")
    ap.add_argument("--sample", type=int, default=5, help="latency sample every Nth message")
    ap.add_argument("--wrk-seconds", type=float, default=8.0)
    ap.add_argument("--wrk-repeats", type=int, default=2)
    ap.add_argument("--fill-seconds", type=float, default=8.0)
    ap.add_argument(
        "--w4-pythonpath",
        default="",
        help="what-if W4 run of the API with this extra import dir (e.g. a pip --target "
        "holding httptools)",
    )
    args = ap.parse_args(argv)
    if unknown := [w for w in args.only.split(",") if w not in ALL]:
        # a misspelt workload would otherwise be skipped without a word
        ap.error(f"--only: unknown {', '.join(unknown)}; known: {', '.join(ALL)}")
    if args.quick:
        args.clients = min(args.clients, 300)
        args.client_procs = min(args.client_procs, 2)
        args.w1_rates = "250,5000"
        args.w1_json_rates = "5000"
        args.w2_clients = min(args.w2_clients, 2000)
        args.w2_procs = 2
        args.w3_rates = "1000,3000"
        args.ref_rates = "2000,8000"
        args.ref_clients = 200
        args.step_seconds = 5.0
        args.settle = 1.5
        args.wrk_seconds, args.wrk_repeats = 4.0, 1
        args.fill_seconds = 3.0
    return args


def load_results() -> dict[str, Any]:
    """The workload files of the last run (``--report-only``)."""
    out: dict[str, Any] = {}
    for name, suffix in NAMES.items():
        path = RESULTS / f"{name}_{suffix}.json"
        if path.exists():
            out[name] = json.loads(path.read_text())
    summary = RESULTS / "summary.json"
    if summary.exists():
        out["machine"] = json.loads(summary.read_text()).get("machine_during_run")
    return out


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    procs.CLIENT_NICE = args.client_nice
    started = time.time()
    if args.report_only:
        write_all(load_results(), args, started, workloads=False)
        return
    m0 = procs.machine_busy()
    results: dict[str, Any] = {}
    runners = {"w5": w5, "w4": w4, "w1": w1, "w2": w2, "w3": w3, "ref": ref}
    for name in [n for n in ALL if n in args.only.split(",")]:
        try:
            results[name] = runners[name](args)
        except Exception as e:  # one broken workload must not lose the others' numbers
            log(f"{name} failed: {e!r}")
            results[name] = {"error": repr(e)}
    m1 = procs.machine_busy()
    wall = time.time() - started
    results["machine"] = {
        "cores_busy_avg": round((m1["busy_s"] - m0["busy_s"]) / wall, 2),
        "load1_end": m1["load1"],
    }
    log(f"done in {wall:.0f}s; machine busy {results['machine']['cores_busy_avg']} cores avg")
    write_all(results, args, started)
    print(json.dumps(results["machine"]))


if __name__ == "__main__":
    main()
