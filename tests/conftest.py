"""Shared fixtures: real Kafka (scripts/kafka-local or MDGW_KAFKA_BOOTSTRAP), fresh topics.

Also the suite's rules:

- Hypothesis profiles: ``ci`` (200 examples, random; chosen when ``CI=true``), ``dev``
  (the default, 50 examples, random) and ``fast`` (10 examples, derandomized: a quick
  local check). ``MDGW_HYPOTHESIS_PROFILE`` or ``--hypothesis-profile`` picks another.
  The core's model tests set no ``max_examples`` of their own, so the profile decides;
  tests that want more on CI ask ``tests.examples.examples(n)``, scaled by the profile.
- Skips are counted: with ``--strict-skips`` (on by default when ``CI=true``) a skip
  whose reason is not in ``ALLOWED_SKIPS`` fails the run, so a test CI is meant to
  run can never pass by not running.
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from mdgw.config import Config, KafkaConfig, load_config
from tests.examples import CI_EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
ON_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# ---- hypothesis profiles ----------------------------------------------------------------

settings.register_profile(
    "ci",
    max_examples=CI_EXAMPLES,
    deadline=None,
    print_blob=True,  # a failure on CI prints the blob that reproduces it locally
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile("fast", max_examples=10, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("MDGW_HYPOTHESIS_PROFILE") or ("ci" if ON_CI else "dev"))

# ---- no silent skips ----------------------------------------------------------------------

CAPTURES_MISSING = "captures not found"
ALLOWED_SKIPS: tuple[str, ...] = (
    # The only skip that depends on the machine: the real exchange recordings live in
    # ../shared beside a checkout, not in the repository (a user's fresh clone has none).
    # CI has them, so there this skip never happens.
    CAPTURES_MISSING,
)
"""Regexes (searched in the skip reason) of skips that ``--strict-skips`` accepts."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that needs a broker is also ``slow``: ``-m "not slow"`` is the quick
    run that needs no Kafka at all (the broker is started on demand, by
    ``kafka_bootstrap``, only when a selected test asks for it)."""
    for item in items:
        if item.get_closest_marker("kafka") is not None:
            item.add_marker(pytest.mark.slow)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--strict-skips",
        action="store_true",
        default=ON_CI,
        help="fail the run when a test skips for a reason not in tests/conftest.py "
        "ALLOWED_SKIPS (default: on when CI=true)",
    )


_skips: list[tuple[str, str]] = []


def _record_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not report.skipped or hasattr(report, "wasxfail"):
        return  # xfail is an expected failure, reported by -rx, not a skip
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    _skips.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _record_skip(report)


def pytest_collectreport(report: pytest.CollectReport) -> None:
    _record_skip(report)


def _unexpected_skips() -> list[tuple[str, str]]:
    return [(n, r) for n, r in _skips if not any(re.search(a, r) for a in ALLOWED_SKIPS)]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not terminalreporter.config.getoption("--strict-skips"):
        return
    bad = _unexpected_skips()
    terminalreporter.write_sep("=", f"strict skips: {len(bad)} unexpected of {len(_skips)}")
    for nodeid, reason in bad:
        terminalreporter.write_line(f"UNEXPECTED SKIP {nodeid}: {reason}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    strict = session.config.getoption("--strict-skips")
    passing = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    if strict and passing and _unexpected_skips():
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---- captures and Kafka ---------------------------------------------------------------------


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
            f"{CAPTURES_MISSING}: set MDGW_CAPTURES_DIR to the folder holding KRAKEN.ws.50.0 "
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
    """A reachable broker: MDGW_KAFKA_BOOTSTRAP, or the local one started on demand.

    A broker named by MDGW_KAFKA_BOOTSTRAP that does not answer is an error of every
    Kafka test, not a skip: a typo must not turn the integration suite green."""
    bootstrap = os.environ.get("MDGW_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    if not _reachable(bootstrap):
        if "MDGW_KAFKA_BOOTSTRAP" in os.environ:
            pytest.fail(
                f"MDGW_KAFKA_BOOTSTRAP={bootstrap} is not reachable: start that broker, or "
                "unset the variable to let the tests start scripts/kafka-local",
                pytrace=False,
            )
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
