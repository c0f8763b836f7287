"""KafkaSink.flush against a broker that is not there: the records it could not deliver
are counted and said, not lost silently (no broker needed: the port is closed)."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from mdgw.config import KafkaConfig
from mdgw.kafka.sink import KafkaSink


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_flush_that_gives_up_counts_and_says_what_is_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = KafkaSink(KafkaConfig(bootstrap=f"127.0.0.1:{_closed_port()}"))
    assert sink.flush(0.1) == 0  # nothing queued: nothing said
    for i in range(3):
        sink.send("t", "k", b"v%d" % i)
    time.sleep(1.0)  # the client's connect errors queue as events meanwhile: not records
    with caplog.at_level(logging.WARNING, logger="mdgw.kafka.sink"):
        assert sink.flush(0.3) == 3
    assert "3 of 3 records still unacknowledged" in caplog.text
    assert sink.stats.sent == 3 and sink.stats.delivered == 0
