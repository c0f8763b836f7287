"""Tables and plot of ``bench.latency`` results: every gateway figure beside its floor.

.venv/bin/python -m bench.latency_report     # tables and plot again from results/latency.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.common import RESULTS
from mdgw.config import KafkaConfig


def fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    if isinstance(v, float) and math.isnan(v):
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def ratio(g: Any, f: Any) -> str:
    try:
        r = g / f
    except (TypeError, ZeroDivisionError):
        return "-"
    return "-" if math.isnan(r) else f"{r:.2f}x"


def _ok(d: Any) -> bool:
    return isinstance(d, dict) and "age_ms" in d


def latency_rows(floor: Any, gw: Any) -> list[tuple[str, ...]]:
    rows = []
    for k, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        f = floor["age_ms"][k] if _ok(floor) else None
        g = gw["age_ms"][k] if _ok(gw) else None
        d = (g - f) if f is not None and g is not None else None
        rows.append((f"age {label} (ms)", fmt(f, 2), fmt(g, 2), fmt(d, 2), ratio(g, f)))
    f = floor["delivered_per_s"] if _ok(floor) else None
    g = gw["delivered_per_s"] if _ok(gw) else None
    rows.append(
        ("delivered msgs/s", fmt(f, 0), fmt(g, 0), fmt((g or 0) - (f or 0), 0), ratio(g, f))
    )
    fc = floor["cpu_cores"].get("server") if _ok(floor) else None
    gc = gw["cpu_cores"].get("server") if _ok(gw) else None
    rows.append(("server CPU (cores)", fmt(fc, 2), fmt(gc, 2), "", ratio(gc, fc)))
    return rows


WHO_WAS_TOLD = (
    ("clients current", "current"),
    ("clients told behind (in window)", "clients_told_behind"),
    ("clients told (behind/resync/closed)", "told"),
    ("clients silently behind", "silent_behind"),
)


def compare(title: str, floor: Any, gw: Any, extra: list[tuple[str, ...]] | None = None) -> Table:
    t = Table(title=title)
    for c in ("", "floor", "gateway", "gateway - floor", "ratio"):
        t.add_column(c, justify="right" if c else "left")
    for row in latency_rows(floor, gw) + (extra or []):
        t.add_row(*row)
    return t


def kafka_floor_table(kf: dict[str, Any], moderate: dict[str, Any]) -> Table:
    """The Kafka hop alone (a bare consumer process) beside the gateway's own, same
    records, same window; the moderate floor's age for scale."""
    t = Table(
        title=f"3b. The Kafka hop alone, {fmt(kf['rate'], 1)} updates/s (one more moderate window)"
    )
    for c in ("what", "count", "p50 ms", "p99 ms", "p99.9 ms"):
        t.add_column(c, justify="right" if c != "what" else "left")
    rows: list[tuple[str, Any]] = [
        ("Kafka alone: a bare consumer process", kf.get("bare") or {}),
        ("the gateway's consumer thread (kafka hop)", (kf.get("gateway_hops") or {}).get("kafka")),
        ("the gateway's handoff hop", (kf.get("gateway_hops") or {}).get("handoff")),
    ]
    for label, h in rows:
        h = h or {}
        t.add_row(
            label,
            fmt(h.get("count"), 0),
            fmt(h.get("p50_ms"), 2),
            fmt(h.get("p99_ms"), 2),
            fmt(h.get("p999_ms"), 2),
        )
    for label, age in (
        ("client age, gateway (this window)", kf.get("gateway_age_ms")),
        ("client age, floor (moderate window)", _get(moderate.get("floor"), "age_ms")),
    ):
        age = age or {}
        q = [fmt(age.get(k), 2) for k in ("p50", "p99", "p999")]
        t.add_row(label, "", *q)
    t.caption = (
        "the bare consumer (bench.kafka_floor) reads the records the gateway reads, in the same "
        "seconds, with the same client settings and nothing else in its process: what no "
        "Kafka-sourced gateway goes below on this host; exact percentiles (the gateway's are "
        "interpolated in its histogram buckets)"
    )
    over = over_budget(kf.get("bare") or {})
    if over:
        t.caption += f"; the hop alone is over target 2's whole budget at {over}"
    return t


TARGET_MS = {"p50_ms": 0.5, "p99_ms": 2.0}
"""Target 2's budget for gateway - floor at moderate load (issue 14)."""


def over_budget(hop: dict[str, Any]) -> str:
    """Which of a hop's percentiles alone exceed target 2's budget ("" if none, or if the
    hop was not measured): then no gateway behind that hop can meet the target."""
    over = []
    for key, budget in TARGET_MS.items():
        v = hop.get(key)
        if isinstance(v, int | float) and v > budget:
            over.append(f"{key[:3]} ({fmt(v, 2)} > {budget:g} ms)")
    return " and ".join(over)


def three_sides(
    t: Table,
    names: tuple[str, str, str],
    sides: tuple[Any, Any, Any],
    *,
    gateway_beside_middle: bool,
    middle_rows: dict[str, Any],
    suffix: str = "",
) -> None:
    """Columns and rows of a table of three windows: the floor, a middle one (``names[0]``,
    minus the floor in ``names[1]``) and the gateway with Kafka, minus the floor or (with
    ``gateway_beside_middle``) minus the middle one in ``names[2]``. ``middle_rows``: more
    rows of the middle window, each a dict with p50/p99 (keys + ``suffix``) or None."""
    mid = sides[1]
    for c in ("", "floor", names[0], names[1], "gateway, Kafka", names[2]):
        t.add_column(c, justify="right" if c else "left")

    def less(a: Any, b: Any) -> Any:
        return a - b if a is not None and b is not None else None

    for k, label in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
        f, m, g = (d["age_ms"][k] if _ok(d) else None for d in sides)
        last = less(g, m) if gateway_beside_middle else less(g, f)
        t.add_row(
            f"age {label} (ms)", fmt(f, 2), fmt(m, 2), fmt(less(m, f), 2), fmt(g, 2), fmt(last, 2)
        )
    delivered = [fmt(_get(d, "delivered_per_s"), 0) for d in sides]
    t.add_row("delivered msgs/s", delivered[0], delivered[1], "", delivered[2], "")
    cpu = [fmt(_r(d, "cpu_cores", "server"), 2) if _ok(d) else "-" for d in sides]
    t.add_row("server CPU (cores)", cpu[0], cpu[1], "", cpu[2], "")
    for label, h in middle_rows.items():
        if isinstance(h, dict):
            pair = f"{fmt(h.get('p50' + suffix), 2)} / {fmt(h.get('p99' + suffix), 2)}"
            t.add_row(label, "", pair, "", "", "")
    if isinstance(mid, dict) and "error" in mid:
        t.add_row("error", "", str(mid["error"])[:60], "", "", "")


def kafka_fed_table(kfed: dict[str, Any], moderate: dict[str, Any]) -> Table:
    """The floor's broadcaster behind Kafka beside the floor and the gateway: what the
    Kafka hop costs a plain broadcaster, and the gateway's share over that."""
    floor, fed, gw = moderate.get("floor"), kfed.get("kafka_fed"), moderate.get("gateway")
    t = Table(
        title=f"3d. The floor behind Kafka, {fmt(kfed['rate'], 1)} updates/s, "
        f"{kfed['clients']:,} clients (a plain broadcaster fed by the gateway's records' path)"
    )
    middle = {"producer stamp -> frame built p50 / p99 (ms)": _get(fed, "floor_wait_ms") or None}
    three_sides(
        t,
        ("floor, Kafka", "Kafka - floor", "gateway - floor, Kafka"),
        (floor, fed, gw),
        gateway_beside_middle=True,
        middle_rows=middle,
    )
    t.caption = (
        "bench.latency_floor --feed kafka: the floor's broadcaster (no books, no per-client "
        "queues) sends one frame per book record it consumes (the gateway's Kafka settings, "
        "its own topics, mdgw simulate at the same rate), stamped by the producer as the "
        "gateway's are; the gateway's window is the moderate one of table 2"
    )
    diff = kfed.get("diff_ms") or {}
    over = [
        f"{k} +{fmt(diff[q], 2)} > {TARGET_MS[k + '_ms']:g} ms"
        for q, k in (("p50", "p50"), ("p99", "p99"))
        if isinstance(diff.get(q), int | float) and diff[q] > TARGET_MS[k + "_ms"]
    ]
    if diff:
        t.caption += (
            "; against this floor the gateway is over target 2's budget at " + ", ".join(over)
            if over
            else "; against this floor the gateway is within target 2's budget"
        )
    return t


def no_broker_table(nb: dict[str, Any], moderate: dict[str, Any]) -> Table:
    """The moderate window on the gateway with an in-memory broker, beside the floor's and
    the Kafka-fed gateway's: the gateway's own share of the latency, with its hops."""
    floor, gw, own = moderate.get("floor"), moderate.get("gateway"), nb.get("gateway")
    t = Table(
        title=f"3c. The gateway without Kafka, {fmt(nb['rate'], 1)} updates/s, "
        f"{nb['clients']:,} clients (in-memory broker)"
    )
    hops = ((own or {}).get("hops") or {}) if _ok(own) else {}
    middle = {f"{hop} hop p50 / p99 (ms)": hops.get(hop) for hop in ("handoff", "apply", "fanout")}
    three_sides(
        t,
        ("gateway, no broker", "no broker - floor", "Kafka - floor"),
        (floor, own, gw),
        gateway_beside_middle=False,
        middle_rows=middle,
        suffix="_ms",
    )
    t.caption = (
        "the same gateway code and settings on an in-memory broker, the simulator on a thread "
        "of its process: every record still goes through the consumer thread, the hand-off, "
        "apply, encode and the pass over the clients; only the Kafka hop is left out (server "
        "CPU includes the simulator)"
    )
    return t


def tables(res: dict[str, Any]) -> list[Table]:
    out: list[Table] = []
    cap = res.get("capacity") or {}
    if cap.get("steps"):
        t = Table(title="1. Floor capacity (1,000 clients, 3 of 9 streams each)")
        for c in (
            "updates/s",
            "offered msgs/s",
            "delivered msgs/s",
            "p50 ms",
            "p99 ms",
            "keeps up",
        ):
            t.add_column(c, justify="right")
        for s in cap["steps"]:
            t.add_row(
                fmt(s["rate"], 0),
                fmt(s["offered_per_s"], 0),
                fmt(s["delivered_per_s"], 0),
                fmt(s["age_ms"]["p50"], 2),
                fmt(s["age_ms"]["p99"], 2),
                "yes" if s["pass"] else "no",
            )
        t.caption = (
            f"capacity {fmt(cap['rate'], 0)} updates/s = {fmt(cap['delivered_per_s'], 0)} msgs/s "
            f"(delivered >= 95 % of offered, p50 <= {fmt(cap.get('p50_limit_ms'), 0)} ms)"
        )
        out.append(t)
    for key, title in (
        ("moderate", "2. Moderate load"),
        ("big", "2b. Moderate load, 10,000 clients"),
    ):
        m = res.get(key)
        if not m:
            continue
        t = compare(
            f"{title}: {fmt(m['rate'], 1)} updates/s, {m['clients']:,} clients",
            m.get("floor"),
            m.get("gateway"),
        )
        fb = m["floor"].get("frame_bytes") if _ok(m.get("floor")) else None
        gb = m["gateway"].get("frame_bytes") if _ok(m.get("gateway")) else None
        t.add_row("book frame bytes", fmt(fb, 0), fmt(gb, 0), "", ratio(gb, fb))
        for label, k in WHO_WAS_TOLD:
            t.add_row(label, fmt(_get(m.get("floor"), k)), fmt(_get(m.get("gateway"), k)), "", "")
        wait = _get(m.get("floor"), "floor_wait_ms")
        if isinstance(wait, dict):
            t.add_row(
                "floor's wait for its loop p50 / p99 (ms)",
                f"{fmt(wait.get('p50'), 2)} / {fmt(wait.get('p99'), 2)}",
                "",
                "",
                "",
            )
        stamp = (res.get("settings") or {}).get("stamp", "produced")
        t.caption = (
            "target: p99 (gateway - floor) <= 2 ms, p50 <= 0.5 ms; the floor's ingest_ts: "
            + ("arrival (its wait counts)" if stamp == "due" else "frame built (its wait left out)")
        )
        out.append(t)
    hops = res.get("hops")
    if hops:
        t = Table(title="3. Gateway hops over the moderate window (/metrics)")
        for c in ("hop", "count", "p50 ms", "p99 ms", "p99.9 ms"):
            t.add_column(c, justify="right" if c != "hop" else "left")
        for name, h in hops.items():
            t.add_row(
                name,
                fmt(h["count"], 0),
                fmt(h["p50_ms"], 3),
                fmt(h["p99_ms"], 3),
                fmt(h["p999_ms"], 3),
            )
        t.caption = (
            "kafka: producer ingest -> consumer thread; handoff: consumer thread -> loop; apply; "
            "fanout: apply end -> frames written; broadcast: record handed over -> frames "
            "written; end_to_end: ingest -> frames written"
        )
        out.append(t)
    moderate = res.get("moderate") or {
        # a run without "moderate" still measured the floor's moderate window
        "floor": (res.get("capacity") or {}).get("moderate")
    }
    kf = res.get("kafka_floor")
    if kf:
        out.append(kafka_floor_table(kf, moderate))
    nb = res.get("no_broker")
    if nb:
        out.append(no_broker_table(nb, moderate))
    kfed = res.get("kafka_fed")
    if kfed:
        out.append(kafka_fed_table(kfed, moderate))
    over = res.get("overload")
    if over:
        f, g = over.get("floor"), over.get("gateway")
        extra = []
        for label, key in (
            ("resync messages", "resync_messages"),
            ("clients resynced", "clients_resynced"),
            ("clients closed", "clients_closed"),
            *WHO_WAS_TOLD,
        ):
            extra.append((label, fmt(_get(f, key)), fmt(_get(g, key)), "", ""))
        dropped = f.get("floor_counters", {}).get("dropped") if _ok(f) else None
        extra.append(("frames dropped (floor: > 1 MiB unsent)", fmt(dropped), "", "", ""))
        extra.append(
            ("closes by code", fmt(str(_get(f, "closes"))), fmt(str(_get(g, "closes"))), "", "")
        )
        for stat in ("min", "median", "max"):
            fv = f["per_client"][stat] if _ok(f) else None
            gv = g["per_client"][stat] if _ok(g) else None
            extra.append((f"msgs per client {stat}", fmt(fv), fmt(gv), "", ratio(gv, fv)))
        for stat in ("min", "median", "max"):  # among clients offered the same messages
            fv, gv = _r(f, "share", stat), _r(g, "share", stat)
            extra.append((f"share of same-stream median, {stat}", fmt(fv, 2), fmt(gv, 2), "", ""))
        orders = [(x or {}).get("share_by_connect_order") if _ok(x) else None for x in (f, g)]
        extra.append(
            (
                "share by connect order (fifths)",
                *(" / ".join(fmt(v, 2) for v in o) if o else "-" for o in orders),
                "",
                "",
            )
        )
        rate = (g or f or {}).get("rate", float("nan"))
        t = compare(f"4. Overload: {fmt(rate, 0)} updates/s (4x capacity)", f, g, extra)
        t.caption = "target: p99 age <= 1 s, every client current or told"
        out.append(t)
        fr = (f or {}).get("responsive") if isinstance(f, dict) else None
        gr = (g or {}).get("responsive") if isinstance(g, dict) else None
        if fr or gr:
            t = Table(title="5. Responsiveness under overload")
            for c in ("", "floor", "gateway"):
                t.add_column(c, justify="right" if c else "left")
            t.add_row(
                "new clients connected",
                fmt(_r(fr, "connect", "connected")),
                fmt(_r(gr, "connect", "connected")),
            )
            t.add_row(
                "not connected in the window",
                fmt(_r(fr, "connect", "failed")),
                fmt(_r(gr, "connect", "failed")),
            )
            t.add_row(
                "time to connect all (s)",
                fmt(_r(fr, "connect", "all_connected_s"), 2),
                fmt(_r(gr, "connect", "all_connected_s"), 2),
            )
            t.add_row(
                "pings sent / answered",
                f"{fmt(_r(fr, 'pings', 'sent'))} / {fmt(_r(fr, 'pings', 'answered'))}",
                f"{fmt(_r(gr, 'pings', 'sent'))} / {fmt(_r(gr, 'pings', 'answered'))}",
            )
            t.add_row(
                "ping -> pong p50 (ms)",
                fmt(_r(fr, "pings", "p50_ms"), 2),
                fmt(_r(gr, "pings", "p50_ms"), 2),
            )
            t.add_row(
                "ping -> pong p99 (ms)",
                fmt(_r(fr, "pings", "p99_ms"), 2),
                fmt(_r(gr, "pings", "p99_ms"), 2),
            )
            t.caption = "targets: 1,000 connect in <= 10 s, ping p99 <= 100 ms"
            out.append(t)
    ing = res.get("ingest")
    if isinstance(ing, dict) and ing.get("rates"):
        t = Table(title="6. Ingest cost, no clients")
        for c in (
            "fetch",
            "feed updates/s",
            "records/s",
            "gateway cores",
            "gateway µs/record",
            "floor µs/record",
            "gateway - floor",
            "kafka hop p50 / p99 ms",
            "broker cores with gateway",
            "with floor",
            "no consumer",
        ):
            t.add_column(c, justify="right")
        for r in ing["rates"]:
            hop = r.get("kafka_hop") or {}
            t.add_row(
                r.get("fetch", "default"),
                fmt(r["rate"], 0),
                fmt(r["records_per_s"], 0),
                fmt(r["gateway_cores"], 3),
                fmt(r["gateway_us_per_record"], 1),
                fmt(r.get("floor_us_per_record"), 1),
                fmt(r.get("us_over_floor"), 1),
                f"{fmt(hop.get('p50_ms'), 2)} / {fmt(hop.get('p99_ms'), 2)}",
                fmt(r.get("broker_cores_with_gateway"), 3),
                fmt(r.get("broker_cores_with_floor"), 3),
                fmt(r.get("broker_cores_without_gateway"), 3),
            )
        t.caption = (
            "target: <= 25 µs of gateway CPU per record at 2,000 records/s; floor = the "
            "bare decode loop (bench.ingest_floor: same Kafka client and fetch, decode "
            "only); default = no clients, so the idle fetch (fetch.min.bytes 1 MiB, "
            "fetch.wait.max.ms kafka.idle_fetch_wait_ms; the floor with the same); "
            "idle-N ms = that with another wait; eager = the fetch a gateway with clients "
            "uses (fetch.min.bytes 1); batched = 64 KiB or 5 ms"
        )
        out.append(t)
    w = res.get("workers")
    if w:
        t = Table(title="7. Overload with --workers 1 vs 2")
        for c in ("", "--workers 1", "--workers 2", "ratio"):
            t.add_column(c, justify="right" if c else "left")
        w1, w2 = w.get("1"), w.get("2")
        for label, get in (
            ("delivered msgs/s", lambda d: d["delivered_per_s"]),
            ("age p50 (ms)", lambda d: d["age_ms"]["p50"]),
            ("age p99 (ms)", lambda d: d["age_ms"]["p99"]),
            ("server CPU (cores)", lambda d: d["cpu_cores"].get("server")),
            ("clients' CPU (cores)", lambda d: d["cpu_cores"].get("clients")),
            ("broker + feed CPU (cores)", broker_and_feed),
            ("machine CPU (cores)", lambda d: d["cpu_cores"].get("machine")),
            ("delivered msgs per client CPU-second", per_client_core),
        ):
            a = get(w1) if _ok(w1) else None
            b = get(w2) if _ok(w2) else None
            digits = 2 if "(cores)" in label else 0 if "msgs" in label else 1
            t.add_row(label, fmt(a, digits), fmt(b, digits), ratio(b, a))
        t.caption = (
            "with the clients, the broker and the feed on the same host, what the clients can "
            "read bounds the messages: when the delivered messages per client CPU-second are "
            "the same for both and the machine is busy, a second worker's CPU is the clients'"
        )
        out.append(t)
    ks = res.get("kafka_settings")
    if ks and ks.get("rows"):
        t = Table(
            title=f"8. Kafka client settings at moderate load ({fmt(ks['rate'], 1)} updates/s)"
        )
        for c in (
            "setting",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "p99 - floor",
            "gateway cores",
            "feed cores",
            "broker cores",
        ):
            t.add_column(c, justify="right" if c != "setting" else "left")
        fl = ks.get("floor")
        if _ok(fl):
            t.add_row(
                "floor",
                fmt(fl["age_ms"]["p50"], 2),
                fmt(fl["age_ms"]["p99"], 2),
                fmt(fl["age_ms"]["p999"], 2),
                "",
                fmt(fl["cpu_cores"].get("server"), 3),
                "",
                "",
            )
        for r in ks["rows"]:
            if "age_ms" not in r:
                t.add_row(r["setting"], r.get("error", "?"), "", "", "", "", "", "")
                continue
            d = r["age_ms"]["p99"] - fl["age_ms"]["p99"] if _ok(fl) else None
            c = r["cpu_cores"]
            t.add_row(
                r["setting"],
                fmt(r["age_ms"]["p50"], 2),
                fmt(r["age_ms"]["p99"], 2),
                fmt(r["age_ms"]["p999"], 2),
                fmt(d, 2),
                fmt(c.get("server"), 3),
                fmt(c.get("feed"), 3),
                fmt(c.get("broker"), 3),
            )
        k = KafkaConfig()
        t.caption = (
            f"defaults: linger.ms {k.producer_linger_ms:g}, fetch.wait.max.ms "
            f"{k.fetch_wait_max_ms}, fetch.min.bytes {k.fetch_min_bytes}"
        )
        out.append(t)
    return out


def broker_and_feed(d: dict[str, Any]) -> float | None:
    c = d.get("cpu_cores") or {}
    if c.get("broker") is None or c.get("feed") is None:
        return None
    return float(c["broker"]) + float(c["feed"])


def per_client_core(d: dict[str, Any]) -> float | None:
    """Messages delivered per second of the clients' CPU: the same for two runs means the
    clients' CPU, not the server, set how many were delivered."""
    cores = (d.get("cpu_cores") or {}).get("clients")
    return d["delivered_per_s"] / cores if cores else None


def _get(d: Any, key: str) -> Any:
    return d.get(key) if _ok(d) else None


def _r(d: Any, a: str, b: str) -> Any:
    return (d or {}).get(a, {}).get(b) if isinstance(d, dict) else None


def print_tables(res: dict[str, Any]) -> None:
    console = Console(width=140)
    for t in tables(res):
        console.print(t)
    m = res.get("machine_during_run")
    if m:
        settings = res.get("settings", {})
        console.print(
            f"machine: {m['cores_busy_avg']} of 2 cores busy on average over {m['wall_s']} s; "
            f"{settings.get('client', 'python')} client processes at nice "
            f"{settings.get('client_nice')}"
        )


def plot(res: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print(
            f"no plot ({path.name}): matplotlib is not installed (the bench extra)", file=sys.stderr
        )
        return
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    ax = axes[0][0]
    steps = sorted((res.get("capacity") or {}).get("steps") or [], key=lambda s: s["rate"])
    if steps:
        xs = [s["offered_per_s"] for s in steps]
        ax.plot(xs, [s["age_ms"]["p50"] for s in steps], "o-", label="p50")
        ax.plot(xs, [s["age_ms"]["p99"] for s in steps], "o-", label="p99")
        ax.set_xlabel("offered msgs/s (1,000 clients)")
        ax.set_ylabel("age, ms (log)")
        ax.set_yscale("log")
        ax.set_title("1. floor capacity steps")
        ax.legend()
    elif res.get("capacity"):  # --capacity: no search in this run
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            f"capacity given: {res['capacity']['rate']:,.0f} updates/s\n"
            "(--capacity, no search in this run)",
            ha="center",
            va="center",
        )
        ax.set_title("1. floor capacity")
    ax = axes[0][1]
    groups = [(k, res.get(k)) for k in ("moderate", "big") if res.get(k)]
    own = (res.get("no_broker") or {}).get("gateway")
    labels, fl, gw, nb = [], [], [], []
    for key, m in groups:
        for q in ("p50", "p99", "p999"):
            labels.append(f"{'1k' if key == 'moderate' else '10k'} {q}")
            fl.append(m["floor"]["age_ms"][q] if _ok(m.get("floor")) else 0)
            gw.append(m["gateway"]["age_ms"][q] if _ok(m.get("gateway")) else 0)
            nb.append(own["age_ms"][q] if key == "moderate" and _ok(own) else 0)
    if labels:
        x = range(len(labels))
        ax.bar([i - 0.27 for i in x], fl, 0.27, label="floor")
        ax.bar(list(x), gw, 0.27, label="gateway")
        if any(nb):
            ax.bar([i + 0.27 for i in x], nb, 0.27, label="gateway, no broker (3c)")
        ax.set_xticks(list(x), labels, rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel("receive - ingest_ts, ms (log)")
        ax.set_title("2. moderate load (a quarter of capacity)")
        ax.legend()
    ax = axes[1][0]
    hops = res.get("hops") or {}
    names = [n for n, h in hops.items() if isinstance(h.get("p99_ms"), float)]
    if names:
        x = range(len(names))
        ax.bar([i - 0.2 for i in x], [hops[n]["p50_ms"] for n in names], 0.4, label="p50")
        ax.bar([i + 0.2 for i in x], [hops[n]["p99_ms"] for n in names], 0.4, label="p99")
        ax.set_xticks(list(x), names, rotation=30)
        ax.set_ylabel("ms")
        ax.set_title("3. gateway hops (moderate)")
        ax.legend()
    ax = axes[1][1]
    over = res.get("overload") or {}
    pts = [(k, over.get(k)) for k in ("floor", "gateway")]
    w2 = (res.get("workers") or {}).get("2")
    pts.append(("gateway --workers 2", w2))
    pts = [(k, d) for k, d in pts if _ok(d)]
    if pts:
        ax.bar([k for k, _ in pts], [d["age_ms"]["p99"] for _, d in pts], color="tab:red")
        ax.set_ylabel("p99 age, ms (log)")
        ax.set_yscale("log")
        ax2 = ax.twinx()
        ax2.plot([k for k, _ in pts], [d["delivered_per_s"] for _, d in pts], "ko-")
        ax2.set_ylabel("delivered msgs/s (line)")
        ax.set_title("4/7. overload, 4x capacity")
    fig.suptitle(f"bench.latency, {res.get('when', '')}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description="bench.latency's tables and plot, from its results")
    ap.add_argument(
        "results",
        nargs="?",
        type=Path,
        default=RESULTS / "latency.json",
        help="a results file of bench.latency (default: bench/results/latency.json); the "
        "plot is written beside it, with the extension .png",
    )
    args = ap.parse_args()
    try:
        res = json.loads(args.results.read_text())
    except (OSError, ValueError) as e:
        ap.error(f"cannot read {args.results}: {e}")
    if not isinstance(res, dict):
        ap.error(f"{args.results} is not a bench.latency result")
    print_tables(res)
    plot(res, args.results.with_suffix(".png"))


if __name__ == "__main__":
    main()
