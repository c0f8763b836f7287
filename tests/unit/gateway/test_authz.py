"""Authorization on every path: subscribe, replay, and a replay joining the live stream."""

from __future__ import annotations

import dataclasses

import orjson
import pytest

from core.book import OrderBook
from core.market import Market
from gateway import authz
from gateway.hub import Hub
from gateway.protocol import ProtocolError, Request, parse_request
from gateway.replay import ReplayManager
from gateway.replay import _client as replay_client
from gateway.session import Session
from gateway.subscriptions import StreamKey, ViewKey
from mdgw.config import Config
from mdgw.materializer import Materializer, StreamPosition
from tests.unit.gateway.fakes import FakeConn, frames_of
from tests.unit.gateway.test_hub import snapshot

STREAM = "KRAKEN:BTC-USD"


def test_claims_must_be_lists_of_strings_and_sub_is_required() -> None:
    assert authz.claim_errors({"sub": "alice"}) is None
    assert authz.claim_errors({"sub": "alice", "symbols": ["BTC-USD"]}) is None
    assert authz.claim_errors({}) == "sub must be a non-empty string"
    assert authz.claim_errors({"sub": ""}) == "sub must be a non-empty string"
    assert authz.claim_errors({"sub": 7}) == "sub must be a non-empty string"
    assert authz.claim_errors({"sub": "a", "symbols": "KRAKEN:BTC-USD"}) is not None
    assert authz.claim_errors({"sub": "a", "channels": "book"}) is not None
    assert authz.claim_errors({"sub": "a", "channels": ["book", 1]}) is not None


def test_a_string_claim_is_never_a_substring_test() -> None:
    # "BTC-USD" in "KRAKEN:BTC-USD,BINANCE:..." would be True for a string claim
    with pytest.raises(ProtocolError) as e:
        authz.check_allowed({"symbols": "KRAKEN:BTC-USD"}, "book", ["BTC-USD"], 1)
    assert e.value.code == "forbidden"
    with pytest.raises(ProtocolError):
        authz.check_allowed({"channels": "bookstats"}, "book", [STREAM], 1)


def test_stream_or_canonical_symbol_grants() -> None:
    authz.check_allowed({"symbols": [STREAM]}, "book", [STREAM], 1)
    authz.check_allowed({"symbols": ["BTC-USD"]}, "book", [STREAM, "COINBASE:BTC-USD"], 1)
    authz.check_allowed({}, "trades", [STREAM], 1)
    with pytest.raises(ProtocolError):
        authz.check_allowed({"symbols": [STREAM]}, "book", ["COINBASE:BTC-USD"], 1)


def test_capacity() -> None:
    authz.check_capacity(3, 1, 4, 1)
    with pytest.raises(ProtocolError) as e:
        authz.check_capacity(3, 2, 4, 9)
    assert (e.value.code, e.value.req_id) == ("too_many_subscriptions", 9)


def _manager(max_subscriptions: int = 1024) -> tuple[ReplayManager, Hub, Market]:
    config = Config()
    config = dataclasses.replace(
        config, gateway=dataclasses.replace(config.gateway, max_subscriptions=max_subscriptions)
    )
    market = Market(verify_checksums=False)
    market.apply_book(snapshot(1, [(100.0, 1.0)], [(101.0, 1.0)]), 0)
    hub = Hub(market, high_water=1_000_000)
    return ReplayManager(config, hub, Materializer(market, config.kafka)), hub, market


def _session(hub: Hub, **claims: object) -> Session:
    s = Session(FakeConn(), binary=False, batch=False)
    s.claims = {"sub": "alice", **claims}
    hub.sessions.add(s)
    return s


def _replay(symbols: list[str], channel: str = "book") -> Request:
    msg = {"op": "replay", "id": 5, "channel": channel, "symbols": symbols, "from": 1000}
    return parse_request(orjson.dumps({**msg, "to": "live"}))


def test_replay_refuses_symbols_and_channels_the_token_does_not_grant() -> None:
    manager, hub, _ = _manager()
    s = _session(hub, symbols=["COINBASE:ETH-USD"])
    with pytest.raises(ProtocolError) as e:
        manager(s, _replay([STREAM]))
    assert e.value.code == "forbidden" and not s.replays and manager.active == 0
    t = _session(hub, channels=["book"])
    with pytest.raises(ProtocolError) as e:
        manager(t, _replay([STREAM], "trades"))
    assert e.value.code == "forbidden"


def test_replay_counts_toward_the_subscription_cap() -> None:
    manager, hub, _ = _manager(max_subscriptions=2)
    s = _session(hub)
    hub.add_stream(s, StreamKey("trades", "BINANCE:BTC-USDT"))
    hub.add_stream(s, StreamKey("trades", "COINBASE:BTC-USD"))
    with pytest.raises(ProtocolError) as e:
        manager(s, _replay([STREAM]))
    assert e.value.code == "too_many_subscriptions"


async def test_joining_live_is_checked_again_with_the_claims_of_now() -> None:
    manager, hub, market = _manager()
    s = _session(hub, symbols=[STREAM])
    req = _replay([STREAM])
    live = market.book(STREAM)
    replayed = OrderBook(live.exchange, live.symbol)
    replayed.apply(snapshot(1, [(100.0, 1.0)], [(101.0, 1.0)]))
    view = manager._start_view(s, req, replayed)
    s.claims = {"sub": "alice", "symbols": ["COINBASE:ETH-USD"]}  # re-authenticated, narrower
    join = await manager._try_join(req, STREAM, replayed, view)
    assert join is not None
    with pytest.raises(ProtocolError) as e:
        manager._complete(s, req, [join])
    assert e.value.code == "forbidden"
    assert ViewKey(False, STREAM, 20, False) not in hub.subs.of(s)
    assert not any(b"replay_complete" in f for _, f in frames_of(s.conn))
    s.claims = {"sub": "alice"}
    manager._complete(s, req, [join])
    assert ViewKey(False, STREAM, 20, False) in hub.subs.of(s)


async def test_refused_join_ends_the_replay_with_an_error(monkeypatch) -> None:
    manager, hub, _ = _manager()
    manager.materializer.positions[STREAM] = StreamPosition(0, 0)
    monkeypatch.setattr("gateway.replay.offset_for_time", lambda *a, **k: None)  # nothing to read
    s = _session(hub, channels=["book"])  # narrowed after the replay started
    req = _replay([STREAM], "trades")
    manager._symbols[s.id] = {req.id: 1}
    manager.active = 1
    assert manager.budget.acquire(s.id, replay_client(s), 1) is None
    await manager._run(s, req)
    sent = [f for _, f in frames_of(s.conn)]
    assert any(b'"forbidden"' in f for f in sent)
    assert not any(b"replay_complete" in f for f in sent)
    assert not hub.subs.has(s, StreamKey("trades", STREAM))
    assert s.id not in manager._symbols and manager.active == 0
    assert manager.budget.readers == 0 and not manager.budget.by_connection
