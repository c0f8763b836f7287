"""core.packed: a BookUpdate as one flat tuple of atoms (history entries the garbage
collector stops tracking)."""

from __future__ import annotations

import gc

from hypothesis import given
from hypothesis import strategies as st

from core.packed import pack, unpack
from core.types import BookUpdate, Exchange

prices = st.floats(allow_nan=False, allow_infinity=False)
levels = st.lists(st.tuples(prices, prices), max_size=25)
venue_maps = st.dictionaries(st.sampled_from(["BINANCE", "COINBASE", "KRAKEN"]), prices)


@st.composite
def updates(draw: st.DrawFn) -> BookUpdate:
    bids, asks = draw(levels), draw(levels)
    u = BookUpdate(
        draw(st.sampled_from(list(Exchange))),
        draw(st.text(max_size=12)),
        draw(st.integers(0, 2**63)),
        draw(st.integers(0, 2**63)),
        bids,
        asks,
        draw(st.booleans()),
        draw(st.integers(0, 2**63)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.sampled_from([0, 10, 20, 1000])),
        draw(st.integers(0, 2**63)),
        draw(st.integers(0, 2**63)),
    )
    # aggregated books carry per-venue maps on either side, one per level (or none)
    if draw(st.booleans()):
        u.bid_venues = draw(st.lists(venue_maps, min_size=len(bids), max_size=len(bids)))
    if draw(st.booleans()):
        u.ask_venues = draw(st.lists(venue_maps, min_size=len(asks), max_size=len(asks)))
    return u


@given(updates(), st.lists(st.one_of(st.none(), st.binary(max_size=8)), max_size=3))
def test_unpack_gives_back_the_update_after_any_prefix(u: BookUpdate, prefix: list) -> None:
    p = pack(u, tuple(prefix))
    assert p[: len(prefix)] == tuple(prefix)
    assert unpack(p, len(prefix)) == u


@given(updates())
def test_packed_holds_only_atoms(u: BookUpdate) -> None:
    """Nothing in it is a container: one look by the collector untracks it."""
    assert all(isinstance(x, int | float | str) for x in pack(u, (b"", None))[2:])


def test_the_first_young_collection_untracks_it() -> None:
    u = BookUpdate(
        Exchange.KRAKEN, "BTC-USD", 1, 2, [(100.0, 1.0)], [(101.0, 2.0)], False, 1,
        bid_venues=[{"KRAKEN": 1.0}], ask_venues=[{"KRAKEN": 1.5, "BINANCE": 0.5}],
    )  # fmt: skip
    p = pack(u, (b"frame", None))
    assert gc.is_tracked(p)
    gc.collect(0)
    assert not gc.is_tracked(p)
