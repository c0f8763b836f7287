"""Shared fixtures: real Kafka (scripts/kafka-local or MDGW_KAFKA_BOOTSTRAP), fresh topics."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mdgw.config import Config, KafkaConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def captures_dir() -> Path | None:
    """The shared exchange captures, if this checkout has them beside it."""
    env = os.environ.get("MDGW_CAPTURES_DIR")
    path = Path(env) if env else ROOT.parent / "shared" / "data" / "captures"
    return path if (path / "KRAKEN.ws.50.0").is_file() else None


@pytest.fixture(scope="session")
def captures() -> Path:
    """The folder of the real cryptofeed captures (never copied into the repository)."""
    path = captures_dir()
    if path is None:
        pytest.skip(
            "captures not found: set MDGW_CAPTURES_DIR to the folder holding KRAKEN.ws.50.0 "
            "(default <repo>/../shared/data/captures)"
        )
    return path


def _reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """A reachable broker: MDGW_KAFKA_BOOTSTRAP, or the local one started on demand."""
    bootstrap = os.environ.get("MDGW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if not _reachable(bootstrap):
        if "MDGW_KAFKA_BOOTSTRAP" in os.environ:
            pytest.skip(f"Kafka at {bootstrap} is not reachable")
        subprocess.run([str(ROOT / "scripts" / "kafka-local"), "start"], check=True)
    return bootstrap


@pytest.fixture
def kafka_cfg(kafka_bootstrap: str) -> Iterator[KafkaConfig]:
    """Fresh, uniquely named topics for one test (3 partitions), created on the broker."""
    from mdgw.kafka.admin import admin_client, create_topics, topic_specs

    prefix = f"t{uuid.uuid4().hex[:10]}"
    base = KafkaConfig()
    cfg = dataclasses.replace(
        base,
        bootstrap=kafka_bootstrap,
        client_id=f"test-{prefix}",
        book_topic=f"{prefix}.{base.book_topic}",
        trades_topic=f"{prefix}.{base.trades_topic}",
        snapshots_topic=f"{prefix}.{base.snapshots_topic}",
        checkpoints_topic=f"{prefix}.{base.checkpoints_topic}",
        stats_topic=f"{prefix}.{base.stats_topic}",
        dlq_topic=f"{prefix}.{base.dlq_topic}",
        partitions=3,
    )
    create_topics(cfg)
    yield cfg
    admin_client(cfg).delete_topics([s.name for s in topic_specs(cfg)], operation_timeout=10)


@pytest.fixture
def config(kafka_cfg: KafkaConfig) -> Config:
    """A whole Config on the test's topics, servers on free ports."""
    base = load_config(env={})
    return dataclasses.replace(
        base,
        kafka=kafka_cfg,
        gateway=dataclasses.replace(
            base.gateway, host="127.0.0.1", port=0, group_id=f"{kafka_cfg.client_id}-gw"
        ),
        api=dataclasses.replace(
            base.api, host="127.0.0.1", port=0, group_id=f"{kafka_cfg.client_id}-api"
        ),
    )
