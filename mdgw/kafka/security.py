"""Authentication and encryption of every Kafka client (consumers, producer, admin).

One function turns the ``kafka.*`` security settings into librdkafka's keys, so
no client can be created without them: SASL (PLAIN, SCRAM-SHA-256/512) with a
user name and a password (or a file holding it), and TLS with a CA file, an
optional client certificate and key (mutual TLS), and hostname verification on
unless turned off. docs/security.md has an example configuration.
"""

from __future__ import annotations

from pathlib import Path

from mdgw.config import ConfigError, KafkaConfig

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


def sasl_password(cfg: KafkaConfig) -> str:
    """``sasl_password_file``'s contents when set (trailing newline ignored), else the value."""
    if not cfg.sasl_password_file:
        return cfg.sasl_password
    try:
        return Path(cfg.sasl_password_file).read_text().rstrip("\r\n")
    except OSError as e:
        raise ConfigError(f"kafka.sasl_password_file {cfg.sasl_password_file}: {e.strerror}") from e


def security_conf(cfg: KafkaConfig) -> dict[str, str]:
    """librdkafka settings for ``cfg``'s security protocol (merged into every client's)."""
    protocol = cfg.security_protocol.upper()
    conf = {"security.protocol": protocol}
    if protocol.startswith("SASL_"):
        conf["sasl.mechanism"] = cfg.sasl_mechanism.upper()
        conf["sasl.username"] = cfg.sasl_username
        conf["sasl.password"] = sasl_password(cfg)
    if protocol in ("SSL", "SASL_SSL"):
        if cfg.ssl_ca_file:
            conf["ssl.ca.location"] = cfg.ssl_ca_file
        if cfg.ssl_cert_file:
            conf["ssl.certificate.location"] = cfg.ssl_cert_file
            conf["ssl.key.location"] = cfg.ssl_key_file
            if cfg.ssl_key_password:
                conf["ssl.key.password"] = cfg.ssl_key_password
        conf["ssl.endpoint.identification.algorithm"] = (
            "https" if cfg.ssl_check_hostname else "none"
        )
    return conf


def validate_security(cfg: KafkaConfig) -> None:
    """ConfigError for settings no client could connect with."""
    protocol = cfg.security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"kafka.security_protocol must be one of {', '.join(PROTOCOLS)}")
    sasl = protocol.startswith("SASL_")
    if sasl and cfg.sasl_mechanism.upper() not in MECHANISMS:
        raise ConfigError(f"kafka.sasl_mechanism must be one of {', '.join(MECHANISMS)}")
    if sasl and not (cfg.sasl_username and (cfg.sasl_password or cfg.sasl_password_file)):
        raise ConfigError("kafka.security_protocol SASL_* needs sasl_username and sasl_password")
    if not sasl and (cfg.sasl_mechanism or cfg.sasl_username):
        raise ConfigError("kafka.sasl_* settings need security_protocol SASL_SSL/SASL_PLAINTEXT")
    if bool(cfg.ssl_cert_file) != bool(cfg.ssl_key_file):
        raise ConfigError("kafka.ssl_cert_file and kafka.ssl_key_file go together")
