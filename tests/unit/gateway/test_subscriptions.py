"""The subscription registry: both indexes stay in step whatever the order of changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from hypothesis import given
from hypothesis import strategies as st

from gateway.subscriptions import StreamKey, Subscriptions, ViewKey

_ids = count()


@dataclass(eq=False)
class Sub:
    binary: bool
    id: int = field(default_factory=lambda: next(_ids))


BOOK = ViewKey(False, "KRAKEN:BTC-USD", 10, False)
AGG = ViewKey(True, "BTC-USD", 10, False)
TRADES = StreamKey("trades", "KRAKEN:BTC-USD")


def test_subscribers_are_kept_per_format_and_per_session() -> None:
    reg: Subscriptions[Sub] = Subscriptions()
    j, p = Sub(False), Sub(True)
    assert reg.add(j, BOOK) and reg.add(p, BOOK) and reg.add(j, TRADES)
    assert not reg.add(j, BOOK)  # already held
    subs = reg.get(BOOK)
    assert subs is not None and subs.json == {j} and subs.pb == {p} and len(subs) == 2
    assert set(subs) == {j, p} and j in subs
    assert reg.of(j) == {BOOK, TRADES} and reg.count(j) == 2 and reg.has(p, BOOK)
    assert set(reg.channel("book")) == {BOOK} and set(reg.channel("trades")) == {TRADES}
    assert reg.channel("stats") == {}


def test_a_topic_is_forgotten_with_its_last_subscriber() -> None:
    reg: Subscriptions[Sub] = Subscriptions()
    a, b = Sub(False), Sub(False)
    reg.add(a, BOOK)
    reg.add(b, BOOK)
    assert not reg.remove(a, BOOK)  # b still there
    assert reg.remove(b, BOOK)
    assert reg.get(BOOK) is None and reg.channel("book") == {}
    assert not reg.remove(b, BOOK)  # unknown: nothing to do
    assert reg.count(a) == 0


def test_drop_returns_the_topics_left_empty() -> None:
    reg: Subscriptions[Sub] = Subscriptions()
    a, b = Sub(False), Sub(True)
    for key in (BOOK, AGG, TRADES):
        reg.add(a, key)
    reg.add(b, AGG)
    assert set(reg.drop(a)) == {BOOK, TRADES}
    assert reg.of(a) == frozenset() and reg.get(AGG) is not None


KEYS = [BOOK, AGG, TRADES, StreamKey("stats", "KRAKEN:BTC-USD")]
ops = st.lists(
    st.tuples(st.sampled_from(["add", "remove", "drop"]), st.integers(0, 3), st.integers(0, 3)),
    max_size=60,
)


@given(ops)
def test_both_indexes_agree_with_a_naive_set_of_pairs(steps: list[tuple[str, int, int]]) -> None:
    reg: Subscriptions[Sub] = Subscriptions()
    subs = [Sub(False), Sub(True), Sub(False), Sub(True)]
    pairs: set[tuple[int, int]] = set()
    for op, si, ki in steps:
        s, k = subs[si], KEYS[ki]
        if op == "add":
            assert reg.add(s, k) == ((si, ki) not in pairs)
            pairs.add((si, ki))
        elif op == "remove":
            emptied = reg.remove(s, k)
            had = (si, ki) in pairs
            pairs.discard((si, ki))
            assert emptied == (had and not any(p[1] == ki for p in pairs))
        else:
            reg.drop(s)
            pairs = {p for p in pairs if p[0] != si}
    for si, s in enumerate(subs):
        assert reg.of(s) == {KEYS[ki] for (i, ki) in pairs if i == si}
    for ki, k in enumerate(KEYS):
        holders = {subs[si] for (si, i) in pairs if i == ki}
        got = reg.get(k)
        assert (set(got) if got else set()) == holders
        if got:
            assert got.pb == {s for s in holders if s.binary}
        assert (k in reg.channel(k.channel)) == bool(holders)
