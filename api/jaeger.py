"""Reading traces from Jaeger's query service for the dashboard's trace view.

Jaeger (v2, and the v1 query service) answers ``GET /api/traces?service=..`` and
``GET /api/traces/{id}`` with its UI's JSON: ``{"data": [trace]}``, a trace being
``{"traceID", "spans": [...], "processes": {pid: {"serviceName"}}}`` and a span
``{"spanID", "operationName", "references", "startTime" (us), "duration" (us),
"tags", "processID"}``. Nothing of it is passed on as is: :func:`summary` and
:func:`waterfall` build our own small shapes (docs/protocol.md §6.3) from the fields
they check, so a broken or hostile answer yields fewer spans, never a crash, and
Jaeger's error texts (hosts, storage errors) stay in our log.

The HTTP request runs in a thread (stdlib ``urllib``, no proxy from the
environment, no redirects), bounded in time, size and concurrency.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TRACE_ID = re.compile(r"^(?:[0-9a-f]{16}|[0-9a-f]{32})$")
"""A Jaeger trace id: 64 or 128 bits in lower-case hex."""
MAX_BODY_BYTES = 8 * 1024 * 1024
"""Largest Jaeger answer read; beyond it the answer is refused."""
MAX_SPANS = 500
"""Spans of one trace shown; the rest is cut (``truncated``)."""
MAX_CONCURRENT = 4
"""Jaeger queries in flight at once (each holds a thread); beyond, busy."""
ATTRIBUTES = (
    "messaging.destination.name",
    "messaging.destination.partition.id",
    "messaging.kafka.message.key",
    "messaging.kafka.offset",
    "messaging.message.body.size",
    "mdgw.sequence",
    "mdgw.subscribers",
    "mdgw.view",
    "mdgw.depth",
    "http.route",
    "http.status_code",
    "error",
)
"""Span attributes the waterfall shows (the rest may be large or sensitive)."""
STREAM_ATTR = "messaging.kafka.message.key"


class JaegerError(Exception):
    """Jaeger could not answer usefully; ``kind`` is the metric label, the text is for logs."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


Fetch = Callable[[str, float], tuple[int, bytes]]
"""``fetch(url, timeout) -> (status, body)``; raises ``JaegerError`` on transport failure."""


def urllib_fetch(url: str, timeout: float) -> tuple[int, bytes]:
    """GET ``url`` without environment proxies or redirects, reading at most MAX_BODY_BYTES."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return int(resp.status), _read_capped(resp)
    except urllib.error.HTTPError as e:
        return int(e.code), _read_capped(e)
    except TimeoutError as e:
        raise JaegerError("timeout", f"{url}: timed out after {timeout}s") from e
    except (urllib.error.URLError, OSError, ValueError) as e:
        if isinstance(getattr(e, "reason", None), TimeoutError):
            raise JaegerError("timeout", f"{url}: timed out after {timeout}s") from e
        raise JaegerError("unavailable", f"{url}: {e}") from e


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a redirect answers as its own 3xx status: refused below


def _read_capped(resp: Any) -> bytes:
    body = resp.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        raise JaegerError("bad_answer", f"answer larger than {MAX_BODY_BYTES} bytes")
    return bytes(body)


@dataclass
class JaegerQuery:
    """The query service at ``base_url`` (e.g. ``http://127.0.0.1:16686``)."""

    base_url: str
    timeout: float = 3.0
    fetch: Fetch = urllib_fetch
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def recent(self, service: str, limit: int, lookback_s: float) -> list[dict[str, Any]]:
        """Summaries of the newest traces with spans of ``service``, newest first."""
        end_us = int(self.clock() * 1e6)
        query = urllib.parse.urlencode(
            {
                "service": service,
                "limit": limit,
                "start": end_us - int(lookback_s * 1e6),
                "end": end_us,
            }
        )
        status, data = await self._get(f"/api/traces?{query}")
        if status != 200:
            raise JaegerError("bad_answer", f"search answered {status}")
        found = [s for t in _traces(data) if (s := summary(t)) is not None]
        found.sort(key=lambda s: s["start_us"], reverse=True)
        return found[:limit]

    async def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The waterfall of one trace, or None when Jaeger does not have it."""
        status, data = await self._get(f"/api/traces/{trace_id}")
        if status == 404:
            return None
        if status != 200:
            raise JaegerError("bad_answer", f"trace answered {status}")
        for t in _traces(data):
            w = waterfall(t)
            if w is not None and w["trace_id"].lstrip("0") == trace_id.lstrip("0"):
                return w
        return None

    async def _get(self, path: str) -> tuple[int, Any]:
        if self._slots.locked():
            raise JaegerError("busy", f"{MAX_CONCURRENT} queries already in flight")
        async with self._slots:
            status, body = await asyncio.to_thread(self.fetch, self.base_url + path, self.timeout)
        try:
            return status, json.loads(body) if body else None
        except (ValueError, UnicodeDecodeError) as e:
            raise JaegerError("bad_answer", f"{path}: answered {status}, not JSON") from e


# ---- Jaeger's JSON -> our shapes (pure) --------------------------------------------


def _traces(data: Any) -> list[dict[str, Any]]:
    items = data.get("data") if isinstance(data, dict) else None
    return [t for t in items if isinstance(t, dict)] if isinstance(items, list) else []


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _str(value: Any, limit: int = 200) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _services(trace: dict[str, Any]) -> dict[str, str]:
    procs = trace.get("processes")
    if not isinstance(procs, dict):
        return {}
    return {
        str(pid): name
        for pid, p in procs.items()
        if isinstance(p, dict) and (name := _str(p.get("serviceName"), 100))
    }


def _tags(span: dict[str, Any]) -> dict[str, Any]:
    tags = span.get("tags")
    out: dict[str, Any] = {}
    if not isinstance(tags, list):
        return out
    for t in tags:
        if not isinstance(t, dict) or t.get("key") not in (*ATTRIBUTES, "span.kind"):
            continue
        value = t.get("value")
        if isinstance(value, str):
            out[t["key"]] = value[:200]
        elif isinstance(value, bool | int | float):
            out[t["key"]] = value
    return out


def _parent(span: dict[str, Any]) -> str:
    refs = span.get("references")
    if not isinstance(refs, list):
        return ""
    for r in refs:
        if isinstance(r, dict) and r.get("refType") == "CHILD_OF":
            return _str(r.get("spanID"), 32) or ""
    return ""


def _span(span: Any, services: dict[str, str]) -> dict[str, Any] | None:
    if not isinstance(span, dict):
        return None
    span_id = _str(span.get("spanID"), 32)
    start, duration = _int(span.get("startTime")), _int(span.get("duration"))
    if not span_id or start is None or duration is None:
        return None
    tags = _tags(span)
    kind = tags.pop("span.kind", "internal")
    return {
        "span_id": span_id,
        "parent_id": _parent(span),
        "service": services.get(str(span.get("processID")), "?"),
        "operation": _str(span.get("operationName")) or "?",
        "kind": kind if isinstance(kind, str) else "internal",
        "start_us": start,
        "duration_us": duration,
        "attributes": tags,
    }


def waterfall(trace: dict[str, Any]) -> dict[str, Any] | None:
    """A trace as spans sorted by start (then parents first), or None without valid spans."""
    trace_id = _str(trace.get("traceID"), 32)
    raw = trace.get("spans")
    if not trace_id or not isinstance(raw, list):
        return None
    services = _services(trace)
    spans = [s for r in raw if (s := _span(r, services)) is not None]
    if not spans:
        return None
    spans.sort(key=lambda s: (s["start_us"], -s["duration_us"], s["span_id"]))
    start = spans[0]["start_us"]
    end = max(s["start_us"] + s["duration_us"] for s in spans)
    return {
        "trace_id": trace_id,
        "start_us": start,
        "duration_us": end - start,
        "services": sorted({s["service"] for s in spans}),
        "truncated": len(spans) > MAX_SPANS,
        "spans": spans[:MAX_SPANS],
    }


def summary(trace: dict[str, Any]) -> dict[str, Any] | None:
    """One line of the trace list: when, how long, where from, what it carried.

    ``complete`` says the trace's origin is in it (its root span has no parent): a
    trace whose producer span Jaeger has not received yet (each process exports in
    its own batches) starts at the gateway's ``process`` instead.
    """
    w = waterfall(trace)
    if w is None:
        return None
    spans = w["spans"]
    ids = {s["span_id"] for s in spans}
    root = next((s for s in spans if s["parent_id"] not in ids), spans[0])
    stream = next(
        (s["attributes"][STREAM_ATTR] for s in spans if STREAM_ATTR in s["attributes"]), ""
    )
    return {
        "trace_id": w["trace_id"],
        "start_us": w["start_us"],
        "duration_us": w["duration_us"],
        "spans": len(trace.get("spans") or ()),
        "services": w["services"],
        "root": f"{root['service']}: {root['operation']}",
        "complete": root["parent_id"] == "",
        "stream": stream,
    }
