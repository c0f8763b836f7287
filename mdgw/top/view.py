"""One frame of ``mdgw top`` as a rich renderable (pure: no I/O, no clock)."""

from __future__ import annotations

import time

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mdgw.top.model import LATENCY, TopState, Window

DASH = "—"


def fmt_rate(v: float | None, unit: str = "/s") -> str:
    """``1,234/s``, ``12.3/s``, ``0.25/s``; a dash before the second sample."""
    if v is None:
        return DASH
    if v >= 100:
        return f"{v:,.0f}{unit}"
    if v >= 10:
        return f"{v:.1f}{unit}"
    return f"{v:.2f}{unit}"


def fmt_bytes_rate(v: float | None) -> str:
    if v is None:
        return DASH
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= size:
            return f"{v / size:.1f} {unit}/s"
    return f"{v:.0f} B/s"


def fmt_seconds(v: float | None) -> str:
    if v is None:
        return DASH
    if v < 1e-3:
        return f"{v * 1e6:.0f} µs"
    if v < 1:
        return f"{v * 1e3:.1f} ms"
    return f"{v:.2f} s"


def fmt_age(ms: float | None) -> str:
    if ms is None:
        return DASH
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.0f} s"


def fmt_count(v: float) -> str:
    return f"{v:,.0f}"


def _status(name: str, url: str, error: str | None) -> Text:
    t = Text(f"{name} {url} ")
    if error is None:
        t.append("● up", style="bold green")
    else:
        t.append(f"● down: {error}", style="bold red")
    return t


def header(state: TopState) -> RenderableType:
    """The clock, then one status line per service (a long error stays on its line)."""
    t = Text("mdgw top", style="bold")
    t.append(time.strftime("  %H:%M:%S UTC", time.gmtime(state.now)))
    return Group(
        t,
        _status("gateway", state.gateway_url, state.gateway_error),
        _status("API    ", state.api_url, state.api_error or state.feeds_error),
    )


def _kv(rows: list[tuple[str, str, str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    for _ in range(3):
        table.add_column(style="dim")
        table.add_column(justify="right")
    for i in range(0, len(rows), 3):
        cells: list[RenderableType] = []
        for label, value, style in rows[i : i + 3]:
            cells += [label, Text(value, style=style)]
        table.add_row(*cells)
    return table


def _warn(v: float) -> str:
    return "bold red" if v > 0 else ""


def gateway_panel(w: Window) -> RenderableType:
    s = w.latest
    if s is None:
        return Text("gateway: no data", style="dim")

    def bad(label: str, name: str) -> tuple[str, str, str]:
        """A count that should stay 0: red when it is not."""
        return label, fmt_count(s.get(name)), _warn(s.get(name))

    resyncs = s.get("slow_consumer_resyncs_total")
    return _kv(
        [
            ("clients", fmt_count(s.get("ws_connections_active")), "bold"),
            ("connects/s", fmt_rate(w.rate("ws_connections_total")), ""),
            ("refused", fmt_count(s.get("ws_connections_refused_total")), ""),
            ("messages/s", fmt_rate(w.rate("ws_messages_sent_total")), "bold"),
            ("bytes/s", fmt_bytes_rate(w.rate("ws_bytes_sent_total")), "bold"),
            ("broadcast p99", fmt_seconds(w.quantile(LATENCY, 0.99)), ""),
            (
                "slow resyncs",
                f"{fmt_count(resyncs)} ({fmt_rate(w.rate('slow_consumer_resyncs_total'))})",
                "yellow" if resyncs else "",
            ),
            bad("slow closes", "slow_consumer_disconnects_total"),
            ("client errors", fmt_count(s.get("ws_client_errors_total")), ""),
            ("records/s", fmt_rate(w.rate("kafka_records_consumed_total")), ""),
            bad("consumer lag", "kafka_consumer_lag"),
            bad("dead letters", "dlq_records_total"),
            bad("stale streams", "stale_streams"),
            ("sequence gaps", fmt_count(s.get("sequence_gaps_total")), ""),
            bad("checksum fails", "checksum_failures_total"),
        ]
    )


def streams_table(state: TopState) -> RenderableType:
    if state.feeds_error is not None and not state.streams:
        return Text(f"streams: API down ({state.feeds_error})", style="red")
    table = Table(box=None, header_style="bold dim", pad_edge=False, expand=False)
    for name, justify in (
        ("STREAM", "left"),
        ("STATUS", "left"),
        ("UPD/S", "right"),
        ("AGE", "right"),
        ("LAG", "right"),
        ("GAPS", "right"),
        ("CRC FAIL", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]  # rich's Literal
    for r in state.streams:
        live = r.status == "live"
        status = Text(r.status if live else f"{r.status} {r.stale_reason}".strip())
        status.stylize("green" if live else "bold red")
        table.add_row(
            r.stream,
            status,
            fmt_rate(state.stream_rates.rate(r.stream), ""),
            fmt_age(r.age_ms),
            DASH if r.lag is None else fmt_count(r.lag),
            Text(str(r.gaps), style="yellow" if r.gaps else ""),
            Text(str(r.checksum_failures), style=_warn(r.checksum_failures)),
        )
    return table


def render(state: TopState) -> RenderableType:
    """The whole frame: status line, gateway figures, API requests, the streams."""
    api_rate = state.api.rate("api_requests_total")
    parts: list[RenderableType] = [
        header(state),
        Text(""),
        Text("Gateway", style="bold underline"),
        gateway_panel(state.gateway)
        if state.gateway_error is None
        else Text(f"gateway down ({state.gateway_error}); still trying", style="red"),
        Text(""),
        Text.assemble(
            ("API", "bold underline"),
            f"  requests/s {fmt_rate(api_rate)}" if state.api_error is None else "",
            f"   streams {len(state.streams)}",
        ),
        streams_table(state),
        Text(""),
        Text(
            f"every {state.interval:g} s, rates over the last {state.window:g} s; Ctrl-C quits",
            style="dim",
        ),
    ]
    return Group(*parts)
