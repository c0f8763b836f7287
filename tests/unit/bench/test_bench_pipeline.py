"""bench.pipeline_bench's cache eviction and its option."""

from __future__ import annotations

import pytest

from bench import pipeline_bench


def test_evict_writes_every_cache_line() -> None:
    other = bytearray(1024)
    pipeline_bench.evict(other)
    assert other[::64] == b"\x01" * 16 and other.count(1) == 16


def test_a_negative_eviction_size_is_refused_with_a_message(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        pipeline_bench.main(["--evict-kb", "-1"])
    assert e.value.code == 2 and "--evict-kb must be >= 0, got -1" in capsys.readouterr().err
