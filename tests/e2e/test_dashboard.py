"""The dashboard in a real Chromium against the real stack: simulator, gateway, API.

The three services run as processes (``python -m mdgw ...``) on free ports with
the test's own Kafka topics. Headless Chromium (Debian's ``/usr/bin/chromium``,
driven by Playwright for Python; no browser download) opens the page the API
serves, picks a stream and watches the JavaScript client verify every book
message (prev_sequence and the §5 checksum) for 10 s. Then the gateway is
killed with SIGKILL and started again on the same port: the page must show the
outage and recover by itself (reconnect, resubscribe, fresh snapshots, valid
checksums, sequence moving on). Browser console errors fail the test, except the
WebSocket connection failures Chromium logs while the gateway is down.

Writes a 1280x800 and a phone-sized screenshot into the test's tmp dir (paths
printed; ``MDGW_E2E_SCREENSHOTS=DIR`` copies both there). It never writes into the
repository: ``scripts/screenshot`` runs this test and refreshes ``docs/dashboard.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mdgw.config import Config

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(150)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("MDGW_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STREAM = "KRAKEN:BTC-USD"
WATCH_SECONDS = 10.0
BBO_VS_BOOK_JS = """(stream) => {
  const { client } = window.mdgw;
  const bbo = client.bbo(stream);
  const book = client.book(stream);
  if (!bbo || !book || !book.valid) return { same_record: false };
  const top = (q) => (q ? [q[0], q[1]] : null);
  return {
    same_record: bbo.timestamp <= book.timestamp, // else the book's message is still coming
    bbo: [bbo.bid, bbo.ask],
    book: [top(book.bestBid()), top(book.bestAsk())],
  };
}"""
WS_FAILURE = re.compile(r"WebSocket connection to '[^']*' failed")


# ---- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(config: Config) -> dict[str, str]:
    """The environment of every service: the test's topics and groups, nothing inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDGW_")}
    for f in dataclasses.fields(config.kafka):
        env[f"MDGW_KAFKA_{f.name.upper()}"] = str(getattr(config.kafka, f.name))
    env["MDGW_GATEWAY_GROUP_ID"] = config.gateway.group_id
    env["MDGW_API_GROUP_ID"] = config.api.group_id
    env["MDGW_TELEMETRY_LOG_LEVEL"] = "WARNING"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Service:
    """One ``python -m mdgw ...`` process, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = logs / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mdgw", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients, no flush."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def wait_until(pred: Callable[[], bool], timeout: float, what: str, *alive: Service) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        for s in alive:
            s.check_alive()
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.name}\n{s.tail()}" for s in alive)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        time.sleep(0.1)


def gateway_ready(port: int) -> bool:
    status, body = get_json(f"http://127.0.0.1:{port}/health")
    return status == 200 and bool(body and body.get("ready")) and body.get("streams", 0) >= 9


def api_ready(port: int) -> bool:
    return get_json(f"http://127.0.0.1:{port}/ready")[0] == 200


@pytest.fixture
def stack(config: Config, tmp_path: Path) -> Iterator[dict[str, Any]]:
    env = service_env(config)
    gw_port, api_port = free_port(), free_port()
    gw_args = ["gateway", "--host", "127.0.0.1", "--port", str(gw_port)]
    sim = Service("simulate", ["simulate", "--rate", "200"], env, tmp_path).start()
    gw = Service("gateway", gw_args, env, tmp_path)
    api = Service("api", ["api", "--host", "127.0.0.1", "--port", str(api_port)], env, tmp_path)
    try:
        time.sleep(0.5)  # the simulator's first snapshots before the consumers start
        gw.start()
        api.start()
        wait_until(lambda: gateway_ready(gw_port), 40, "gateway /health ready", sim, gw)
        wait_until(lambda: api_ready(api_port), 40, "API /ready", sim, api)
        yield {"sim": sim, "gw": gw, "api": api, "gw_port": gw_port, "api_port": api_port}
    finally:
        for s in (api, gw, sim):
            s.stop()


# ---- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium (set MDGW_CHROMIUM)")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


class Console:
    """Browser console errors and page errors, each with the phase it happened in."""

    def __init__(self) -> None:
        self.phase = "normal"
        self.errors: list[tuple[str, str]] = []

    def attach(self, page: Any) -> None:
        page.on("console", lambda m: m.type == "error" and self.errors.append((self.phase, m.text)))
        page.on("pageerror", lambda e: self.errors.append((self.phase, f"pageerror: {e}")))

    def unexpected(self) -> list[tuple[str, str]]:
        return [
            (phase, text)
            for phase, text in self.errors
            if not (phase == "restart" and WS_FAILURE.search(text))
        ]


def conn(page: Any) -> dict[str, str]:
    """The data attributes of the connection panel (see api/static/index.html)."""
    return dict(page.eval_on_selector("#conn", "e => ({...e.dataset})"))


def wait_page(page: Any, js: str, timeout: float, what: str) -> None:
    try:
        page.wait_for_function(js, timeout=timeout * 1000, polling=100)
    except Exception as e:
        raise AssertionError(f"page: timed out waiting for {what}; panel {conn(page)}") from e


def valid_js(stream: str, book_messages: int) -> str:
    """JS: the panel shows ``stream`` connected, checksum valid, >= ``book_messages`` verified."""
    return (
        "(() => { const d = document.querySelector('#conn').dataset; "
        f"return d.stream === '{stream}' && d.state === 'connected' && d.checksum === 'valid' "
        f"&& Number(d.bookMessages) >= {book_messages}; }})()"
    )


def screenshot_dir() -> Path | None:
    env = os.environ.get("MDGW_E2E_SCREENSHOTS")
    return Path(env) if env else None


# ---- the test ------------------------------------------------------------------------------------


def test_dashboard_verifies_live_books_and_survives_a_gateway_kill(
    chromium: Any, stack: dict[str, Any], tmp_path: Path
) -> None:
    gw_port, api_port = stack["gw_port"], stack["api_port"]
    url = f"http://127.0.0.1:{api_port}/?ws=ws://127.0.0.1:{gw_port}/ws"
    console = Console()
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    console.attach(page)
    page.goto(url)

    # the selector is filled from GET /api/v1/symbols; choose a stream
    wait_page(page, "document.querySelectorAll('#stream option').length >= 9", 15, "streams")
    page.select_option("#stream", STREAM)
    wait_page(page, valid_js(STREAM, 5), 15, "the ladder of the chosen stream, verified")
    assert page.inner_text("#ladder-name") == STREAM
    assert conn(page)["sequence"]
    assert page.inner_text("#ladder-bids .lrow:first-child span:first-of-type").strip()
    assert page.inner_text("#ladder-asks .lrow:last-child span:first-of-type").strip()

    # every book message verifies for 10 s while updates flow
    first = conn(page)
    ladders: set[str] = set()
    deadline = time.monotonic() + WATCH_SECONDS
    while time.monotonic() < deadline:
        d = conn(page)
        assert d["checksum"] == "valid", d
        assert d["state"] == "connected", d
        assert d["mismatches"] == "0" and d["breaks"] == "0", d
        ladders.add(page.inner_text("#ladder"))
        time.sleep(0.25)
    last = conn(page)
    assert int(last["messages"]) > int(first["messages"]) + 100, (first, last)
    assert int(last["sequence"]) > int(first["sequence"]), (first, last)
    assert int(last["bookMessages"]) > int(first["bookMessages"]), (first, last)
    assert len(ladders) > 5, "the ladder did not move"
    wait_page(page, "document.querySelectorAll('#tape li').length > 0", 10, "trades")
    wait_page(page, "document.querySelector('#s-last').textContent !== '—'", 10, "24h stats")
    wait_page(page, "document.querySelector('#agg-bids .arow span').textContent !== ''", 5, "agg")
    assert page.inner_text("#agg-name") == "BTC-USD"
    # the candlestick chart: REST history, then the live channel closing intervals
    wait_page(
        page, "Number(document.querySelector('#candles').dataset.closed || 0) > 3", 10, "candles"
    )
    assert page.inner_text("#candles-name") == f"{STREAM} · 1s"
    # the best bid/offer panel (api/static/bbo.js): the stream's top and all venues'
    wait_page(
        page,
        "window.mdgwBbo.messages > 5 && "
        "document.querySelectorAll('#bbo .bbo-row[data-sequence]').length === 2",
        10,
        "bbo",
    )
    assert page.inner_text("#bbo .bbo-name").strip() == STREAM
    # the stream's bbo is the top of the page's own book once that record's book message came
    same = 0
    for _ in range(40):
        b = page.evaluate(BBO_VS_BOOK_JS, STREAM)
        if b["same_record"]:
            same += 1
            assert b["bbo"] == b["book"], b
        time.sleep(0.05)
    assert same >= 5, same

    desktop_png = tmp_path / "dashboard.png"
    page.screenshot(path=str(desktop_png))
    phone_png = tmp_path / "dashboard-phone.png"
    _phone_screenshot(chromium, url, phone_png, console)
    print(f"screenshots: {desktop_png} {phone_png}")
    if (out := screenshot_dir()) is not None:
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(desktop_png, out / "dashboard.png")
        shutil.copy(phone_png, out / "dashboard-phone.png")

    # kill the gateway: the page shows it, then recovers on its own
    before = conn(page)
    console.phase = "restart"
    stack["gw"].kill()
    wait_page(
        page,
        "['reconnecting', 'stale'].includes(document.querySelector('#conn').dataset.state)",
        10,
        "the outage to show",
    )
    assert conn(page)["checksum"] != "valid"
    time.sleep(1.0)
    stack["gw"].start()
    wait_until(lambda: gateway_ready(gw_port), 40, "restarted gateway ready", stack["gw"])
    wait_page(page, valid_js(STREAM, 1), 30, "recovery after the gateway restart")
    console.phase = "recovered"
    after = conn(page)
    assert int(after["reconnects"]) >= 1, after
    assert int(after["sequence"]) > int(before["sequence"]), (before, after)
    time.sleep(2.0)
    final = conn(page)
    assert final["checksum"] == "valid" and final["state"] == "connected", final
    assert final["mismatches"] == "0" and final["breaks"] == "0", final
    assert int(final["messages"]) > int(after["messages"]), (after, final)
    assert int(final["sequence"]) > int(after["sequence"]), (after, final)

    context.close()
    print(f"console errors (those of the restart phase are expected): {console.errors}")
    assert console.unexpected() == [], console.errors


def _phone_screenshot(chromium: Any, url: str, path: Path, console: Console) -> None:
    """The layout on a phone: one column, nothing wider than the screen."""
    context = chromium.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    console.attach(page)
    page.goto(f"{url}&stream={STREAM}")
    wait_page(page, valid_js(STREAM, 3), 15, "the phone page, verified")
    wait_page(page, "document.querySelectorAll('#tape li').length > 0", 10, "trades (phone)")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the phone layout is {width}px wide"
    page.screenshot(path=str(path), full_page=True)
    context.close()
