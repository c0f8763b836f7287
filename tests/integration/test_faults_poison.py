"""Fault: poison records among good ones (issue "Reliability", 5).

Garbage bytes, protobuf-valid records with unacceptable content, a sequence going
backwards, a 10 MB record, a key that does not match its record, a trade and a
tombstone on the book topic: each goes to the DLQ with the four headers of
docs/protocol.md §2.3 (once: the gateway's writer dead-letters, the API only counts), the
``dlq_records_total`` counter moves by exactly that many, no process dies, and
every book equals the rebuild from the good records alone.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer

from mdgw.config import KafkaConfig
from mdgw.kafka.headers import (
    DLQ_ERROR,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    header,
)
from mdgw.kafka.source import read_to_end
from schemas import market_data_pb2 as pb
from tests.faults.books import diff, gateway_books, rebuild, wait_api_books
from tests.faults.procs import (
    api_ready,
    await_until,
    gateway_health,
    gateway_ready,
    metric_total,
    stack,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(120)]

TEN_MB = 10 * 1024 * 1024


def _book(**fields: object) -> pb.OrderBookUpdate:
    base: dict[str, object] = {
        "exchange": pb.OrderBookUpdate.KRAKEN,
        "symbol": "BTC-USD",
        "timestamp_ns": time.time_ns(),
        "sequence_number": 2**62,
    }
    base.update(fields)
    return pb.OrderBookUpdate(**base)  # type: ignore[arg-type]


def _msg(book: pb.OrderBookUpdate) -> bytes:
    return pb.MarketDataMessage(order_book_update=book).SerializeToString()


def _with_level(book: pb.OrderBookUpdate, price: float, qty: float) -> pb.OrderBookUpdate:
    book.bids.add(price=price, quantity=qty)
    return book


def _snapshot(
    bids: list[tuple[float, float]], asks: list[tuple[float, float]], crc: int = 0
) -> pb.OrderBookUpdate:
    book = _book(is_snapshot=True, checksum=crc)
    for p, q in bids:
        book.bids.add(price=p, quantity=q)
    for p, q in asks:
        book.asks.add(price=p, quantity=q)
    return book


@dataclass
class Poison:
    name: str
    topic: str
    key: str
    value: bytes | None
    partition: int = -1
    offset: int = -1


def poison_records(cfg: KafkaConfig) -> list[Poison]:
    book, trades = cfg.book_topic, cfg.trades_topic
    k = "KRAKEN:BTC-USD"
    trade = pb.Trade(exchange="KRAKEN", symbol="BTC-USD", price=1.0, quantity=1.0, side=1)
    return [
        Poison("garbage bytes", book, k, b"\xff\xfe\x00not a protobuf\x80\x80\x80"),
        Poison("NaN price", book, k, _msg(_with_level(_book(), math.nan, 1.0))),
        Poison("negative quantity", book, k, _msg(_with_level(_book(), 97_000.0, -1.0))),
        Poison("infinite price", book, k, _msg(_with_level(_book(), math.inf, 1.0))),
        Poison("exchange enum 9", book, "KRAKEN:BTC-USD", _msg(_book(exchange=9))),
        Poison("empty symbol", book, "KRAKEN:", _msg(_book(symbol=""))),
        Poison("lower-case symbol", book, "KRAKEN:btc-usd", _msg(_book(symbol="btc-usd"))),
        Poison("sequence backwards", book, k, _msg(_book(sequence_number=1))),
        Poison(
            "sequence backwards snapshot", book, k, _msg(_book(sequence_number=2, is_snapshot=True))
        ),
        Poison("10 MB record", book, k, _msg(_book(symbol="X" * TEN_MB))),
        # newer than the live book, so only their content can refuse them
        Poison("crossed snapshot", book, k, _msg(_snapshot([(100.0, 1.0)], [(99.0, 1.0)]))),
        Poison("duplicate price in snapshot", book, k, _msg(_snapshot([(9.0, 1.0)] * 2, []))),
        Poison("snapshot checksum wrong", book, k, _msg(_snapshot([(9.0, 1.0)], [], crc=7))),
        # a jump forward would make the stream stale if it were applied to KRAKEN:BTC-USD
        Poison("key mismatch", book, "BINANCE:BTC-USDT", _msg(_book())),
        Poison(
            "trade on the book topic",
            book,
            k,
            pb.MarketDataMessage(trade=trade).SerializeToString(),
        ),
        Poison("tombstone", book, k, None),
        Poison("garbage on the trades topic", trades, k, b"\x0a\x05junk"),
    ]


def publish(cfg: KafkaConfig, records: list[Poison], pause: float) -> None:
    """A raw producer (not the project's sink): 16 MB messages allowed, one at a time."""
    producer = Producer(
        {
            "bootstrap.servers": cfg.bootstrap,
            "message.max.bytes": 16_000_000,
            "compression.type": "none",
            "acks": "all",
        }
    )
    errors: list[str] = []
    for rec in records:

        def done(err: KafkaError | None, msg: Message, rec: Poison = rec) -> None:
            if err is not None:
                errors.append(f"{rec.name}: {err.str()}")
            else:
                rec.partition, rec.offset = msg.partition(), msg.offset()

        producer.produce(rec.topic, key=rec.key.encode(), value=rec.value, on_delivery=done)
        producer.flush(30)
        time.sleep(pause)  # the simulator's good records land between the poison ones
    assert not errors, errors
    assert all(r.offset >= 0 for r in records)


async def test_poison_records_go_to_the_dlq_and_touch_no_book(
    kafka_cfg: KafkaConfig, tmp_path: Path
) -> None:
    cfg = kafka_cfg
    with stack(cfg, tmp_path) as st:
        sim = st.simulate(rate=300)
        gw, api = st.gateway(), st.api()
        await await_until(lambda: gateway_ready(st.gateway_http), 40, what="gateway ready")
        await await_until(lambda: api_ready(st.api_http), 40, what="api ready")
        dlq_before = metric_total(st.gateway_http, "dlq_records_total")
        api_dlq_before = metric_total(st.api_http, "dlq_records_total")

        poison = poison_records(cfg)
        t0 = time.monotonic()
        await asyncio.to_thread(publish, cfg, poison, 0.15)
        await asyncio.sleep(1.0)
        assert sim.term() == 0, sim.tail()

        def dlq_moved() -> bool:
            return metric_total(st.gateway_http, "dlq_records_total") - dlq_before >= len(poison)

        def api_dlq_moved() -> bool:
            return metric_total(st.api_http, "dlq_records_total") - api_dlq_before >= len(poison)

        await await_until(dlq_moved, 30, what="dlq_records_total counts every poison record")
        handled_s = time.monotonic() - t0
        await await_until(api_dlq_moved, 30, what="the API counts every poison record too")
        dlq_delta = metric_total(st.gateway_http, "dlq_records_total") - dlq_before
        api_dlq_delta = metric_total(st.api_http, "dlq_records_total") - api_dlq_before

        dead = await await_until(
            lambda: (d := list(read_to_end(cfg, cfg.dlq_topic))) and len(d) >= len(poison) and d,
            20,
            what="DLQ records written",
        )
        bad = {(p.topic, p.partition, p.offset): p for p in poison}
        seen: dict[str, str] = {}
        problems: list[str] = []
        for rec in dead:
            topic = (header(rec.headers, DLQ_SOURCE_TOPIC) or b"").decode()
            part = int(header(rec.headers, DLQ_SOURCE_PARTITION) or b"-1")
            off = int(header(rec.headers, DLQ_SOURCE_OFFSET) or b"-1")
            error = (header(rec.headers, DLQ_ERROR) or b"").decode()
            p = bad.get((topic, part, off))
            if p is None:
                problems.append(f"unexpected DLQ record {topic}[{part}]@{off}: {error}")
                continue
            if p.name in seen:
                problems.append(f"{p.name} dead-lettered twice")
            seen[p.name] = error.split(":")[0]
            if not error:
                problems.append(f"{p.name}: no error header")
            if (rec.key or b"").decode() != p.key:
                problems.append(f"{p.name}: DLQ key {rec.key!r} != {p.key!r}")
            if p.value is not None and len(p.value) < 4_000_000 and rec.value != p.value:
                problems.append(f"{p.name}: DLQ value differs from the original")
            if p.value is not None and len(p.value) >= 4_000_000:
                cut = header(rec.headers, "truncated") == b"true"
                if not cut or rec.value != p.value[: len(rec.value or b"")]:
                    problems.append(f"{p.name}: big value not kept as a marked prefix")
        missing = [p.name for p in poison if p.name not in seen]

        oracle = rebuild(
            cfg, exclude=[(p.partition, p.offset) for p in poison if p.topic == cfg.book_topic]
        )
        want = oracle.states()
        got_gw = await gateway_books(st.ws_url, want)
        got_api = await asyncio.to_thread(wait_api_books, st.api_http, want, 20)
        health = gateway_health(st.gateway_http) or {}
        print(
            f"\n[poison] {len(poison)} poison records handled in {handled_s:.2f}s; gateway "
            f"dlq_records_total +{dlq_delta:.0f}, api +{api_dlq_delta:.0f}; DLQ topic has "
            f"{len(dead)} records; reasons {seen}; rebuild of the good records: "
            f"{oracle.records - len(oracle.skipped)} applied, results {oracle.results}; "
            f"gateway stale streams {health.get('stale_streams')}"
        )
        assert gw.alive() and api.alive(), st.dump()
        assert missing == [], f"not dead-lettered: {missing}"
        assert problems == [], problems
        assert len(dead) == len(poison)
        assert dlq_delta == len(poison)
        assert api_dlq_delta == len(poison)  # counted by the API too, written only once
        assert [s[2] for s in oracle.skipped] == ["excluded"] * len(oracle.skipped)
        assert health.get("stale_streams") == 0, health
        assert diff(got_gw, want) == [], st.dump()
        assert diff(got_api, want) == [], st.dump()
