"""The trace view's routes against a tiny local HTTP server playing Jaeger's query API."""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.jaeger import summary, waterfall
from mdgw import metrics
from mdgw.config import ConfigError, load_config

Client = TestClient[Litestar]
TID = "4bf92f3577b34da6a3ce929d0e0e4736"


def span(sid: str, op: str, pid: str, start: int, dur: int, parent: str = "", **tags: Any) -> Any:
    refs = [{"refType": "CHILD_OF", "traceID": TID, "spanID": parent}] if parent else []
    return {
        "traceID": TID,
        "spanID": sid,
        "operationName": op,
        "references": refs,
        "startTime": start,
        "duration": dur,
        "tags": [
            {"key": k.replace("_", "."), "type": "string", "value": v} for k, v in tags.items()
        ],
        "processID": pid,
    }


def jaeger_trace(tid: str = TID, t0: int = 1_764_000_000_000_000) -> dict[str, Any]:
    """A producer -> gateway trace in Jaeger's JSON, spans out of order, one secret tag."""
    return {
        "traceID": tid,
        "spans": [
            span("b", "broadcast", "p2", t0 + 900, 40, "p", mdgw_subscribers=3),
            span(
                "s",
                "send marketdata.book",
                "p1",
                t0,
                30,
                span_kind="producer",
                messaging_kafka_message_key="KRAKEN:BTC-USD",
                db_password="hunter2",
            ),
            span("p", "process marketdata.book", "p2", t0 + 700, 300, "s", span_kind="consumer"),
            span("e", "encode", "p2", t0 + 800, 50, "p"),
        ],
        "processes": {
            "p1": {"serviceName": "mdgw-producer"},
            "p2": {"serviceName": "mdgw-gateway"},
        },
    }


@dataclass
class FakeJaeger:
    """Answers by path: ``routes[path] = (status, body bytes, delay seconds)``."""

    routes: dict[str, tuple[int, bytes, float]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    url: str = ""

    def answer(self, path: str, status: int, body: Any, delay: float = 0.0) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.routes[path] = (status, raw, delay)


@pytest.fixture
def jaeger() -> Iterator[FakeJaeger]:
    fake = FakeJaeger()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fake.requests.append(self.path)
            status, body, delay = fake.routes.get(
                urllib.parse.urlsplit(self.path).path, (404, b'{"data":null}', 0.0)
            )
            time.sleep(delay)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield fake
    server.shutdown()
    server.server_close()


def count(result: str) -> float:
    return float(metrics.TRACE_QUERIES.labels(result)._value.get())


@pytest.fixture
def traces(make_client: Callable[..., Client], jaeger: FakeJaeger) -> Client:
    return make_client(jaeger_url=jaeger.url, jaeger_timeout=0.5)


def test_off_without_a_jaeger_url(make_client: Callable[..., Client]) -> None:
    client = make_client()
    before = count("off")
    for path in ("/api/v1/traces", f"/api/v1/traces/{TID}"):
        r = client.get(path)
        assert r.status_code == 404
        assert r.json() == {"error": "Trace view is off: set api.jaeger_url (MDGW_API_JAEGER_URL)"}
    assert count("off") == before + 2
    assert client.get("/dashboard.json").json()["traces"] is False


def test_recent_traces_newest_first(traces: Client, jaeger: FakeJaeger) -> None:
    old, new = jaeger_trace("a" * 32, t0=1_000), jaeger_trace("b" * 32, t0=2_000)
    jaeger.answer("/api/traces", 200, {"data": [old, new, "junk", {"traceID": 5}]})
    before = count("ok")
    r = traces.get("/api/v1/traces?limit=5&lookback=60")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["service"] == "mdgw-gateway"
    assert [t["trace_id"] for t in body["traces"]] == ["b" * 32, "a" * 32]
    first = body["traces"][0]
    assert first == {
        "trace_id": "b" * 32,
        "start_us": 2_000,
        "duration_us": 1000,
        "spans": 4,
        "services": ["mdgw-gateway", "mdgw-producer"],
        "root": "mdgw-producer: send marketdata.book",
        "complete": True,
        "stream": "KRAKEN:BTC-USD",
    }
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(jaeger.requests[-1]).query)
    assert query["service"] == ["mdgw-gateway"] and query["limit"] == ["5"]
    assert int(query["end"][0]) - int(query["start"][0]) == 60_000_000
    assert count("ok") == before + 1
    assert traces.get("/dashboard.json").json()["traces"] is True


def test_one_trace_as_a_waterfall(traces: Client, jaeger: FakeJaeger) -> None:
    jaeger.answer(f"/api/traces/{TID}", 200, {"data": [jaeger_trace()]})
    r = traces.get(f"/api/v1/traces/{TID.upper()}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["trace_id"] == TID and body["duration_us"] == 1000 and not body["truncated"]
    ops = [(s["service"], s["operation"], s["parent_id"]) for s in body["spans"]]
    assert ops == [
        ("mdgw-producer", "send marketdata.book", ""),
        ("mdgw-gateway", "process marketdata.book", "s"),
        ("mdgw-gateway", "encode", "p"),
        ("mdgw-gateway", "broadcast", "p"),
    ]
    send = body["spans"][0]
    assert send["kind"] == "producer"
    assert send["attributes"] == {"messaging.kafka.message.key": "KRAKEN:BTC-USD"}
    assert "hunter2" not in r.text  # only the listed attributes are passed on
    assert body["spans"][3]["attributes"] == {"mdgw.subscribers": 3}


@pytest.mark.parametrize("bad", ["xyz", "a" * 31, "a" * 33, "0x" + "a" * 30, "g" * 32])
def test_trace_id_is_validated_before_asking(traces: Client, jaeger: FakeJaeger, bad: str) -> None:
    r = traces.get(f"/api/v1/traces/{bad}")
    assert r.status_code == 400
    assert r.json() == {"error": "trace_id must be 16 or 32 hex digits"}
    assert jaeger.requests == []


def test_unknown_service_refused(traces: Client, jaeger: FakeJaeger) -> None:
    r = traces.get("/api/v1/traces?service=payments")
    assert r.status_code == 400 and "error" in r.json()
    assert jaeger.requests == []


def test_trace_not_found(traces: Client) -> None:
    before = count("not_found")
    r = traces.get("/api/v1/traces/" + "1" * 16)
    assert r.status_code == 404 and r.json() == {"error": "Trace not found"}
    assert count("not_found") == before + 1


@pytest.mark.parametrize(
    ("status", "body", "delay", "result"),
    [
        (500, b'{"errors":[{"msg":"cassandra at 10.1.2.3:9042: secret"}]}', 0.0, "bad_answer"),
        (200, b"<html>secret proxy page</html>", 0.0, "bad_answer"),
        (302, b"secret redirect", 0.0, "bad_answer"),
        (200, b'{"data": []}', 2.0, "timeout"),
    ],
)
def test_jaeger_failures_answer_a_generic_503(
    traces: Client, jaeger: FakeJaeger, status: int, body: bytes, delay: float, result: str
) -> None:
    jaeger.answer("/api/traces", status, body, delay)
    before = count(result)
    r = traces.get("/api/v1/traces")
    assert r.status_code == 503
    assert r.json() == {"error": "Trace store unavailable"}
    assert r.headers["retry-after"] == "2"
    assert "secret" not in r.text
    assert count(result) == before + 1


def test_jaeger_down(make_client: Callable[..., Client], jaeger: FakeJaeger) -> None:
    client = make_client(jaeger_url="http://127.0.0.1:1", jaeger_timeout=0.5)
    before = count("unavailable")
    r = client.get(f"/api/v1/traces/{TID}")
    assert r.status_code == 503 and r.json() == {"error": "Trace store unavailable"}
    assert count("unavailable") == before + 1


def test_an_oversized_answer_is_refused(traces: Client, jaeger: FakeJaeger) -> None:
    jaeger.answer("/api/traces", 200, b'{"data":[' + b" " * (9 * 1024 * 1024) + b"]}")
    assert traces.get("/api/v1/traces").status_code == 503


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"traceID": TID, "spans": "no"},
        {"traceID": TID, "spans": [{"spanID": "x"}]},
        {"traceID": TID, "spans": [{"spanID": "x", "startTime": -1, "duration": 1}]},
        {"traceID": TID, "spans": [{"spanID": "x", "startTime": True, "duration": 1}]},
    ],
)
def test_broken_traces_are_dropped(broken: dict[str, Any]) -> None:
    assert waterfall(broken) is None and summary(broken) is None


def test_a_trace_without_its_producer_span_is_not_complete() -> None:
    # the gateway's spans reached Jaeger before the producer's batch did
    t = jaeger_trace()
    t["spans"] = [s for s in t["spans"] if s["spanID"] != "s"]
    line = summary(t)
    assert line is not None
    assert line["complete"] is False
    assert line["root"] == "mdgw-gateway: process marketdata.book"
    assert line["services"] == ["mdgw-gateway"]


def test_hostile_fields_are_typed_and_cut() -> None:
    t = jaeger_trace()
    t["processes"] = {"p1": {"serviceName": 7}, "p2": "x"}
    t["spans"][0]["operationName"] = "x" * 10_000
    t["spans"][0]["references"] = "nope"
    t["spans"][0]["tags"] = [{"key": "mdgw.view", "value": {"nested": 1}}, "junk"]
    w = waterfall(t)
    assert w is not None
    b = next(s for s in w["spans"] if s["span_id"] == "b")
    assert b["service"] == "?" and len(b["operation"]) == 200 and b["parent_id"] == ""
    assert b["attributes"] == {}


@pytest.mark.parametrize("url", ["ftp://x", "http://", "javascript:alert(1)", "http://h/ a"])
def test_config_refuses_a_bad_jaeger_url(url: str) -> None:
    with pytest.raises(ConfigError, match="jaeger_url"):
        load_config(env={"MDGW_API_JAEGER_URL": url})
    with pytest.raises(ConfigError, match="jaeger_timeout"):
        load_config(env={"MDGW_API_JAEGER_TIMEOUT": "0"})
    assert load_config(env={"MDGW_API_JAEGER_URL": "http://[::1]:16686/"}).api.jaeger_url
