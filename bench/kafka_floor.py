"""The Kafka floor: how long the broker hop alone takes on this machine, right now.

One process, one thread, nothing else in it: the gateway's Kafka client wrapper
(``KafkaSource``, the same librdkafka settings, fetch variables from the
environment as the gateway reads them) reads the book topic from its end while
the gateway reads the same records, and for each record takes ``time.time_ns()``
when ``consume()`` returns it minus the producer's ``ingest_ts``: the gateway's
``kafka`` hop without the gateway's process around the consumer (no event loop
holding the interpreter lock, no hand-off). The two measured over the same
records in the same seconds say what the gateway's process adds to the hop, and
what no Kafka-sourced gateway can go below on this host (bench/README.md).

    python -m bench.kafka_floor OUT_JSON

writes ``{"samples": [[receive_wall_s, hop_ms], ...], "bad": N}`` to ``OUT_JSON``
on SIGTERM (the harness keeps the samples inside its window).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from bench.common import Stop, bare_source
from core.types import BookUpdate, Trade
from mdgw.config import load_config
from schemas.codec import decode
from schemas.errors import SchemaError


def record_stamp(value: bytes | None) -> tuple[str, int] | None:
    """(``EXCHANGE:SYMBOL``, the producer's ``ingest_ts``) of a record; None for one that
    is not a stamped market-data message (no value, undecodable, no ``ingest_ts``)."""
    if value is None:
        return None
    try:
        msg = decode(value)
    except SchemaError:
        return None
    if isinstance(msg, BookUpdate | Trade) and msg.ingest_ns:  # the stamped kinds
        return msg.stream, msg.ingest_ns
    return None


def hop_ms(value: bytes | None, now_ns: int) -> float | None:
    """``now_ns`` minus the record's producer ``ingest_ts``, in ms (None: ``record_stamp``
    found no stamp)."""
    found = record_stamp(value)
    return (now_ns - found[1]) / 1e6 if found else None


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    cfg = load_config().kafka
    stop = Stop()
    src = bare_source(cfg, "kafka-floor", (cfg.book_topic,))
    samples: list[tuple[float, float]] = []
    bad = 0
    print("ready", flush=True)
    try:
        while not stop.set:
            records = src.consume(2000, 0.1)  # the gateway's batch size
            now = time.time_ns()  # once per batch, as the gateway stamps its hop
            for rec in records:
                hop = hop_ms(rec.value, now)
                if hop is None:
                    bad += 1
                else:
                    samples.append((now / 1e9, hop))
    finally:
        src.close()
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({"samples": samples, "bad": bad}))
        os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
