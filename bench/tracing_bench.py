"""Hot-path cost of tracing: publisher + gateway per record, tracing off, at 1 % and 100 %.

Run: ``.venv/bin/python bench/tracing_bench.py [--events N] [--repeats R] [--quick]``.
Prints a table and writes ``bench/results/tracing.json``.

What is timed, per mode, on the same simulated records (9 streams, 300 levels,
10 % trades, the simulator's periodic snapshots):

- publisher: ``Publisher.publish`` (stamp, encode, tracing hook) into an in-memory
  sink, so the Kafka client's own cost (the same in every mode but for the
  ~70-byte header) is left out;
- gateway: ``Materializer.handle`` (decode, apply, views, hub encode and queue)
  in batches of ``--batch`` records, then ``Hub.flush`` to subscribers whose
  sockets are stubs; every stream has ``--subs`` raw depth-20 subscribers,
  half JSON, half protobuf.

Spans go through the real ``BatchSpanProcessor`` to an exporter that drops them,
so what is measured is what the record path pays; the exporter's thread runs
beside it as it would in production. Times are process CPU time per record
(the exporter thread's work included; steadier than wall time on a shared
machine), wall time is in the JSON too. Modes run interleaved, ``--repeats``
times; the table shows medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from websockets.protocol import State

from core.market import Market
from core.types import BookUpdate, Trade
from gateway.hub import Hub, ViewKey
from gateway.session import Session
from mdgw import tracing
from mdgw.config import KafkaConfig, TelemetryConfig
from mdgw.kafka.sink import MemorySink
from mdgw.kafka.source import Record
from mdgw.materializer import Materializer
from producers.publisher import Publisher
from producers.simulator import SimulatedMarket, default_streams

MODES: dict[str, float | None] = {"off": None, "1%": 0.01, "100%": 1.0}
CFG = KafkaConfig()


class DropExporter(SpanExporter):
    """Accepts every span and keeps none: the export side costs nothing measurable."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def events(n: int, seed: int = 3) -> list[BookUpdate | Trade]:
    market = SimulatedMarket(default_streams(), seed=seed, sequence_base=1_000)
    out: list[BookUpdate | Trade] = list(market.snapshots(0))
    t = 1_000
    while len(out) < n:
        out.extend(market.next_events(t))
        t += 1_000
    return out


def null_session(binary: bool) -> Session:
    proto = SimpleNamespace(
        state=State.OPEN, send_text=lambda _b: None, send_binary=lambda _b: None
    )
    conn = SimpleNamespace(protocol=proto, send_data=lambda: None, transport=None)
    return Session(conn, binary=binary, batch=False)


def set_mode(ratio: float | None, exporter: DropExporter) -> TelemetryConfig:
    tracing.reset()
    if ratio is None:
        return TelemetryConfig()
    tel = TelemetryConfig(tracing=True, trace_ratio=ratio)
    tracing.setup(tel, tracing.PRODUCER_SERVICE, exporter=exporter)
    tracing.setup(tel, tracing.GATEWAY_SERVICE, exporter=exporter)
    return tel


def run_once(
    msgs: list[BookUpdate | Trade], ratio: float | None, batch: int, subs: int
) -> dict[str, float]:
    exporter = DropExporter()
    tel = set_mode(ratio, exporter)
    sink = MemorySink()
    pub = Publisher(sink, CFG, telemetry=tel)
    gc.collect()
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    for m in msgs:
        pub.publish(m)
    pub_ns, pub_cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0

    records = [
        Record(topic, 0, i, key.encode(), value, headers, 0, 0)  # type: ignore[union-attr]
        for i, (topic, key, value, headers) in enumerate(sink.records)
    ]
    n_streams = len(default_streams())
    market = Market()
    hub = Hub(market)
    mat = Materializer(market, CFG, on_book=hub.on_book, on_trade=hub.on_trade)
    mat.handle(records[:n_streams])  # the first snapshots create the books
    for stream in market.streams():
        for i in range(subs):
            s = null_session(binary=i % 2 == 1)
            hub.sessions.add(s)
            hub.add_view(s, ViewKey(False, stream, 20, False))
    hub.flush()
    rest = records[n_streams:]
    gc.collect()
    t0, c0 = time.perf_counter_ns(), time.process_time_ns()
    for i in range(0, len(rest), batch):
        mat.handle(rest[i : i + batch])
        hub.flush()
    gw_ns, gw_cpu = time.perf_counter_ns() - t0, time.process_time_ns() - c0
    tracing.force_flush()
    header_bytes = sum(sum(len(k) + len(v) for k, v in r.headers or ()) for r in records)
    value_bytes = sum(len(r.value or b"") for r in records)
    tracing.reset()
    return {
        "publisher_us": pub_cpu / 1e3 / len(msgs),
        "gateway_us": gw_cpu / 1e3 / len(rest),
        "publisher_wall_us": pub_ns / 1e3 / len(msgs),
        "gateway_wall_us": gw_ns / 1e3 / len(rest),
        "spans_per_record": exporter.spans / len(records),
        "header_bytes_per_record": header_bytes / len(records),
        "value_bytes_per_record": value_bytes / len(records),
        "frames": hub.frames_out,
    }


def hook_check_ns() -> float:
    """What an off hook costs: ``if tracing.ENABLED`` on a module global, in ns."""
    loops = 2_000_000
    glob = {"tracing": tracing}
    hooked = timeit.timeit("if tracing.ENABLED: pass", globals=glob, number=loops)
    bare = timeit.timeit("pass", globals=glob, number=loops)
    return (hooked - bare) / loops * 1e9


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=30_000, help="records per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=200, help="records per consumer batch")
    ap.add_argument("--subs", type=int, default=4, help="subscribers per stream")
    ap.add_argument("--quick", action="store_true", help="3,000 events, 2 repeats")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "tracing.json"))
    args = ap.parse_args(argv)
    if args.quick:
        args.events, args.repeats = 3_000, 2

    msgs = events(args.events)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for _ in range(args.repeats):
        for mode, ratio in MODES.items():
            runs[mode].append(run_once(msgs, ratio, args.batch, args.subs))

    results: dict[str, Any] = {"modes": {}}
    for mode, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        med["total_us"] = med["publisher_us"] + med["gateway_us"]
        results["modes"][mode] = med
    off = results["modes"]["off"]
    print(
        f"{'mode':>6} {'publisher µs':>13} {'gateway µs':>11} {'total µs':>9} {'+µs vs off':>11}"
        f" {'spans/rec':>10} {'hdr B/rec':>10}"
    )
    for mode, med in results["modes"].items():
        med["overhead_us"] = med["total_us"] - off["total_us"]
        print(
            f"{mode:>6} {med['publisher_us']:>13.2f} {med['gateway_us']:>11.2f}"
            f" {med['total_us']:>9.2f} {med['overhead_us']:>+11.2f}"
            f" {med['spans_per_record']:>10.2f} {med['header_bytes_per_record']:>10.1f}"
        )
    results["off_hook_check_ns"] = hook_check_ns()
    print(
        f"off: one hook check costs {results['off_hook_check_ns']:.1f} ns "
        "(3 checks per record on the gateway, 1 on the publisher)"
    )
    results["setup"] = {
        "events": len(msgs),
        "repeats": args.repeats,
        "batch": args.batch,
        "subscribers_per_stream": args.subs,
        "streams": len(default_streams()),
        "depth": 20,
    }
    results["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
