"""GET /api/v1/candles: shape, errors, and the same candles from memory and from the topic."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.candles import Window, from_statistics, from_trades, window
from api.state import KafkaStateStore
from core.candles import INTERVALS, candle, candles_of_parts, fold_parts
from core.market import Market
from core.stats import MINUTE_NS, SECOND_NS
from core.types import Exchange, Trade
from mdgw.config import Config, KafkaConfig
from schemas.wire import candle_dict
from tests.unit.api.apidata import NOW
from tests.unit.kafka.memkafka import Clock, broker_for, publisher

Client = TestClient[Litestar]
KEYS = {
    "exchange",
    "symbol",
    "interval",
    "open_time",
    "close_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "vwap",
    "closed",
}


def expected(trades: list[Trade], interval: str, closed: Callable[[int], bool]) -> list[dict]:
    width = INTERVALS[interval]
    part = MINUTE_NS if width % MINUTE_NS == 0 else width
    cs = candles_of_parts(fold_parts(trades, part).items(), part, width)
    ex, sym = trades[0].exchange.name, trades[0].symbol
    return [candle_dict(candle(ex, sym, interval, i, b, closed(i))) for i, b in cs]


def test_candles_of_the_statistics_held(client: Client, market: Market) -> None:
    r = client.get(f"/api/v1/candles/COINBASE:BTC-USD?interval=1m&to={NOW + SECOND_NS}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-cache" and r.headers["etag"]
    body = r.json()
    assert body["exchange"] == "COINBASE" and body["symbol"] == "BTC-USD"
    assert body["interval"] == "1m"
    (c,) = body["candles"]
    assert set(c) == KEYS
    assert (c["open"], c["high"], c["low"], c["close"]) == (96990.0, 96994.0, 96990.0, 96994.0)
    assert c["trades"] == 5 and c["open_time"] == NOW // MINUTE_NS * MINUTE_NS
    assert c["close_time"] == c["open_time"] + MINUTE_NS - 1
    assert c["volume"] == 0.1 + 0.1 + 0.1 + 0.1 + 0.1 and c["closed"] is True  # an hour old
    assert c["vwap"] == c["quote_volume"] / c["volume"]
    again = client.get(
        f"/api/v1/candles/COINBASE:BTC-USD?interval=1m&to={NOW + SECOND_NS}",
        headers={"If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("interval=2m", "interval must be one of 1s 1m 5m 15m 1h 4h 1d"),
        ("interval=1m&limit=0", None),
        ("interval=1m&limit=1001", None),
        ("interval=1m&from=yesterday", "from: not a time: 'yesterday'"),
        ("interval=1m&from=20&to=10", "from must not be after to"),
    ],
)
def test_bad_parameters_are_400_with_an_error_body(
    client: Client, query: str, message: str | None
) -> None:
    r = client.get(f"/api/v1/candles/COINBASE:BTC-USD?{query}")
    assert r.status_code == 400
    assert set(r.json()) == {"error"}
    if message is not None:
        assert r.json()["error"] == message


def test_unknown_stream_is_404_and_a_bare_symbol_400(client: Client) -> None:
    r = client.get("/api/v1/candles/KRAKEN:DOGE-USD?interval=1m")
    assert r.status_code == 404 and r.json() == {"error": "Symbol not found"}
    assert client.get("/api/v1/candles/BTC-USD?interval=1m").status_code == 400
    assert client.get("/api/v1/candles/BTC-USD?interval=1m&exchange=KRAKEN").status_code == 200


def test_without_kafka_history_a_1s_request_is_refused_clearly(client: Client) -> None:
    r = client.get("/api/v1/candles/COINBASE:BTC-USD?interval=1s")
    assert r.status_code == 400 and "error" in r.json()


def test_openapi_documents_the_route(client: Client) -> None:
    doc = client.get("/schema/openapi.json").json()
    op = doc["paths"]["/api/v1/candles/{symbol}"]["get"]
    names = {p["name"] for p in op["parameters"]}
    assert {"interval", "from", "to", "limit"} <= names
    assert {"200", "400", "404", "429"} <= set(op["responses"])


@pytest.mark.parametrize(
    ("args", "first", "last"),
    [
        ((None, None, 3, 10 * MINUTE_NS + 5), 8, 10),  # the last `limit`, ending now
        ((None, 4 * MINUTE_NS, 3, 0), 2, 4),  # ending with the interval holding `to`
        ((MINUTE_NS + 1, None, 3, 0), 1, 3),  # from on
        ((MINUTE_NS, 2 * MINUTE_NS, 500, 0), 1, 2),  # cut at `to`
        ((None, None, 1000, 5), 0, 0),  # not before the epoch
    ],
)
def test_window(args: tuple[Any, ...], first: int, last: int) -> None:
    assert window("1m", *args) == Window("1m", first, last)


# -- the trades topic, on the in-memory broker ------------------------------------------

KAFKA = KafkaConfig(partitions=2)


def tape(pub: Any, clock: Clock, n: int, step_ms: int, seed: int, seq0: int = 1) -> list[Trade]:
    """``n`` trades published as time goes by (ingest time and Kafka timestamp = clock)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        clock.advance(rnd.randint(1, step_ms))
        ts = clock.ns() - rnd.randint(0, 50_000_000)  # exchange time a little before ingest
        price = round(100 + rnd.uniform(-1, 1), 2)
        qty = round(rnd.uniform(0.001, 2), 5)
        out.append(Trade(Exchange.KRAKEN, "BTC-USD", ts, f"t{i}", price, qty, "buy", seq0 + i))
        pub.publish(out[-1])
        if i == 7:
            pub.publish(out[3])  # a repeat: dropped by its sequence, as live
    return out


@pytest.fixture
def kafka_client(make_client: Callable[..., Client]) -> tuple[Client, list[Trade], list[Trade]]:
    """Two bursts of trades two days apart: the first is outside the statistics held."""
    clock = Clock(time.time_ns() - 3 * 86_400 * SECOND_NS)  # the old burst: before the 24 h
    broker = broker_for(KAFKA, clock)
    pub = publisher(broker, KAFKA, clock)
    old = tape(pub, clock, 400, 1500, 1)
    clock.advance(2 * 86_400_000)
    new = tape(pub, clock, 400, 1500, 2, seq0=401)
    store = KafkaStateStore(Config(kafka=KAFKA), sources=broker)
    client = make_client(state=store)
    deadline = time.monotonic() + 10
    while store.not_ready_reason() is not None or store.market.counters("KRAKEN:BTC-USD") is None:
        assert time.monotonic() < deadline, (store.not_ready_reason(), store.market.streams())
        time.sleep(0.01)
    return client, old, new


def test_old_bursts_come_from_the_topic_and_recent_ones_from_memory(kafka_client: Any) -> None:
    client, old, new = kafka_client
    app_store = client.app.dependencies["store"].dependency()
    complete = app_store.trades_complete_from_ns
    assert old[-1].timestamp_ns < complete < new[0].timestamp_ns
    state = app_store.market.state("KRAKEN:BTC-USD")
    recent = window("1m", new[0].timestamp_ns, None, 100, 0)
    assert from_statistics(state.stats, recent, complete) is not None
    past = window("1m", old[0].timestamp_ns, None, 100, 0)
    assert from_statistics(state.stats, past, complete) is None


@pytest.mark.parametrize("interval", ["1s", "1m", "5m", "1h"])
def test_candles_read_from_the_topic_equal_the_trades(kafka_client: Any, interval: str) -> None:
    client, old, new = kafka_client
    for trades in (old, new):
        start = trades[0].timestamp_ns
        r = client.get(
            f"/api/v1/candles/KRAKEN:BTC-USD?interval={interval}&from={start}&limit=1000"
        )
        assert r.status_code == 200, r.text
        got = r.json()["candles"]
        w = window(interval, start, None, 1000, 0)
        inside = [t for t in old + new if w.from_ns <= t.timestamp_ns <= w.to_ns]
        # closed: a later trade came (all were received just now: the clock says no more)
        end = new[-1].timestamp_ns
        want = expected(inside, interval, lambda i, e=end, n=w.width: e > (i + 1) * n - 1)
        assert got and got == want


def test_from_trades_ignores_trades_outside_the_window() -> None:
    t = [Trade(Exchange.KRAKEN, "BTC-USD", ts, "x", 1.0, 1.0, "") for ts in (0, 60, 120)]
    w = Window("1s", 0, 59)
    assert [i for i, _ in from_trades(t, w, MINUTE_NS)] == [0]
