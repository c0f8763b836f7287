"""``python -m api.bench [--port 8000] [--levels 300]``: the API over a synthetic in-memory Market.

For load tests of the HTTP path alone (no Kafka): one book per stream of the
three venues, ``--levels`` per side, and the ``/bench/const`` route to compare
with. Rate limiting is off unless ``--rate-limit`` is given.
"""

from __future__ import annotations

import argparse
import dataclasses

import uvicorn

from api.app import create_app
from api.main import server_config
from api.state import StateStore
from core.market import Market
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import load_config

STREAMS = (
    (Exchange.BINANCE, "BTC-USDT"),
    (Exchange.COINBASE, "BTC-USD"),
    (Exchange.KRAKEN, "BTC-USD"),
    (Exchange.BINANCE, "ETH-USDT"),
)


def synthetic_market(
    levels: int, trades: int = 1000, now_ns: int = 1_764_000_000_000_000_000
) -> Market:
    """Books of ``levels`` a side around 97000, and a tape of ``trades`` per stream."""
    market = Market()
    for exchange, symbol in STREAMS:
        bids = [(97000.0 - 0.5 * i, 0.1 + (i % 7) * 0.25) for i in range(levels)]
        asks = [(97000.5 + 0.5 * i, 0.2 + (i % 5) * 0.25) for i in range(levels)]
        market.apply_book(
            BookUpdate(exchange, symbol, now_ns, 1, bids=bids, asks=asks, is_snapshot=True), now_ns
        )
        for n in range(trades):
            side = "buy" if n % 2 else "sell"
            trade = Trade(exchange, symbol, now_ns + n, f"t{n}", 97000.0 + n % 3, 0.01, side, n + 1)
            market.apply_trade(trade, now_ns)
    return market


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--levels", type=int, default=300)
    p.add_argument("--rate-limit", type=int, default=0)
    args = p.parse_args()
    base = load_config(env={})
    api = dataclasses.replace(
        base.api, host=args.host, port=args.port, rate_limit=args.rate_limit, bench_routes=True
    )
    config = dataclasses.replace(base, api=api)
    app = create_app(config, StateStore(synthetic_market(args.levels)))
    uvicorn.Server(server_config(config, app)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
