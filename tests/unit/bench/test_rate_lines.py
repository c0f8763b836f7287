"""bench.rate_lines: the rate lines the floor and the gateway without a broker read on stdin;
a bad line is reported and skipped, never the end of the process."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from bench.fanout import free_port
from bench.rate_lines import parse_rate, read_rate


@pytest.mark.parametrize(
    ("line", "rate"),
    [(b"200\n", 200.0), (b" 75.5 \n", 75.5), (b"0\n", 0.0), (b"-1\n", -1.0)],
)
def test_a_rate_line_is_a_number(line: bytes, rate: float) -> None:
    assert parse_rate(line) == rate


@pytest.mark.parametrize("line", [b"fast\n", b"nan\n", b"inf\n", b"1e999\n", b"\xff\n"])
def test_anything_else_is_no_rate(line: bytes) -> None:
    assert parse_rate(line) is None


def test_a_bad_line_is_reported_and_a_blank_one_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert read_rate(b"fast\n", "feeder") is None
    assert read_rate(b"  \n", "feeder") is None
    assert read_rate(b"12\n", "feeder") == 12.0
    err = capsys.readouterr().err
    assert err.count("feeder: not a rate, ignored") == 1 and "fast" in err


def test_the_floor_skips_bad_lines_and_keeps_feeding() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.latency_floor", "--port", str(port), "--streams", "A:X,B:Y"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        # a bad line between two good ones; the rate is taken: messages are produced
        proc.stdin.write(b"fast\n\n200\nnan\n")
        proc.stdin.flush()
        time.sleep(0.5)
        # then the counters, then EOF
        out, err = proc.communicate(b"?\n0\n", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    lines = [orjson.loads(x) for x in out.splitlines() if x.strip()]
    assert len(lines) == 2  # the "?" counters, then the ones printed at EOF
    assert set(lines[-1]) >= {"produced", "sent", "dropped"}
    assert lines[0]["produced"] > 0  # ~100 at 200/s
    assert b"not a rate, ignored: b'fast\\n'" in err and b"b'nan\\n'" in err


@pytest.mark.parametrize("streams", ["A,B", "A:X,", ":X", "A:"])
def test_the_floor_refuses_a_stream_that_is_not_exchange_symbol(streams: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.latency_floor", "--port", "1", "--streams", streams],
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2 and b"is not EXCHANGE:SYMBOL" in out.stderr
