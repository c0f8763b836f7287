"""Which reader a capture file needs, and one entry point over all of them.

:func:`sniff` is pure (leading bytes in, format out); :func:`open_capture` is
what ``mdgw replay`` calls: it detects each file's format, adds the auxiliary
files a cryptofeed WebSocket capture needs (the venue's ``*.http.*`` REST
answers and its ``EXCHANGE.N`` run file with Binance's ``exchangeInfo``, found
next to it), and merges every file's events in receive-time order.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Literal

from producers.captures.common import ReplayContext
from producers.captures.cryptofeed import read_cryptofeed
from producers.captures.errors import CaptureError, UnknownFormatError
from producers.captures.files import head
from producers.captures.native import MAGIC, read_native_events
from producers.captures.summary import CaptureEvent, ReplaySummary
from producers.captures.symbols import SymbolMapper
from producers.captures.tardis import read_tardis

Format = Literal["cryptofeed", "tardis", "native"]
FORMATS: tuple[Format, ...] = ("cryptofeed", "tardis", "native")

_NUM = r"\d+(?:\.\d+)?"
_CRYPTOFEED_RE = re.compile(
    rf"^(?:\S+ <-> {_NUM}\s*$|\S+ (?:<-|->) {_NUM}: |{_NUM}: [\[{{]|configuration: \{{)",
    re.ASCII,
)
_TARDIS_PREFIX = "exchange,symbol,timestamp,local_timestamp,"
_WS_NAME_RE = re.compile(r"^([A-Z]+)\.ws\.")


def sniff(data: bytes) -> Format | None:
    """The format of a file from its first (inflated) bytes, or None."""
    if data.startswith(MAGIC):
        return "native"
    first = data.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
    if first.startswith(_TARDIS_PREFIX):
        return "tardis"
    if _CRYPTOFEED_RE.match(first):
        return "cryptofeed"
    return None


def detect_format(path: str | Path) -> Format:
    """``"cryptofeed"``, ``"tardis"`` or ``"native"``; :class:`UnknownFormatError` otherwise."""
    try:
        fmt = sniff(head(path, 4096))
    except OSError as e:
        raise UnknownFormatError(f"unreadable: {e}", path=path) from e
    if fmt is None:
        raise UnknownFormatError(
            "not a cryptofeed, Tardis CSV or MDGWCAP1 capture", path=path, line=1
        )
    return fmt


def auxiliary_files(path: str | Path) -> list[Path]:
    """Files next to a cryptofeed ``EX.ws.*`` capture that belong with it:
    ``EX.http.*`` (REST snapshots) and ``EX.<n>`` (run configuration, exchangeInfo)."""
    p = Path(path)
    m = _WS_NAME_RE.match(p.name)
    if m is None or not p.parent.is_dir():
        return []
    venue = m[1]
    aux = re.compile(rf"^{venue}\.(?:http\..+|\d+(?:\.gz)?)$")
    return sorted(q for q in p.parent.iterdir() if aux.match(q.name) and q.is_file())


def open_capture(
    paths: Iterable[str | Path],
    format: Format | None = None,
    *,
    symbols: SymbolMapper | None = None,
    siblings: bool = True,
) -> tuple[Iterator[CaptureEvent], ReplaySummary]:
    """Events of capture files merged by receive time, and their (live) summary.

    ``format`` forces one reader for every file; else each file is detected. A
    file that cannot be read or detected is recorded in the summary and skipped.
    The summary is complete once the iterator is exhausted.
    """
    ctx = ReplayContext(ReplaySummary(), symbols)
    summary = ctx.summary
    groups: dict[Format, list[str]] = {f: [] for f in FORMATS}
    for path in map(str, paths):
        try:
            fmt = format or detect_format(path)
        except CaptureError as e:
            summary.files.append(path)
            summary.record_error(e)
            continue
        groups[fmt].append(path)
    if siblings:
        given = {Path(p).resolve() for p in groups["cryptofeed"]}
        for path in list(groups["cryptofeed"]):
            for aux in auxiliary_files(path):
                if aux.resolve() not in given:
                    given.add(aux.resolve())
                    groups["cryptofeed"].append(str(aux))
                    summary.auxiliary_files.append(str(aux))
    iterators: list[Iterator[CaptureEvent]] = []
    if groups["cryptofeed"]:
        iterators.append(read_cryptofeed(groups["cryptofeed"], context=ctx))
    if groups["tardis"]:
        iterators.append(read_tardis(groups["tardis"], context=ctx))
    iterators.extend(read_native_events(p, summary=summary) for p in groups["native"])
    if len(iterators) == 1:
        return iterators[0], summary
    return heapq.merge(*iterators, key=lambda e: e.recv_ns), summary
