"""Authenticated, encrypted Kafka: every client of the project over a SASL_SSL listener.

A second local broker (scripts/kafka-local with MDGW_KAFKA_SASL_SSL_PORT) serves a
SASL_SSL listener whose certificate is signed by a CA generated here; users get
PLAIN and SCRAM credentials. The project's admin client, producer (KafkaSink) and
consumers (consumer_conf) create topics, write and read a record through it with
each mechanism; a wrong password and an untrusted CA are refused.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mdgw.config import ConfigError, KafkaConfig, load_config
from mdgw.kafka.admin import admin_client, create_topics
from mdgw.kafka.security import security_conf
from mdgw.kafka.sink import KafkaSink
from mdgw.kafka.source import consumer_conf

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "alice", "alice-secret-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_pki(tmp: Path) -> dict[str, Path]:
    """A CA, the broker's certificate (localhost, 127.0.0.1) and a stranger CA."""
    now = datetime.datetime.now(datetime.UTC)

    def ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        return key, cert

    ca_key, ca_cert = ca("mdgw test CA")
    _, stranger = ca("someone else")
    key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(san, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = {
        "ca": tmp / "ca.pem",
        "stranger": tmp / "stranger.pem",
        "keystore": tmp / "broker.pem",
    }
    paths["ca"].write_bytes(ca_cert.public_bytes(pem))
    paths["stranger"].write_bytes(stranger.public_bytes(pem))
    paths["keystore"].write_bytes(
        _pem_key(key) + cert.public_bytes(pem) + ca_cert.public_bytes(pem)
    )
    return paths


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict[str, Path]]]:
    if shutil.which(os.environ.get("JAVA_HOME", "") + "/bin/java") is None and not shutil.which(
        "java"
    ):
        pytest.skip("java not found: the SASL_SSL broker needs Java 17+")
    tmp = tmp_path_factory.mktemp("sasl")
    pki = make_pki(tmp)
    port, sasl_port = free_port(), free_port()
    env = {
        **os.environ,
        "MDGW_KAFKA_HOME": str(tmp / "kafka"),
        "MDGW_KAFKA_PORT": str(port),
        "MDGW_KAFKA_CONTROLLER_PORT": str(free_port()),
        "MDGW_KAFKA_SASL_SSL_PORT": str(sasl_port),
        "MDGW_KAFKA_SSL_KEYSTORE": str(pki["keystore"]),
        "MDGW_KAFKA_SASL_USERS": f"{USER}:{PASSWORD}",
        "MDGW_KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
    }
    script = str(ROOT / "scripts" / "kafka-local")
    subprocess.run([script, "start"], env=env, check=True, timeout=180)
    try:
        yield sasl_port, pki
    finally:
        subprocess.run([script, "stop"], env=env, check=False, timeout=60)


def secured(port: int, pki: dict[str, Path], mechanism: str, **over: object) -> KafkaConfig:
    prefix = f"s{uuid.uuid4().hex[:8]}"
    fields: dict[str, object] = dict(
        bootstrap=f"127.0.0.1:{port}",
        client_id=f"test-{prefix}",
        security_protocol="SASL_SSL",
        sasl_mechanism=mechanism,
        sasl_username=USER,
        sasl_password=PASSWORD,
        ssl_ca_file=str(pki["ca"]),
        book_topic=f"{prefix}.book",
        trades_topic=f"{prefix}.trades",
        snapshots_topic=f"{prefix}.snapshots",
        checkpoints_topic=f"{prefix}.checkpoints",
        dlq_topic=f"{prefix}.dlq",
        stats_topic=f"{prefix}.stats",
        partitions=1,
    )
    return dataclasses.replace(KafkaConfig(), **{**fields, **over})


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_admin_producer_and_consumer_over_sasl_ssl(sasl_broker, mechanism: str) -> None:
    port, pki = sasl_broker
    cfg = secured(port, pki, mechanism)
    assert set(create_topics(cfg).values()) == {"created"}
    sink = KafkaSink(cfg)
    sink.send(cfg.book_topic, "KRAKEN:BTC-USD", b"hello over TLS")
    assert sink.flush(30) == 0 and sink.stats.failed == 0
    consumer = Consumer(consumer_conf(cfg, f"{cfg.client_id}-read"))
    try:
        consumer.assign([TopicPartition(cfg.book_topic, 0, 0)])
        got = None
        for _ in range(100):
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                got = msg.value()
                break
        assert got == b"hello over TLS"
    finally:
        consumer.close()


@pytest.mark.parametrize(
    "over",
    [
        {"sasl_password": "wrong-password"},
        {"ssl_ca_file": "stranger"},  # the broker's certificate does not chain to it
    ],
)
def test_wrong_password_or_untrusted_broker_is_refused(sasl_broker, over: dict) -> None:
    port, pki = sasl_broker
    if over.get("ssl_ca_file") == "stranger":
        over = {"ssl_ca_file": str(pki["stranger"])}
    cfg = secured(port, pki, "SCRAM-SHA-256", **over)
    with pytest.raises(KafkaException):
        admin_client(cfg).list_topics(timeout=8)


def test_security_settings_are_validated_and_mapped(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        load_config(env={"MDGW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    with pytest.raises(ConfigError, match="sasl_username"):
        load_config(
            env={"MDGW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "MDGW_KAFKA_SASL_MECHANISM": "PLAIN"}
        )
    with pytest.raises(ConfigError, match="security_protocol"):
        load_config(env={"MDGW_KAFKA_SECURITY_PROTOCOL": "TLS"})
    with pytest.raises(ConfigError, match="ssl_key_file"):
        load_config(env={"MDGW_KAFKA_SECURITY_PROTOCOL": "SSL", "MDGW_KAFKA_SSL_CERT_FILE": "c"})
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")
    cfg = load_config(
        env={
            "MDGW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "MDGW_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "MDGW_KAFKA_SASL_USERNAME": "bob",
            "MDGW_KAFKA_SASL_PASSWORD_FILE": str(secret),
            "MDGW_KAFKA_SSL_CA_FILE": "/etc/ca.pem",
            "MDGW_KAFKA_SSL_CERT_FILE": "/etc/client.pem",
            "MDGW_KAFKA_SSL_KEY_FILE": "/etc/client.key",
        }
    ).kafka
    conf = security_conf(cfg)
    assert conf["sasl.password"] == "from-a-file" and conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["ssl.certificate.location"] == "/etc/client.pem"
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert security_conf(KafkaConfig()) == {"security.protocol": "PLAINTEXT"}
