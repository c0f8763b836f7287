"""The gateway's per-record path in one process, no I/O: CPU per record and per message.

Simulated records (102 streams) go through the real Materializer -> Market ->
Hub -> Session.flush with sessions whose transport only counts bytes. CPU time
(``process_time``) is immune to the other work on a shared machine, so this is
the tool for before/after comparisons of hot-path changes; ``--profile`` prints
the cProfile top functions.

    .venv/bin/python -m bench.pipeline_bench --clients 1000 --records 20000

``--evict-kb N`` writes N KiB of other memory between two batches, outside the timing:
live, the gateway wakes for a few records at a time on cores it shares with the broker,
and finds its code and data evicted from the caches (bench/README.md, "Eighth pass").
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import random
import time
from types import SimpleNamespace
from typing import Any

from websockets.protocol import State

from core.market import Market
from gateway.hub import Hub, ViewKey
from gateway.session import Session
from mdgw.config import KafkaConfig, SimulatorConfig
from mdgw.kafka.sink import MemorySink
from mdgw.kafka.source import Record
from mdgw.materializer import Materializer
from producers.publisher import Publisher
from producers.simulator import SimulatedMarket


class CountingTransport:
    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def abort(self) -> None:
        pass


def records(n: int, symbols: int = 34, seed: int = 1) -> list[Record]:
    cfg = dataclasses.replace(SimulatorConfig(), symbols_per_exchange=symbols, seed=seed)
    market = SimulatedMarket.from_config(cfg, sequence_base=1_000_000)
    sink = MemorySink()
    pub = Publisher(sink, KafkaConfig())
    t = 1_764_000_000_000_000_000
    for u in market.snapshots(t):
        pub.publish(u)
    while len(sink.records) < n:
        t += 200_000
        for r in market.next_events(t):
            pub.publish(r)
    out = []
    for i, (topic, key, value, _h) in enumerate(sink.records):
        k = key.encode() if isinstance(key, str) else key
        out.append(Record(topic, 0, i, k, value, None, 0, 0))
    return out


def session(binary: bool, batch: bool, probe_ms: int = 0) -> tuple[Session, CountingTransport]:
    transport = CountingTransport()
    sent: list[bytes] = []
    proto = SimpleNamespace(
        state=State.OPEN, writes=[], send_text=sent.append, send_binary=sent.append
    )
    conn = SimpleNamespace(protocol=proto, transport=transport, send_data=lambda: None)
    s = Session(conn, binary=binary, batch=batch, probe_ns=probe_ms * 1_000_000)
    return s, transport


def answer_probes(sessions: list[Session]) -> None:
    """Every outstanding probe answered (a client that reads at once), as its pong would."""
    for s in sessions:
        if s.out.probe_at >= 0:
            s.on_pong(s.out.probe_payload)


def evict(other: bytearray) -> None:
    """Write a byte in every cache line of ``other``: whatever the caches held is gone."""
    other[::64] = b"\x01" * len(range(0, len(other), 64))


def run(
    n_records: int,
    clients: int,
    per_client: int,
    fmt: str,
    batch: bool,
    batch_size: int,
    profile: bool = False,
    evict_kb: int = 0,
    probe_ms: int = 200,
) -> dict[str, Any]:
    recs = records(n_records)
    market = Market()
    hub = Hub(market)
    mat = Materializer(
        market,
        KafkaConfig(),
        on_book=hub.on_book,
        on_trade=hub.on_trade,
        snapshot_sink=MemorySink(),
    )
    mat.handle(recs[:102])  # the snapshots: every stream exists
    streams = market.streams()
    rng = random.Random(1)
    transports = []
    sessions = []
    for _ in range(clients):
        s, t = session(fmt == "protobuf", batch, probe_ms)
        transports.append(t)
        sessions.append(s)
        hub.sessions.add(s)
        for stream in rng.sample(streams, per_client):
            hub.add_view(s, ViewKey(False, stream, 20, False))
    hub.flush()
    base = sum(t.writes for t in transports), hub.frames_out
    rest = recs[102:]
    prof = cProfile.Profile() if profile else None
    other = bytearray(evict_kb * 1024)
    cpu = 0.0
    if prof:
        prof.enable()
    for i in range(0, len(rest), batch_size):
        if other:
            evict(other)
        t0 = time.process_time()
        mat.handle(rest[i : i + batch_size])
        hub.flush()
        cpu += time.process_time() - t0
        if probe_ms:  # outside the timing: the pongs are the clients' (their reading is not)
            answer_probes(sessions)
    if prof:
        prof.disable()
    msgs = hub.frames_out - base[1]
    out = {
        "records": len(rest),
        "messages": msgs,
        "writes": sum(t.writes for t in transports) - base[0],
        "cpu_s": cpu,
        "us_per_record": cpu / len(rest) * 1e6,
        "us_per_message": cpu / max(1, msgs) * 1e6,
    }
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--per-client", type=int, default=10)
    ap.add_argument("--format", default="protobuf", choices=["json", "protobuf"])
    ap.add_argument("--batch", action="store_true")
    ap.add_argument("--batch-size", type=int, default=200, help="records per consumed batch")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--evict-kb", type=int, default=0, help="other memory written between batches")
    ap.add_argument(
        "--probe-ms",
        type=int,
        default=200,
        help="probe interval (the gateway's default; 0: off); every probe is answered at once",
    )
    a = ap.parse_args(argv)
    if a.evict_kb < 0:
        ap.error(f"--evict-kb must be >= 0, got {a.evict_kb}")
    r = run(
        a.records,
        a.clients,
        a.per_client,
        a.format,
        a.batch,
        a.batch_size,
        a.profile,
        a.evict_kb,
        a.probe_ms,
    )
    print({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()})


if __name__ == "__main__":
    main()
