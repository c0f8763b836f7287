"""``mdgw demo``: topics, simulator, gateway and API as child processes of one command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from mdgw.config import Config
from mdgw.kafka.admin import create_topics
from mdgw.observe import observe_banner, observe_env


def run_demo(
    config: Config, *, rate: float = 200.0, observe: bool = False, prometheus: str | None = None
) -> int:
    for name, state in create_topics(config.kafka).items():
        print(f"topic {name}: {state}")
    env = {**os.environ, "MDGW_KAFKA_BOOTSTRAP": config.kafka.bootstrap}
    if observe:  # tracing on, trace view on (mdgw/observe.py)
        env = observe_env(config, env)
    exe = [sys.executable, "-m", "mdgw"]
    children = [
        subprocess.Popen([*exe, "simulate", "--rate", str(rate)], env=env),
        subprocess.Popen([*exe, "gateway"], env=env),
        subprocess.Popen([*exe, "api"], env=env),
    ]
    print(
        "\nmdgw demo running:\n"
        f"  WebSocket  ws://127.0.0.1:{config.gateway.port}/ws\n"
        f"  REST/UI    http://127.0.0.1:{config.api.port}/  (OpenAPI at /schema)\n"
        f"{observe_banner(config, prometheus) if observe else ''}"
        "  AUTH IS OFF in this demo: see README 'Security' before exposing it.\n"
        "Ctrl-C stops the demo (Kafka keeps running: scripts/kafka-local stop).\n",
        flush=True,
    )
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.5)
    finally:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(timeout=15)
            except subprocess.TimeoutExpired:
                c.kill()
    failed = [c.args for c in children if c.returncode not in (0, -signal.SIGTERM, None)]
    return 1 if failed and not stopping else 0
