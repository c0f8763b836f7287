"""The latency-vs-load plot of a ``bench.run`` result (matplotlib, the ``bench`` extra)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _series(steps: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for s in steps:
        v = s.get(key)
        if v is not None and not math.isnan(v):
            xs.append(s["feed_rate"])
            ys.append(max(v, 1e-3))
    return xs, ys


def latency_vs_load(r: dict[str, Any], path: Path) -> Path:
    """p50/p99 (log ms) against the feed rate, one panel per hop (p99.9 is in the JSON).

    The x axis is the offered load: delivered messages/s per step are in the JSON
    (they fall when the clients or the gateway saturate, which would fold the curves).
    """
    runs: list[tuple[str, list[dict[str, Any]]]] = []
    for fmt, d in r.get("w1", {}).get("formats", {}).items():
        runs.append((f"W1 {fmt}", d["steps"]))
    for workers, d in r.get("w3", {}).get("workers", {}).items():
        runs.append((f"W3 batch, {workers} worker(s)", d["steps"]))
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5), sharey=True)
    hops = (
        ("broadcast", "gateway histogram: record from Kafka client -> frames written"),
        ("gateway", "gateway_ts - ingest_ts"),
        ("e2e", "receive - ingest_ts (producer -> client)"),
    )
    styles = {"p50": "-", "p99": "--"}
    for ax, (hop, title) in zip(axes, hops, strict=True):
        for i, (label, steps) in enumerate(runs):
            color = f"C{i}"
            for q, ls in styles.items():
                xs, ys = _series(steps, f"{hop}_{q}_ms")
                if xs:
                    ax.plot(xs, ys, ls, marker="o", color=color, label=f"{label} {q}")
        ax.axhline(5 if hop == "e2e" else 1, color="grey", lw=0.8)  # the targets
        ax.set_title(title)
        ax.set_xlabel("feed into Kafka (book updates/s, 102 streams; log)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("latency (ms, log)")
    axes[2].legend(fontsize=7, ncol=2)
    machine = r.get("machine", {})
    fig.suptitle(
        "mdgw latency vs load (2 shared cores; machine busy "
        f"{machine.get('cores_busy_avg', '?')} cores avg during the run)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
