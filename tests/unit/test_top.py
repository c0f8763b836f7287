"""``mdgw top``'s pure parts: parsing scrapes, windowed rates, the frame (clock injected)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from rich.console import Console

from mdgw.top.model import (
    LATENCY,
    ScrapeError,
    StreamRates,
    TopState,
    Window,
    parse_feeds,
    parse_metrics,
)
from mdgw.top.run import Scraper
from mdgw.top.view import fmt_bytes_rate, fmt_rate, fmt_seconds, render


def metrics_text(
    sent: float = 0,
    nbytes: float = 0,
    clients: int = 0,
    resyncs: float = 0,
    checksum: float = 0,
    fast: float = 0,
    slow: float = 0,
) -> str:
    """Gateway /metrics as prometheus-client writes it (labels, _created, a histogram)."""
    return f"""# HELP ws_messages_sent_total Data and control messages sent
# TYPE ws_messages_sent_total counter
ws_messages_sent_total {sent}
ws_messages_sent_created 1.7e9
# TYPE ws_bytes_sent_total counter
ws_bytes_sent_total {nbytes}
# TYPE ws_connections_active gauge
ws_connections_active {clients}
# TYPE slow_consumer_resyncs_total counter
slow_consumer_resyncs_total {resyncs}
# TYPE checksum_failures_total counter
checksum_failures_total {checksum}
# TYPE kafka_consumer_lag gauge
kafka_consumer_lag{{topic="marketdata.book",partition="0"}} 3.0
kafka_consumer_lag{{topic="marketdata.book",partition="1"}} 4.0
# TYPE {LATENCY} histogram
{LATENCY}_bucket{{le="0.001"}} {fast}
{LATENCY}_bucket{{le="0.01"}} {fast + slow}
{LATENCY}_bucket{{le="+Inf"}} {fast + slow}
{LATENCY}_count {fast + slow}
{LATENCY}_sum 0.0
"""


def feeds(*rows: tuple[str, int, str]) -> dict[str, Any]:
    return {
        "feeds": [
            {
                "stream": s,
                "status": st,
                "stale_reason": "" if st == "live" else "sequence gap",
                "updates": n,
                "age_ms": 3.2,
                "lag": 0,
                "gaps": 0 if st == "live" else 1,
                "checksum_failures": 0,
            }
            for s, n, st in rows
        ],
        "lag_total": 0,
    }


def test_parse_sums_labels_and_skips_created() -> None:
    s = parse_metrics(metrics_text(sent=10, clients=2), at=1.0)
    assert s.get("ws_messages_sent_total") == 10
    assert s.get("kafka_consumer_lag") == 7
    assert "ws_messages_sent_created" not in s.totals
    assert s.buckets[LATENCY] == ((0.001, 0.0), (0.01, 0.0), (float("inf"), 0.0))


@pytest.mark.parametrize("text", ["", "<html>oops</html>", 'a{b="x 1\n', "\x00\xff"])
def test_garbage_is_a_scrape_error(text: str) -> None:
    with pytest.raises(ScrapeError):
        parse_metrics(text, 0.0)


def test_rates_over_the_window_and_restart() -> None:
    w = Window(seconds=5.0, watch=("ws_messages_sent_total",))
    w.add(parse_metrics(metrics_text(sent=100), at=10.0))
    assert w.rate("ws_messages_sent_total") is None  # one sample: no rate yet
    w.add(parse_metrics(metrics_text(sent=100), at=11.0))  # the gateway's cached copy
    w.add(parse_metrics(metrics_text(sent=400), at=12.0))
    assert w.rate("ws_messages_sent_total") == 150.0  # over 2 s, not 0 then 300
    for t in range(13, 20):
        w.add(parse_metrics(metrics_text(sent=400 + 100 * (t - 12)), at=float(t)))
    assert w.samples[0].at >= 19 - 5 - 1 and w.rate("ws_messages_sent_total") == 100.0
    w.add(parse_metrics(metrics_text(sent=5), at=20.0))  # counter went down: restarted
    assert len(w.samples) == 1 and w.rate("ws_messages_sent_total") is None


def test_latency_quantile_of_the_window_only() -> None:
    w = Window(seconds=5.0)
    w.add(parse_metrics(metrics_text(fast=1000, slow=0), at=0.0))
    w.add(parse_metrics(metrics_text(fast=1090, slow=10), at=1.0))
    assert w.quantile(LATENCY, 0.5) == 0.001
    assert w.quantile(LATENCY, 0.99) == 0.01  # 10 of the 100 new ones were slow
    w2 = Window()
    w2.add(parse_metrics(metrics_text(fast=5), at=0.0))
    w2.add(parse_metrics(metrics_text(fast=5), at=1.0))
    assert w2.quantile(LATENCY, 0.99) is None  # nothing observed in the window


def test_feeds_parse_skips_malformed_items() -> None:
    body = feeds(("KRAKEN:BTC-USD", 5, "live"), ("BINANCE:BTC-USDT", 7, "stale"))
    body["feeds"] += [None, {"stream": 5}, {"stream": "X", "updates": "many", "lag": True}]
    rows = parse_feeds(body)
    assert [r.stream for r in rows] == ["BINANCE:BTC-USDT", "KRAKEN:BTC-USD", "X"]
    assert rows[2].updates == 0 and rows[2].lag is None
    with pytest.raises(ScrapeError):
        parse_feeds({"error": "Missing API key"})


def test_stream_rates() -> None:
    r = StreamRates(seconds=5.0)
    r.add(0.0, parse_feeds(feeds(("A", 10, "live"))))
    assert r.rate("A") is None
    r.add(2.0, parse_feeds(feeds(("A", 50, "live"), ("B", 1, "live"))))
    assert r.rate("A") == 20.0 and r.rate("B") is None
    r.add(3.0, parse_feeds(feeds(("A", 2, "live"))))  # the API restarted
    assert r.rate("A") is None


def frame(state: TopState, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render(state))
    return console.export_text()


class FakeHttp:
    """``get(url, timeout, headers)`` answering from a dict; a missing URL is 'down'."""

    def __init__(self) -> None:
        self.answers: dict[str, bytes] = {}
        self.headers: list[dict[str, str]] = []

    def __call__(self, url: str, timeout: float, headers: dict[str, str] | None = None) -> bytes:
        from mdgw.top.model import ScrapeError

        self.headers.append(headers or {})
        if url not in self.answers:
            raise ScrapeError("Connection refused")
        return self.answers[url]


def test_scraper_and_frame_with_a_service_down() -> None:
    state = TopState("http://gw:8080", "http://api:8000", interval=1.0, window=5.0)
    http, now = FakeHttp(), [100.0]
    scraper = Scraper(state, api_key="k3y", get=http, clock=lambda: now[0], wall=lambda: 0.0)
    try:
        http.answers["http://gw:8080/metrics"] = metrics_text(sent=1000, clients=3).encode()
        http.answers["http://api:8000/metrics"] = b"api_requests_total 10\n"
        http.answers["http://api:8000/api/v1/feeds"] = json.dumps(
            feeds(("KRAKEN:BTC-USD", 100, "live"), ("BINANCE:BTC-USDT", 50, "stale"))
        ).encode()
        scraper.refresh()
        first = frame(state)
        assert "● up" in first and "—" in first  # rates need a second scrape
        now[0] = 102.0
        http.answers["http://gw:8080/metrics"] = metrics_text(
            sent=3000, nbytes=4_000_000, clients=3, resyncs=2, checksum=1
        ).encode()
        http.answers["http://api:8000/metrics"] = b"api_requests_total 30\n"
        http.answers["http://api:8000/api/v1/feeds"] = json.dumps(
            feeds(("KRAKEN:BTC-USD", 140, "live"), ("BINANCE:BTC-USDT", 50, "stale"))
        ).encode()
        scraper.refresh()
        text = frame(state)
        assert "messages/s" in text and "1,000/s" in text
        assert "2.0 MB/s" in text and "requests/s 10.0/s" in text
        assert "KRAKEN:BTC-USD" in text and "20.0" in text  # 40 updates in 2 s
        assert "stale sequence gap" in text
        assert {"X-API-Key": "k3y"} in http.headers

        del http.answers["http://gw:8080/metrics"]
        now[0] = 103.0
        scraper.refresh()
        down = frame(state)
        assert "gateway http://gw:8080 ● down: Connection refused" in down
        assert "API     http://api:8000 ● up" in down
        assert "gateway down (Connection refused); still trying" in down
        assert "KRAKEN:BTC-USD" in down  # the API part still shows

        http.answers["http://gw:8080/metrics"] = b"<html>proxy error</html>"
        scraper.refresh()
        assert "● down: not Prometheus text" in frame(state)
    finally:
        scraper.close()


def test_formatting() -> None:
    assert fmt_rate(None) == "—"
    assert fmt_rate(1234.4) == "1,234/s" and fmt_rate(12.34) == "12.3/s"
    assert fmt_rate(0.25) == "0.25/s"
    assert fmt_bytes_rate(1_500_000) == "1.5 MB/s" and fmt_bytes_rate(12) == "12 B/s"
    assert fmt_seconds(0.00025) == "250 µs" and fmt_seconds(0.0123) == "12.3 ms"
