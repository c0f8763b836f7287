"""scripts/lib/supervise.sh, the library of the three local supervisors, on a `sleep`.

No Kafka, Prometheus or Jaeger: the library's start/stop/status/pid rules are
exercised on a harmless process, and each supervisor's command line on an empty
state directory (usage errors and `status` of nothing running).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "scripts" / "lib" / "supervise.sh"
MARKER = "sleep 417"  # an unusual duration: the marker matches only our process


def bash(tmp: Path, body: str) -> subprocess.CompletedProcess[str]:
    prelude = f"""
set -euo pipefail
SUP_NAME=t SUP_STATE={tmp} SUP_PIDFILE={tmp}/t.pid SUP_LOG={tmp}/t.log
SUP_MARKER="{MARKER}" SUP_GRACE=2
source {LIB}
show_logs() {{ echo "logs shown" >&2; }}
ready() {{ [[ -f {tmp}/ready ]]; }}
"""
    return subprocess.run(
        ["bash", "-c", prelude + body], capture_output=True, text=True, timeout=30
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().lower()
    except OSError:
        return "zombie"


def test_spawn_status_stop(tmp_path: Path) -> None:
    started = bash(tmp_path, f"sup_spawn {MARKER}; echo $SUP_SPAWNED")
    pid = int(started.stdout)
    try:
        assert (tmp_path / "t.pid").read_text().strip() == str(pid)
        assert bash(tmp_path, "sup_pid").stdout.strip() == str(pid)
        not_ready = bash(tmp_path, 'sup_status ready " ok"')
        assert not_ready.returncode == 0
        assert not_ready.stdout == f"t: running (pid {pid}), not answering yet\n"
        (tmp_path / "ready").touch()
        assert bash(tmp_path, 'sup_status ready " ok"').stdout == f"t: running (pid {pid}) ok\n"

        stopped = bash(tmp_path, "sup_stop")
        assert stopped.stdout == f"t: stopping pid {pid}\nt: stopped\n"
        assert not alive(pid)
        assert not (tmp_path / "t.pid").exists()
        status = bash(tmp_path, "sup_status ready ''")
        assert (status.returncode, status.stdout) == (3, "t: stopped\n")
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / "t.pid").write_text(f"{stranger.pid}\n")
        assert bash(tmp_path, "sup_pid").returncode == 1
        assert bash(tmp_path, "sup_stop").stdout == "t: not running\n"
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_daemon_dying_during_start_up_is_reported(tmp_path: Path) -> None:
    r = bash(tmp_path, "sup_spawn false; sup_await $SUP_SPAWNED ready 10")
    assert r.returncode == 1
    assert "logs shown" in r.stderr
    assert "exited during start-up" in r.stderr


def test_a_daemon_never_ready_is_stopped(tmp_path: Path) -> None:
    r = bash(tmp_path, f"sup_spawn {MARKER}; echo $SUP_SPAWNED; sup_await $SUP_SPAWNED ready 1")
    pid = int(r.stdout.splitlines()[0])
    try:
        assert r.returncode == 1
        assert "not ready within 1s; stopped it" in r.stderr
        assert not alive(pid)
    finally:
        if alive(pid):
            os.kill(pid, 9)


def test_render_keeps_values_literal(tmp_path: Path) -> None:
    (tmp_path / "in").write_text("a=@A@ b=@B@ a again @A@\n")
    value = "/x & y\\1/z"
    r = bash(tmp_path, f"sup_render {tmp_path}/in {tmp_path}/out 'A={value}' B=2")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out").read_text() == f"a={value} b=2 a again {value}\n"


def test_require_free_names_the_setting(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = bash(tmp_path, f"sup_require_free MY_PORT {port}")
    assert r.returncode == 1
    assert f"port {port} is taken by another process (set MY_PORT)" in r.stderr


@pytest.mark.parametrize(
    ("script", "env_var"),
    [
        ("kafka-local", "MDGW_KAFKA_HOME"),
        ("prometheus-local", "MDGW_PROMETHEUS_DIR"),
        ("jaeger-local", "MDGW_JAEGER_DIR"),
    ],
)
def test_supervisor_command_lines(tmp_path: Path, script: str, env_var: str) -> None:
    env = {**os.environ, env_var: str(tmp_path)}
    path = str(ROOT / "scripts" / script)
    usage = subprocess.run([path, "bogus"], env=env, capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    status = subprocess.run([path, "status"], env=env, capture_output=True, text=True, timeout=30)
    assert (status.returncode, status.stdout) == (3, f"{script}: stopped\n")
    stop = subprocess.run([path, "stop"], env=env, capture_output=True, text=True, timeout=30)
    assert (stop.returncode, stop.stdout) == (0, f"{script}: not running\n")
