"""``mdgw top`` in a real terminal (tmux) against the real stack: simulator, gateway, API.

Three WebSocket clients read books while ``mdgw top`` runs in a detached tmux
session of its own server (``tmux -L``); the test reads the screen with
``tmux capture-pane`` until it shows both services up, the clients, a message
rate and the nine live streams. Then the gateway is killed: the screen must say
it is down while ``top`` keeps running, and up again once it is restarted.

The screen is written to the test's tmp dir (``MDGW_E2E_SCREENSHOTS=DIR`` copies
it there as ``top.txt``: ``scripts/screenshot`` puts it in the README).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from mdgw.config import Config
from tests.e2e.test_dashboard import (
    ROOT,
    Service,
    api_ready,
    free_port,
    gateway_ready,
    screenshot_dir,
    service_env,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(180)]

BOOKS = ["BINANCE:BTC-USDT", "KRAKEN:BTC-USD", "COINBASE:ETH-USD"]
CLIENTS = 3


@pytest.fixture
def tmux() -> Iterator[Callable[..., Any]]:
    """``tmux(*args)`` on a private server, killed at the end."""
    exe = shutil.which("tmux")
    if exe is None:
        pytest.skip("tmux not found: apt-get install -y tmux (scripts/ci-deps installs it)")
    sock = f"mdgw-top-{uuid.uuid4().hex[:8]}"

    def run(*args: str) -> str:
        return subprocess.run(
            [exe, "-L", sock, *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout

    yield run
    subprocess.run([exe, "-L", sock, "kill-server"], capture_output=True, timeout=10)


def readers(url: str, stop: threading.Event) -> list[threading.Thread]:
    def read() -> None:
        try:
            with connect(f"{url}?format=json", open_timeout=10) as ws:
                sub = {"op": "subscribe", "id": 1, "channel": "book", "symbols": BOOKS, "depth": 10}
                ws.send(json.dumps(sub))
                while not stop.is_set():
                    try:
                        ws.recv(timeout=0.5)
                    except TimeoutError:
                        pass
        except (ConnectionClosed, OSError):
            pass  # the gateway is killed on purpose

    threads = [threading.Thread(target=read, daemon=True) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    return threads


def screen(tmux: Callable[..., str]) -> str:
    return tmux("capture-pane", "-p", "-t", "top")


def wait_screen(tmux: Callable[..., str], pred: Callable[[str], bool], what: str) -> str:
    deadline = time.monotonic() + 40
    text = ""
    while time.monotonic() < deadline:
        text = screen(tmux)
        if tmux("list-panes", "-t", "top", "-F", "#{pane_dead}").strip() == "1":
            raise AssertionError(f"mdgw top exited; last screen:\n{text}")
        if pred(text):
            return text
        time.sleep(0.5)
    raise AssertionError(f"screen never showed {what}:\n{text}")


def figure(text: str, label: str) -> str:
    m = re.search(rf"{re.escape(label)}\s+(\S+)", text)
    return m.group(1) if m else ""


def test_top_shows_a_running_stack_and_survives_a_gateway_kill(
    config: Config, tmp_path: Path, tmux: Callable[..., str]
) -> None:
    env = service_env(config)
    gw_port, api_port = free_port(), free_port()
    gw_args = ["gateway", "--host", "127.0.0.1", "--port", str(gw_port)]
    sim = Service("simulate", ["simulate", "--rate", "200"], env, tmp_path).start()
    gw = Service("gateway", gw_args, env, tmp_path)
    api = Service("api", ["api", "--host", "127.0.0.1", "--port", str(api_port)], env, tmp_path)
    stop = threading.Event()
    try:
        time.sleep(0.5)
        gw.start()
        api.start()
        wait_until(lambda: gateway_ready(gw_port), 40, "gateway /health ready", sim, gw)
        wait_until(lambda: api_ready(api_port), 40, "API /ready", sim, api)
        readers(f"ws://127.0.0.1:{gw_port}/ws", stop)

        gw_url, api_url = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{api_port}"
        # the pane decides the width, not a COLUMNS the test runner may have set
        top = f"{sys.executable} -m mdgw top --gateway {gw_url} --api {api_url}"
        cmd = f"env -u COLUMNS -u LINES {top}"
        tmux("new-session", "-d", "-s", "top", "-x", "110", "-y", "30", "-c", str(ROOT), cmd)
        tmux("set-option", "-t", "top", "remain-on-exit", "on")

        def healthy(text: str) -> bool:
            return (
                f"gateway {gw_url} ● up" in text
                and f"API     {api_url} ● up" in text
                and figure(text, "clients") == str(CLIENTS)
                and figure(text, "messages/s") not in ("", "—", "0.00/s")
                and figure(text, "records/s") not in ("", "—", "0.00/s")
                and len(re.findall(r"^\S+:\S+\s+live\s+\d", text, re.M)) == 9
            )

        shown = wait_screen(tmux, healthy, "both services up, 3 clients, 9 live streams")
        assert figure(shown, "checksum fails") == "0", shown
        out = screenshot_dir()
        for folder in [tmp_path, *([out] if out is not None else [])]:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "top.txt").write_text(shown.rstrip() + "\n")
        print(f"screen: {tmp_path / 'top.txt'}")

        gw.kill()
        down = wait_screen(
            tmux, lambda t: f"gateway {gw_url} ● down" in t, "the gateway down while top runs"
        )
        assert "still trying" in down and f"API     {api_url} ● up" in down

        gw.start()
        wait_screen(tmux, lambda t: f"gateway {gw_url} ● up" in t, "the gateway up again")
    finally:
        stop.set()
        for s in (api, gw, sim):
            s.stop()
