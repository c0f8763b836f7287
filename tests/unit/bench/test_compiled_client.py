"""bench.compiled_client: the Go twin of bench.latency_client builds on demand and writes
the same result as the Python client, from the same gateway, read the same way."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench import compiled_client
from bench.fanout import free_port
from bench.latency import GATEWAY_ENV, STREAMS


def test_a_missing_or_older_binary_is_stale(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.go").write_text("package main\n")
    binary = tmp_path / "bin" / "client"
    assert compiled_client.stale(binary, src)
    binary.parent.mkdir()
    binary.write_text("")
    past = time.time() - 60
    os.utime(src / "main.go", (past, past))
    assert not compiled_client.stale(binary, src)
    (src / "recorder.go").write_text("package main\n")  # a newer source
    assert compiled_client.stale(binary, src)


def test_without_go_the_build_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(compiled_client.BuildError, match=r"Go toolchain .* is not on PATH"):
        compiled_client.build(tmp_path / "client")


def test_a_broken_source_fails_the_build_with_go_s_message(tmp_path: Path) -> None:
    if shutil.which("go") is None:
        pytest.skip("tool missing: go (the Go toolchain)")
    src = tmp_path / "src"
    src.mkdir()
    (src / "go.mod").write_text("module broken\n\ngo 1.21\n")
    (src / "main.go").write_text("package main\n\nfunc main() { undefined() }\n")
    with pytest.raises(compiled_client.BuildError, match="undefined"):
        compiled_client.build(tmp_path / "client", src)


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client built once for this module's tests (from the repository's sources)."""
    if shutil.which("go") is None:
        pytest.skip("tool missing: go (the Go toolchain)")
    return compiled_client.build(tmp_path_factory.mktemp("goclient") / "latency-client")


@pytest.mark.slow  # builds the client (Go modules on first use)
@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--per-client", "0"], {}, "--per-client: must be at least 1"),
        (["--channel", "trades"], {}, "--channel: invalid choice"),
        (["--clients", "-1"], {}, "must not be negative"),
        (["--clients", "many"], {}, "invalid value"),
        ([], {"LATENCY_CLIENT_READER": "threads"}, "epoll or goroutine"),
        ([], {"LATENCY_CLIENT_SHARDS": "0"}, "a positive number"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(
    binary: Path, tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    base = ["--url", "ws://127.0.0.1:1/ws", "--streams", "A:B", "--out", str(tmp_path / "o")]
    argv = [str(binary), *base, *args]
    r = subprocess.run(
        argv, capture_output=True, text=True, env=dict(os.environ, **env), timeout=30
    )
    assert r.returncode == 2
    assert message in r.stderr
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.ready").exists()


@pytest.mark.slow  # builds the client (Go modules on first use)
def test_without_its_required_arguments_it_says_which(binary: Path) -> None:
    r = subprocess.run([str(binary)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "the following arguments are required: --url, --streams, --out" in r.stderr


def _run_clients(
    argv: list[str], out: Path, seconds: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    proc = subprocess.Popen([*argv, "--out", str(out)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not Path(f"{out}.ready").exists():
            assert proc.poll() is None and time.monotonic() < deadline, "client never ready"
            time.sleep(0.05)
        time.sleep(seconds)
        os.kill(proc.pid, signal.SIGUSR2)  # results so far, the run goes on
        deadline = time.monotonic() + 10
        while True:
            try:
                snap = json.loads(out.read_text())
            except (OSError, ValueError):
                snap = {}
            if snap.get("snapshot") == 1 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert snap.get("snapshot") == 1
        os.kill(proc.pid, signal.SIGUSR1)
        assert proc.wait(20) == 0
        result = json.loads(out.read_text())
        assert result["snapshot"] == -1
        return dict(result)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _shape(v: Any) -> Any:
    """Keys and types, not values (a histogram's length or a count differs between runs)."""
    if isinstance(v, dict):
        return {k: _shape(x) for k, x in v.items() if k not in {"hist", "other", "status"}}
    if isinstance(v, list):
        return "list"
    return type(v).__name__


@pytest.mark.slow
@pytest.mark.parametrize("reader", ["epoll", "goroutine"])
async def test_it_reads_the_gateway_as_the_python_client_does(
    binary: Path, tmp_path: Path, reader: str
) -> None:
    """Both of its readers: the epoll loop (the default) and a goroutine per connection."""
    port = free_port()
    env = dict(os.environ, MDGW_TELEMETRY_LOG_LEVEL="WARNING", MDGW_TELEMETRY_TRACING="0")
    env |= {k: str(v) for k, v in GATEWAY_ENV.items()}  # the benchmark's ping rate
    gw = subprocess.Popen(
        [sys.executable, "-m", "bench.memory_gateway", "--port", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert gw.stdin is not None and gw.stdout is not None
    try:
        line = await asyncio.wait_for(asyncio.to_thread(gw.stdout.readline), 60)
        assert line.split() == [b"ready", str(port).encode()]
        gw.stdin.write(b"20\n")
        gw.stdin.flush()
        common = ["--url", f"ws://127.0.0.1:{port}/ws", "--clients", "12", "--streams"]
        common += [",".join(STREAMS), "--pingers", "2", "--ping-ms", "100", "--duration", "60"]
        go, py = await asyncio.gather(
            asyncio.to_thread(
                _run_clients,
                [str(binary), *common],
                tmp_path / "go.json",
                4,
                dict(os.environ, LATENCY_CLIENT_READER=reader),
            ),
            asyncio.to_thread(
                _run_clients,
                [sys.executable, "-m", "bench.latency_client", *common, "--offset", "12"],
                tmp_path / "py.json",
                4,
            ),
        )
    finally:
        gw.kill()
        gw.wait()
    assert _shape(go) == _shape(py)
    for r in (go, py):
        assert r["errors"] == {}
        assert r["snapshots"] >= 12 * 3  # a snapshot of each of a client's 3 streams
        assert r["updates"] > 0
        assert sum(sum(h) for h in r["hist"].values()) == r["updates"]
        assert all(ms >= 0 for ms in r["per_client"]["connect_ms"])
        assert r["per_client"]["group"][:3] == [0, 1, 2]
        rtts = [us for us in r["pings"]["rtt_us"] if us >= 0]
        assert rtts and len(rtts) >= len(r["pings"]["sent_ns"]) - 4
        assert r["other"].get("pong", 0) == len(rtts)
    # the same streams at the same rate: the same messages, within what timing can move
    assert abs(go["updates"] - py["updates"]) <= 0.2 * py["updates"]


@pytest.mark.slow  # builds the client (Go modules on first use)
async def test_bad_frames_are_counted_and_a_close_code_kept(binary: Path, tmp_path: Path) -> None:
    """What a server sends that is not a book message: counted as the Python client counts it,
    never a crash."""
    from websockets.asyncio.server import ServerConnection, serve

    async def handler(ws: ServerConnection) -> None:
        await ws.recv()  # the subscription
        await ws.send("not json {")
        await ws.send('{"type":"status","status":"resync"}')
        await ws.send('{"type":"order_book_update","ingest_ts":"soon"}')  # no integer: skipped
        await ws.send(b"\x00\x01binary")
        await ws.send("[1, 2]")
        await ws.close(4000, "bye")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        common = ["--url", f"ws://127.0.0.1:{port}/ws", "--clients", "1", "--streams", "A:B"]
        common += ["--per-client", "1", "--duration", "60"]
        go, py = await asyncio.gather(
            asyncio.to_thread(_run_clients, [str(binary), *common], tmp_path / "go.json", 1.5),
            asyncio.to_thread(
                _run_clients,
                [sys.executable, "-m", "bench.latency_client", *common],
                tmp_path / "py.json",
                1.5,
            ),
        )
    for r in (go, py):
        assert r["other"] == {"bad_json": 1, "status": 1, "list": 1}
        assert r["status"] == {"resync": 1}
        assert r["book_messages"] == 0 and r["errors"] == {}
        assert r["per_client"]["close"][0][0] == 4000
