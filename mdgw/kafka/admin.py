"""Topic creation and inspection (idempotent), with confluent-kafka's AdminClient."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from mdgw.config import KafkaConfig
from mdgw.kafka.security import security_conf


class TopicAdminError(Exception):
    """Topic creation or description failed at the broker."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(cfg: KafkaConfig) -> list[TopicSpec]:
    """The topics of docs/protocol.md §2.1, with the time-travel checkpoint topic."""
    retention = {"retention.ms": str(cfg.retention_ms)}
    return [
        TopicSpec(cfg.book_topic, cfg.partitions, {**retention, "cleanup.policy": "delete"}),
        TopicSpec(cfg.trades_topic, cfg.partitions, {**retention, "cleanup.policy": "delete"}),
        TopicSpec(
            cfg.snapshots_topic,
            cfg.partitions,
            {
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": "600000",
                "max.message.bytes": "8388608",
            },
        ),
        TopicSpec(
            cfg.stats_topic,
            cfg.partitions,
            {
                "cleanup.policy": "compact",
                "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": "600000",
                "max.message.bytes": "8388608",
            },
        ),
        TopicSpec(
            cfg.checkpoints_topic,
            cfg.partitions,
            {**retention, "cleanup.policy": "delete", "max.message.bytes": "8388608"},
        ),
        TopicSpec(cfg.dlq_topic, 1, {"retention.ms": str(cfg.retention_ms)}),
    ]


def admin_client(cfg: KafkaConfig) -> AdminClient:
    return AdminClient({"bootstrap.servers": cfg.bootstrap, **security_conf(cfg)})


def create_topics(cfg: KafkaConfig, timeout: float = 30.0) -> dict[str, str]:
    """Create missing topics; returns {topic: "created"|"exists"}. Idempotent."""
    admin = admin_client(cfg)
    specs = topic_specs(cfg)
    new = [
        NewTopic(
            s.name,
            num_partitions=s.partitions,
            replication_factor=cfg.replication_factor,
            config=s.config,
        )
        for s in specs
    ]
    result: dict[str, str] = {}
    for name, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            result[name] = "created"
        except KafkaException as e:
            err = e.args[0]
            if err.name() == "TOPIC_ALREADY_EXISTS":
                result[name] = "exists"
            else:
                raise TopicAdminError(f"creating {name}: {err.str()}") from e
    return result


def describe_topic_config(cfg: KafkaConfig, topic: str, timeout: float = 30.0) -> dict[str, str]:
    """The broker's effective configuration of one topic."""
    admin = admin_client(cfg)
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    try:
        entries = admin.describe_configs([resource])[resource].result(timeout=timeout)
    except KafkaException as e:
        raise TopicAdminError(f"describing {topic}: {e}") from e
    return {name: entry.value for name, entry in entries.items()}


def partition_count(cfg: KafkaConfig, topic: str, timeout: float = 10.0) -> int:
    md = admin_client(cfg).list_topics(topic, timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        raise TopicAdminError(f"topic {topic} not found: {t.error if t else 'missing'}")
    return len(t.partitions)
