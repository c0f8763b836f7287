"""Shared pieces of the benchmarks: topics on the real broker, result files, tables."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from mdgw.config import Config, KafkaConfig, load_config
from mdgw.kafka.admin import admin_client, create_topics, topic_specs
from mdgw.kafka.client import UNKNOWN_TOPIC, KafkaSource, SourceError

RESULTS = Path(__file__).resolve().parent / "results"


def bench_config(partitions: int = 6, **sections: Any) -> Config:
    """A Config whose topics are fresh and unique (so runs never see each other's data)."""
    base = load_config()
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    k = base.kafka
    kafka = dataclasses.replace(
        k,
        client_id=prefix,
        partitions=partitions,
        book_topic=f"{prefix}.{k.book_topic}",
        trades_topic=f"{prefix}.{k.trades_topic}",
        snapshots_topic=f"{prefix}.{k.snapshots_topic}",
        checkpoints_topic=f"{prefix}.{k.checkpoints_topic}",
        stats_topic=f"{prefix}.{k.stats_topic}",
        dlq_topic=f"{prefix}.{k.dlq_topic}",
    )
    cfg = dataclasses.replace(base, kafka=kafka)
    for name, values in sections.items():
        cfg = dataclasses.replace(cfg, **{name: dataclasses.replace(getattr(cfg, name), **values)})
    create_topics(kafka)
    return cfg


def drop_topics(kafka: KafkaConfig) -> None:
    admin_client(kafka).delete_topics([s.name for s in topic_specs(kafka)], operation_timeout=10)


def write_result(name: str, data: dict[str, Any]) -> Path:
    """``bench/results/<name>.json``; ``name`` may name a folder (``a_pass/ingest``)."""
    payload = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        **data,
    }
    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    out = [line, "-" * len(line)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Stop:
    """Set by SIGTERM: a bench helper process's loop runs ``while not stop.set``."""

    def __init__(self) -> None:
        self.set = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, *_: object) -> None:
        self.set = True


TOPIC_WAIT_S = 15.0
"""How long ``bare_source`` waits for a topic created a moment ago to be ready."""
NEW_TOPIC_ERRORS = frozenset({UNKNOWN_TOPIC, "not_leader_for_partition", "leader_not_available"})
"""What a broker answers about a topic it is still setting up (codes of ``SourceError``)."""


def bare_source(cfg: KafkaConfig, name: str, topics: tuple[str, ...]) -> KafkaSource:
    """The gateway's Kafka client wrapper and settings, every partition of ``topics``
    assigned at its end: what a bench floor reads with (records from now on).

    The end is asked for before this returns and assigned as an offset: assigned as
    ``END`` it is looked up only at the first fetch, and records written meanwhile
    (the caller says it is ready, its feed starts) would be skipped."""
    src = KafkaSource(cfg, f"{cfg.client_id}-{name}")
    src.assign(topic_ends(src, topics))
    return src


def topic_ends(
    src: KafkaSource, topics: tuple[str, ...], wait_s: float = TOPIC_WAIT_S, step_s: float = 0.2
) -> list[tuple[str, int, int]]:
    """(topic, partition, end offset) of every partition of ``topics``, asked again while
    the broker is still setting a topic up, for up to ``wait_s``: the harness creates
    each run's topics just before its floors read them, and a broker just started knows
    a new topic, and then its leaders, only after a moment (any other error, or one
    that lasts, is raised)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return [(t, p, src.watermarks(t, p)[1]) for t in topics for p in src.partitions(t)]
        except SourceError as e:
            if e.code not in NEW_TOPIC_ERRORS or time.monotonic() >= deadline:
                raise
        time.sleep(step_s)
