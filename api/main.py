"""Running the REST service: ``mdgw api`` (:func:`run_api`) and in-process (:func:`start_api`).

One uvicorn server with the Litestar app, uvloop when installed, TLS when
``api.tls_cert``/``api.tls_key`` are set. uvicorn's own proxy-header rewriting is
off: the client address is decided by :mod:`api.security` from
``api.trusted_proxies``, in one place. Access logs are off (``api_requests_total``
counts every request); uvicorn keeps the logging set up by ``mdgw.logs``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from dataclasses import dataclass

import uvicorn
from litestar import Litestar

from api.app import create_app
from api.state import KafkaStateStore, StateStore
from mdgw.config import Config

log = logging.getLogger(__name__)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def server_config(config: Config, app: Litestar) -> uvicorn.Config:
    """uvicorn settings for the app (see the module docstring)."""
    api = config.api
    return uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        loop="uvloop" if _available("uvloop") else "asyncio",
        http="httptools" if _available("httptools") else "h11",
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        access_log=False,
        log_config=None,
        ssl_certfile=api.tls_cert or None,
        ssl_keyfile=api.tls_key or None,
        timeout_graceful_shutdown=10,
    )


def run_api(config: Config) -> int:
    """Serve until SIGINT/SIGTERM; 0 after a clean stop, 1 if the server could not start."""
    server = uvicorn.Server(server_config(config, create_app(config)))
    scheme = "https" if config.api.tls_cert else "http"
    log.info("REST API on %s://%s:%d", scheme, config.api.host, config.api.port)
    if not (config.auth.api_keys or config.auth.api_keys_file):
        log.warning(
            "REST API KEYS ARE OFF: /api/v1 is open to anyone who reaches port %d. "
            "Configure MDGW_AUTH_API_KEYS (README: Security).",
            config.api.port,
        )
    server.run()
    return 0 if server.started else 1


@dataclass
class RunningApi:
    """An API server running in this event loop (tests, benchmarks, the demo)."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    app: Litestar
    store: StateStore
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def start_api(
    config: Config, state: StateStore | None = None, timeout: float = 30.0
) -> RunningApi:
    """Start the server as a task of the running loop; returns once it listens.

    ``api.port`` 0 picks a free port (``RunningApi.port``). The state loads in the
    background: poll ``/ready`` to wait for it.
    """
    store = state if state is not None else KafkaStateStore(config)
    app = create_app(config, store)
    server = uvicorn.Server(server_config(config, app))
    task = asyncio.create_task(server.serve(), name="api-server")
    deadline = asyncio.get_running_loop().time() + timeout
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("API server exited during start-up")
        if asyncio.get_running_loop().time() > deadline:
            server.should_exit = True
            raise TimeoutError("API server did not start in time")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return RunningApi(server, task, app, store, port)
