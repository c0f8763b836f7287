"""Start-up of a consuming process, shared by the gateway and the REST service.

:func:`bootstrap_with_retry` runs :func:`mdgw.bootstrap.bootstrap` until Kafka
answers (a broker just started may say "not leader" for a moment, or come up after
us); :class:`CatchUp` then tells, batch by batch, when the book partitions have
been read up to where they ended at start-up: the moment the process may say it
is ready.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from mdgw.bootstrap import TRADES_WINDOW_MS, BootstrapResult, bootstrap
from mdgw.config import KafkaConfig
from mdgw.kafka.client import Record, SourceError
from mdgw.kafka.source import ThreadedConsumer
from mdgw.materializer import Materializer

log = logging.getLogger(__name__)

KAFKA_ERRORS = (SourceError, TimeoutError)
"""What a bootstrap raises when the broker cannot be read (yet)."""


class CatchUp:
    """Whether the book partitions have been read up to where they ended at start-up."""

    def __init__(
        self,
        targets: dict[tuple[str, int], int],
        *,
        clock: Callable[[], float] = time.perf_counter,
        started: float | None = None,
    ) -> None:
        self._left = dict(targets)
        self._clock = clock
        self._started = clock() if started is None else started

    @property
    def done(self) -> bool:
        return not self._left

    def observe(self, records: Iterable[Record]) -> bool:
        """Account a consumed batch; True on the batch that completes the catch-up only."""
        left = self._left
        if not left:
            return False
        for rec in records:
            key = (rec.topic, rec.partition)
            end = left.get(key)
            if end is not None and rec.offset + 1 >= end:
                del left[key]
        if left:
            return False
        log.info("caught up with Kafka in %.3fs", self._clock() - self._started)
        return True


async def bootstrap_with_retry(
    cfg: KafkaConfig,
    materializer: Materializer,
    consumer: ThreadedConsumer,
    *,
    max_wait: float = 5.0,
    retry_unexpected: bool = False,
    on_failure: Callable[[BaseException], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    trades_window_ms: int = TRADES_WINDOW_MS,
) -> BootstrapResult:
    """Bootstrap, retrying with backoff (0.5 s doubling to ``max_wait``) while Kafka
    cannot be read; safe, as re-applying a snapshot is a no-op. Other errors are
    raised, or, with ``retry_unexpected``, logged with their traceback and retried
    (a process that already serves its health endpoint keeps trying)."""
    wait = 0.5
    while True:
        try:
            return await bootstrap(cfg, materializer, consumer, trades_window_ms=trades_window_ms)
        except KAFKA_ERRORS as e:
            log.warning("bootstrap failed, retrying in %.1fs: %s", wait, e)
            failure: BaseException = e
        except Exception as e:
            if not retry_unexpected:
                raise
            log.exception("bootstrap failed, retrying in %.1fs", wait)
            failure = e
        if on_failure is not None:
            on_failure(failure)
        await sleep(wait)
        wait = min(wait * 2, max_wait)
