"""The ingest floor: the bare decode loop the gateway's ingest is compared with.

One process, one thread: the gateway's Kafka client wrapper (``KafkaSource``, the
same librdkafka settings, fetch variables from the environment as the gateway reads
them) reads every partition of the book and trades topics from their end, and each
record is decoded with ``schemas.codec.decode`` (parse and validate), nothing else:
no books, no event loop, no hand-off between threads, no metrics. What the gateway
spends per record above this is its own.

    python -m bench.ingest_floor COUNT_FILE

writes the records decoded so far to ``COUNT_FILE`` every 0.2 s (a whole file each
time, renamed into place) until SIGTERM.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.common import Stop, bare_source
from mdgw.config import load_config
from schemas.codec import decode
from schemas.errors import SchemaError


def main(argv: list[str]) -> int:
    out = Path(argv[0])
    cfg = load_config().kafka
    stop = Stop()
    src = bare_source(cfg, "ingest-floor", (cfg.book_topic, cfg.trades_topic))
    decoded = bad = 0
    next_write = 0.0
    try:
        while not stop.set:
            for rec in src.consume(2000, 0.1):  # the gateway's batch size
                if rec.value is None:  # a tombstone is nothing to decode
                    bad += 1
                    continue
                try:
                    decode(rec.value)
                    decoded += 1
                except SchemaError:
                    bad += 1
            now = time.monotonic()
            if now >= next_write:
                next_write = now + 0.2
                tmp = out.with_suffix(".tmp")
                tmp.write_text(f"{decoded} {bad}\n")
                os.replace(tmp, out)
    finally:
        src.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
