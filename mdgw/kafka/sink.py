"""The record sink: an idempotent confluent-kafka producer with delivery accounting.

Producers (simulator, replay, connectors) and the gateway (snapshots, DLQ) write
through this one seam, so tests can swap in :class:`MemorySink`, or
:class:`mdgw.kafka.memory.MemoryBroker` when they also read the records back
(reading has its own seam: :mod:`mdgw.kafka.client`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import KafkaError, Message, Producer

from mdgw.config import KafkaConfig
from mdgw.kafka.client import SOCKET_CONF
from mdgw.kafka.headers import Headers
from mdgw.kafka.security import security_conf

log = logging.getLogger(__name__)


class SinkError(Exception):
    """Records could not be delivered (after the client's own retries)."""


class RecordSink(Protocol):
    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None: ...
    def poll(self) -> None: ...
    def flush(self, timeout: float = 30.0) -> int: ...


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def outstanding(self) -> int:
        """Records sent and not yet reported delivered or failed."""
        with self.lock:
            return self.sent - self.delivered - self.failed


class KafkaSink:
    """Idempotent producer: retries are safe, order per partition is kept."""

    def __init__(
        self, cfg: KafkaConfig, *, linger_ms: float | None = None, extra: dict | None = None
    ):
        conf = {
            "bootstrap.servers": cfg.bootstrap,
            **security_conf(cfg),
            "client.id": cfg.client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": cfg.producer_linger_ms if linger_ms is None else linger_ms,
            "compression.type": "lz4",
            **SOCKET_CONF,
            "message.max.bytes": 8_388_608,
            "queue.buffering.max.messages": 500_000,
            "delivery.timeout.ms": 300_000,
            **(extra or {}),
        }
        self._producer = Producer(conf)
        self.stats = DeliveryStats()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        with self.stats.lock:
            if err is None:
                self.stats.delivered += 1
            else:
                self.stats.failed += 1
                self.stats.last_error = err.str()
        if err is not None:
            log.error("delivery failed topic=%s key=%s: %s", msg.topic(), msg.key(), err.str())

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        kwargs: dict = {
            "key": key.encode() if isinstance(key, str) else key,
            "value": value,
            "on_delivery": self._on_delivery,
        }
        if headers:
            kwargs["headers"] = headers
        if partition is not None:
            kwargs["partition"] = partition
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        while True:
            try:
                self._producer.produce(topic, **kwargs)
                break
            except BufferError:
                # Local queue full: serve delivery reports until there is room.
                self._producer.poll(0.05)
        self.stats.sent += 1
        self._producer.poll(0)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        if not len(self._producer):
            return 0
        # records, not len(): that also counts the client's queued events (a closed
        # port's connect errors made "3 of 5 records" out of 3)
        pending = self.stats.outstanding
        t0 = time.monotonic()
        left = self._producer.flush(timeout)
        took = time.monotonic() - t0
        if left:
            log.warning("%d of %d records still unacknowledged after %.1f s", left, pending, took)
        elif took > 1.0:  # a slow flush says what it waited for (a broker restart, say)
            log.info("flushed %d records in %.1f s", pending, took)
        return left


class MemorySink:
    """Test double keeping records in a list, behind the same interface."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | bytes | None, bytes | None, Headers | None]] = []

    def send(
        self,
        topic: str,
        key: str | bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        self.records.append((topic, key, value, headers))

    def poll(self) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0
