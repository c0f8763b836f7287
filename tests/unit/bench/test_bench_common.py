"""bench/common.py: where results are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import common
from mdgw.kafka.client import UNKNOWN_TOPIC, SourceError


def test_a_result_named_with_a_folder_makes_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    path = common.write_result("a_pass/ingest", {"rows": [1]})
    assert path == tmp_path / "results" / "a_pass" / "ingest.json"
    written = json.loads(path.read_text())
    assert written["benchmark"] == "a_pass/ingest" and written["rows"] == [1]


class Answers:
    """A source whose ``partitions`` gives the queued answers in turn (errors are raised);
    partition p of it ends at offset 10 + p."""

    def __init__(self, *answers: object) -> None:
        self.answers = list(answers)
        self.asked = 0

    def partitions(self, topic: str) -> list[int]:
        self.asked += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        return 0, 10 + partition


def unknown() -> SourceError:
    return SourceError("topic t: Broker: Unknown topic or partition", code=UNKNOWN_TOPIC)


def test_a_topic_created_a_moment_ago_is_asked_for_again() -> None:
    no_leader = SourceError("Broker: Not leader for partition", code="not_leader_for_partition")
    src = Answers(unknown(), no_leader, [0, 1, 2])
    ends = common.topic_ends(src, ("t",), wait_s=5, step_s=0)  # type: ignore[arg-type]
    assert ends == [("t", 0, 10), ("t", 1, 11), ("t", 2, 12)]
    assert src.asked == 3


def test_another_error_or_an_unknown_topic_that_lasts_is_raised() -> None:
    down = SourceError("all brokers down", code="brokers_down")
    src = Answers(down, [0])
    with pytest.raises(SourceError, match="brokers down"):
        common.topic_ends(src, ("t",), wait_s=5, step_s=0)  # type: ignore[arg-type]
    assert src.asked == 1
    lasting = Answers(unknown())
    with pytest.raises(SourceError, match="Unknown topic"):
        common.topic_ends(lasting, ("t",), wait_s=0.05, step_s=0.01)  # type: ignore[arg-type]
    assert lasting.asked >= 2
