"""``--workers N``: N gateway processes sharing the port with SO_REUSEPORT.

Each worker is a full replica reading every partition, so connections spread
over cores. Metrics are aggregated with prometheus-client's multiprocess mode.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import signal
import tempfile

from mdgw.config import Config

log = logging.getLogger(__name__)


def _worker(config: Config, index: int, reuse_port: bool) -> None:
    from gateway.app import serve_gateway
    from mdgw.logs import setup_logging

    setup_logging(config.telemetry.log_level, config.telemetry.log_json)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve_gateway(config, index, reuse_port))


def run_workers(config: Config) -> int:
    from gateway.limits import raise_open_file_limit

    soft, _hard = raise_open_file_limit()  # inherited by the workers
    n = config.gateway.workers
    if soft and soft < config.gateway.max_connections + 256:
        log.warning(
            "open-file limit %d is below gateway.max_connections (%d): connections will fail "
            "with EMFILE first; raise the hard limit (ulimit -Hn, LimitNOFILE=)",
            soft,
            config.gateway.max_connections,
        )
    if n == 1:
        _worker(config, 0, False)
        return 0
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="mdgw-prom-")
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_worker, args=(config, i, True), name=f"gateway-{i}") for i in range(n)
    ]
    for p in procs:
        p.start()

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.pid is not None and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = []
    for p in procs:
        p.join()
        codes.append(p.exitcode or 0)
    return max(codes)
