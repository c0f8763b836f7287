"""Live exchange connectors: Binance, Coinbase, Kraken public market data -> Kafka.

Entry point: :func:`run_connector` (``mdgw connect``). One pure handler per venue
(:mod:`.binance`, :mod:`.coinbase`, :mod:`.kraken`: decoded frames in, normalized
records and snapshot requests out), one shared async runner (:mod:`.runner`).
Sequencing, local books and checksums reuse :mod:`producers.captures`.
"""

from __future__ import annotations

from producers.connectors.errors import (
    ConnectionLostError,
    ConnectorConfigError,
    ConnectorError,
    ConnectorGaveUpError,
    MalformedMessageError,
    SnapshotFetchError,
)
from producers.connectors.options import ConnectorOptions
from producers.connectors.run import run_connector
from producers.connectors.stats import ConnectorStats

__all__ = [
    "ConnectionLostError",
    "ConnectorConfigError",
    "ConnectorError",
    "ConnectorGaveUpError",
    "ConnectorOptions",
    "ConnectorStats",
    "MalformedMessageError",
    "SnapshotFetchError",
    "run_connector",
]
