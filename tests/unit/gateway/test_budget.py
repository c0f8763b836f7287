"""Replay budgets: per process, per connection, per client, history readers, symbols."""

from __future__ import annotations

import orjson
import pytest

from gateway.budget import ReplayBudget, ReplayCaps
from gateway.protocol import ProtocolError, parse_request
from gateway.replay import _client
from tests.unit.gateway.test_authz import _manager, _session

CAPS = ReplayCaps(replays=4, per_connection=2, per_client=3, readers=5, symbols_per_replay=3)


def test_each_cap_refuses_on_its_own() -> None:
    b = ReplayBudget(CAPS)
    assert b.acquire(1, "a", 4) == "at most 3 symbols per replay"
    assert b.acquire(1, "a", 1) is None and b.acquire(1, "a", 1) is None
    assert b.acquire(1, "a", 1) == "at most 2 replays per connection"
    assert b.acquire(2, "a", 1) is None
    assert b.acquire(3, "a", 1) == "at most 3 replays per client"  # another connection
    assert b.acquire(3, "b", 3) == "the server is reading its maximum of history streams"
    assert b.acquire(3, "b", 1) is None
    assert b.acquire(4, "c", 1) == "the server is running its maximum of replays"


def test_release_frees_everything_and_leaves_no_entries() -> None:
    b = ReplayBudget(CAPS)
    b.acquire(1, "a", 2)
    b.acquire(1, "a", 1)
    b.release(1, "a", 2)
    b.release(1, "a", 1)
    assert (b.replays, b.readers, b.by_connection, b.by_client) == (0, 0, {}, {})


def replay(rid: int, symbols: list[str]) -> object:
    msg = {"op": "replay", "id": rid, "channel": "book", "symbols": symbols, "from": 1}
    return parse_request(orjson.dumps({**msg, "to": "live"}))


def test_manager_caps_symbols_per_replay_and_replays_per_client() -> None:
    manager, hub, _ = _manager()
    many = [f"KRAKEN:BTC-USD{i}" for i in range(17)]  # over max_replay_symbols (16)
    s = _session(hub)
    with pytest.raises(ProtocolError) as e:
        manager(s, replay(1, many))
    assert e.value.code == "bad_request" and "symbols per replay" in e.value.message
    # the per-client cap holds across connections of one subject
    manager.budget.by_client[_client(s)] = manager.budget.caps.per_client
    t = _session(hub)
    t.subject = s.subject = "alice"
    manager.budget.by_client[_client(t)] = manager.budget.caps.per_client
    with pytest.raises(ProtocolError) as e:
        manager(t, replay(2, ["KRAKEN:BTC-USD"]))
    assert "per client" in e.value.message


def test_client_is_the_subject_else_the_address_group() -> None:
    _, hub, _ = _manager()
    s = _session(hub)
    s.remote = "2001:db8::1"
    assert _client(s) == "ip:2001:db8::/64"
    s.subject = "alice"
    assert _client(s) == "sub:alice"
