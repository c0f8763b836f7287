"""``run_connector``: one venue's live feed into Kafka, the entry point of ``mdgw connect``.

Wiring only: venue name -> handler class and default endpoints, canonical
symbols -> subscription, a Kafka publisher unless one is given, the sequence
base, then the shared :class:`~producers.connectors.runner.FeedRunner`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from core.types import Exchange
from mdgw.config import Config
from producers.connectors import binance, coinbase, kraken
from producers.connectors.base import HandlerBase
from producers.connectors.errors import ConnectorConfigError
from producers.connectors.options import ConnectorOptions
from producers.connectors.runner import FeedRunner, RecordPublisher, fetch_json
from producers.connectors.stats import ConnectorStats
from producers.connectors.symbols import Subscription, check_binance_listing
from producers.simulate_run import sequence_base

VENUES: dict[str, Exchange] = {
    "binance": Exchange.BINANCE,
    "coinbase": Exchange.COINBASE,
    "kraken": Exchange.KRAKEN,
}
DEFAULT_WS_URLS: dict[Exchange, str] = {
    Exchange.BINANCE: binance.DEFAULT_WS_URL,
    Exchange.COINBASE: coinbase.DEFAULT_WS_URL,
    Exchange.KRAKEN: kraken.DEFAULT_WS_URL,
}
DEFAULT_REST_URLS: dict[Exchange, str] = {Exchange.BINANCE: binance.DEFAULT_REST_URL}


def parse_venue(venue: str) -> Exchange:
    """``binance`` / ``BINANCE`` -> Exchange.BINANCE; anything else is a config error."""
    exchange = VENUES.get(venue.strip().lower())
    if exchange is None:
        raise ConnectorConfigError(f"unknown venue {venue!r}; one of {', '.join(VENUES)}")
    return exchange


def make_handler(
    exchange: Exchange, subscription: Subscription, options: ConnectorOptions, base: int
) -> HandlerBase:
    """The pure handler of ``exchange``, numbering every stream from ``base``."""
    timeout_ns = int(options.snapshot_timeout * 1e9)
    if exchange is Exchange.BINANCE:
        return binance.BinanceHandler(
            subscription,
            sequence_base=base,
            snapshot_limit=options.snapshot_limit,
            max_buffered=options.max_buffered_diffs,
            initial_delay_ns=int(options.initial_snapshot_delay * 1e9),
            retry_delay_ns=int(options.snapshot_retry * 1e9),
            snapshot_timeout_ns=timeout_ns,
        )
    if exchange is Exchange.COINBASE:
        return coinbase.CoinbaseHandler(
            subscription, sequence_base=base, snapshot_timeout_ns=timeout_ns
        )
    return kraken.KrakenHandler(
        subscription, depth=options.kraken_depth, sequence_base=base, snapshot_timeout_ns=timeout_ns
    )


def exchange_info_url(rest_url: str, subscription: Subscription) -> str:
    """``GET /api/v3/exchangeInfo`` of just the subscribed symbols (the whole answer is
    tens of MB)."""
    names = json.dumps(list(subscription.native), separators=(",", ":"))
    return f"{rest_url.rstrip('/')}/api/v3/exchangeInfo?symbols={quote(names)}"


async def run_connector(
    config: Config,
    venue: str,
    symbols: Iterable[str],
    *,
    ws_url: str | None = None,
    rest_url: str | None = None,
    stop: asyncio.Event | None = None,
    publisher: RecordPublisher | None = None,
    options: ConnectorOptions | None = None,
    clock: Callable[[], int] = time.time_ns,
    exchange_info: Any = None,
    fetch_exchange_info: bool = False,
) -> ConnectorStats:
    """Publish ``venue``'s live books and trades of ``symbols`` (canonical) until ``stop``.

    ``ws_url`` / ``rest_url`` replace the venue's endpoints (Binance: the base,
    ``/stream?streams=...`` and ``/api/v3/depth`` are appended; Coinbase, Kraken:
    the full WebSocket URL). Without ``publisher``, records go to Kafka through a
    :class:`~mdgw.kafka.sink.KafkaSink` on ``config.kafka``, flushed before
    returning. Every stream's sequence numbers start at the wall clock in
    microseconds, above any earlier run's. Raises :class:`ConnectorConfigError`
    before any I/O for a bad venue, symbol or URL, and
    :class:`~producers.connectors.errors.ConnectorGaveUpError` when the venue
    stays unreachable for ``options.max_attempts`` attempts (0: retry forever).

    Binance only: ``exchange_info`` (an ``exchangeInfo`` answer), or with
    ``fetch_exchange_info`` the venue's own (``GET /api/v3/exchangeInfo`` for the
    subscribed symbols), must list every symbol under the same base and quote, else
    :class:`ConnectorConfigError` before streaming.
    """
    exchange = parse_venue(venue)
    subscription = Subscription.build(exchange, symbols)
    options = options or ConnectorOptions()
    rest_url = rest_url or DEFAULT_REST_URLS.get(exchange)
    if exchange_info is not None or fetch_exchange_info:
        if exchange is not Exchange.BINANCE or rest_url is None:
            raise ConnectorConfigError("an exchangeInfo applies to Binance only")
        if exchange_info is None:
            exchange_info = await fetch_json(
                exchange_info_url(rest_url, subscription),
                options.rest_timeout,
                options.max_rest_bytes,
            )
        check_binance_listing(subscription, exchange_info)
    base = sequence_base(clock())
    handler = make_handler(exchange, subscription, options, base)
    stats = ConnectorStats(
        exchange.name, subscription.canonical, sequence_base=base, summary=handler.summary
    )
    if publisher is None:
        from mdgw.kafka.sink import KafkaSink
        from producers.publisher import Publisher

        publisher = Publisher(KafkaSink(config.kafka), config.kafka, telemetry=config.telemetry)
    runner = FeedRunner(
        handler,
        ws_url or DEFAULT_WS_URLS[exchange],
        publisher,
        stats,
        rest_url=rest_url,
        options=options,
        stop=stop,
    )
    try:
        return await runner.run()
    finally:
        await asyncio.to_thread(publisher.flush, options.flush_timeout)
