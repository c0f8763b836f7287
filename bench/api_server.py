"""The REST API as the benchmarks run it: ``mdgw api`` plus a constant route to compare with.

``python -m bench.api_server --port P`` serves the real API over Kafka (settings
from the ``MDGW_*`` environment, as ``mdgw api``) and ``GET /bench/const``, which
answers constant bytes: the cost of Litestar and the server alone, the floor the
order book route is measured against (``bench/rest.py``, W4).

``--synthetic`` serves a synthetic in-memory Market instead (no Kafka): one book
per stream of the three venues, ``--levels`` per side, for load tests of the HTTP
path alone. Rate limiting is off unless ``--rate-limit`` is given.

The route lives here, not in the ``api`` package, so that no production process
carries benchmark routes or a switch for them.
"""

from __future__ import annotations

import argparse
from typing import Any

import uvicorn
from litestar import MediaType, Response, get

from api.app import create_app
from api.main import server_config
from api.state import StateStore
from core.market import Market
from core.types import BookUpdate, Exchange, Trade
from mdgw.config import load_config
from mdgw.logs import setup_logging

CONST_BODY = b'{"status":"ok"}'
"""What ``/bench/const`` answers: the floor the order book route is compared with."""

STREAMS = (
    (Exchange.BINANCE, "BTC-USDT"),
    (Exchange.COINBASE, "BTC-USD"),
    (Exchange.KRAKEN, "BTC-USD"),
    (Exchange.BINANCE, "ETH-USDT"),
)


@get("/bench/const", include_in_schema=False, media_type=MediaType.JSON)
async def bench_const() -> Response[Any]:
    """Constant bytes: the cost of Litestar + the server alone."""
    return Response(content=CONST_BODY, media_type=MediaType.JSON)


BENCH_ROUTES = [bench_const]


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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--synthetic", action="store_true", help="in-memory books, no Kafka")
    p.add_argument("--levels", type=int, default=300, help="levels per side (--synthetic)")
    p.add_argument("--rate-limit", type=int, default=0, help="requests/s per client IP")
    args = p.parse_args()
    api = {"host": args.host, "port": args.port, "rate_limit": args.rate_limit}
    config = load_config(env={} if args.synthetic else None, overrides={"api": api})
    setup_logging(config.telemetry.log_level, config.telemetry.log_json)
    state = StateStore(synthetic_market(args.levels)) if args.synthetic else None
    app = create_app(config, state, extra_routes=BENCH_ROUTES)
    server = uvicorn.Server(server_config(config, app))
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    raise SystemExit(main())
