"""The collector policy (gateway/gcpolicy.py): survivors of a full collection are
frozen; the cycles of closed connections are freed by one whole-heap scan once enough
have closed."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from gateway import gcpolicy
from gateway.gcpolicy import SurvivorFreeze


class Cycle:
    """Stands for a connection: objects that reference each other."""

    def __init__(self) -> None:
        self.me = self


class Connections:
    def __init__(self) -> None:
        self.open = 1000
        self.closed = 0

    def __call__(self) -> tuple[int, int]:
        return self.open, self.closed


@pytest.fixture
def policy() -> Iterator[tuple[SurvivorFreeze, Connections]]:
    conns = Connections()
    p = SurvivorFreeze(conns)
    gc.unfreeze()
    p.install()
    try:
        yield p, conns
    finally:
        p.uninstall()
        gc.unfreeze()


def full_collection(p: SurvivorFreeze) -> None:
    gc.collect()
    p.tick()  # the loop's next turn


def test_survivors_of_a_full_collection_are_frozen(
    policy: tuple[SurvivorFreeze, Connections],
) -> None:
    p, _ = policy
    alive = [Cycle() for _ in range(100)]
    assert gc.get_freeze_count() == 0
    full_collection(p)
    assert p.freezes == 1
    assert gc.get_freeze_count() >= len(alive)
    # out of the collector's lists: a full collection no longer walks them
    scanned = {id(o) for o in gc.get_objects()}
    assert not any(id(c) in scanned for c in alive)


def test_garbage_made_after_a_freeze_is_still_collected(
    policy: tuple[SurvivorFreeze, Connections],
) -> None:
    p, _ = policy
    full_collection(p)
    c = Cycle()
    ref = weakref.ref(c)
    del c
    gc.collect()
    assert ref() is None


def test_closed_connections_cycles_are_freed_once_enough_have_closed(
    policy: tuple[SurvivorFreeze, Connections],
) -> None:
    p, conns = policy
    c = Cycle()
    ref = weakref.ref(c)
    full_collection(p)  # c survives: frozen
    del c  # the connection closes: its cycle is garbage, but frozen
    conns.closed += 10
    full_collection(p)
    assert ref() is not None and p.scans == 0  # too few closed for a whole-heap scan
    conns.closed += max(gcpolicy.MIN_CLOSED, conns.open // 4)
    full_collection(p)  # enough closed: unfrozen, for the next full collection to walk
    assert p.scanning and gc.get_freeze_count() == 0 and ref() is not None
    full_collection(p)  # CPython's next one walks everything: the cycle goes
    assert ref() is None
    assert p.scans == 1 and not p.scanning
    assert gc.get_freeze_count() > 0  # and freezing goes on


def test_the_scan_waits_for_a_quarter_of_the_open_connections(
    policy: tuple[SurvivorFreeze, Connections],
) -> None:
    p, conns = policy
    conns.open = 8000
    full_collection(p)
    conns.closed = 1999
    full_collection(p)
    assert p.scans == 0
    conns.closed = 2000
    full_collection(p)
    assert p.scanning
    full_collection(p)
    assert p.scans == 1


def test_young_collections_do_not_freeze(
    policy: tuple[SurvivorFreeze, Connections],
) -> None:
    p, _ = policy
    gc.collect(0)
    gc.collect(1)
    p.tick()
    assert p.freezes == 0 and gc.get_freeze_count() == 0


def test_uninstalled_it_does_nothing() -> None:
    p = SurvivorFreeze(Connections())
    p.install()
    p.install()
    p.uninstall()
    assert p._on_gc not in gc.callbacks
    gc.collect()
    p.tick()
    assert p.freezes == 0


def test_a_tick_without_a_full_collection_does_nothing(
    policy: tuple[SurvivorFreeze, Connections],
) -> None:
    p, _ = policy
    p.tick()
    assert p.freezes == 0 and gc.get_freeze_count() == 0
