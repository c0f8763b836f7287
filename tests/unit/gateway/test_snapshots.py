"""Snapshots: encoded once per view version, charged per snapshot, refused past high water."""

from __future__ import annotations

import dataclasses

import pytest

from core.views import DepthView
from gateway.hub import ViewKey
from gateway.protocol import ProtocolError, parse_request
from gateway.server import GatewayServer
from gateway.session import Session
from gateway.snapshots import SnapshotFrames, SnapshotGate
from mdgw.config import GatewayConfig
from schemas import wire
from tests.unit.gateway.fakes import FakeConn
from tests.unit.gateway.test_hub import delta, feed, setup

KEY = ViewKey(False, "KRAKEN:BTC-USD", 10, False)


def encode(snap, binary: bool, aggregated: bool) -> bytes:
    if binary:
        return wire.book_pb(snap, aggregated=aggregated)
    return wire.book_json(snap, aggregated=aggregated)


def test_one_encoding_per_view_version_and_format() -> None:
    market, hub, _ = setup()
    view = DepthView(market.book("KRAKEN:BTC-USD"), 10)
    frames = SnapshotFrames(encode, clock=lambda: 7)
    first = [frames.frame(KEY, view.snapshot(), binary=False, aggregated=False) for _ in range(100)]
    assert all(f is first[0] for f in first) and frames.encodings == 1
    frames.frame(KEY, view.snapshot(), binary=True, aggregated=False)
    assert frames.encodings == 2
    feed(market, hub, delta(2, [(100.0, 5.0)], []))
    view.on_update()  # the view moves: a new snapshot object, a new encoding
    again = frames.frame(KEY, view.snapshot(), binary=False, aggregated=False)
    assert again != first[0] and frames.encodings == 3
    assert b'"gateway_ts":7' in again
    frames.drop(KEY)
    assert len(frames) == 0


def test_gate_charges_per_snapshot_not_per_request() -> None:
    gate = SnapshotGate(rate=10, burst=20, high_water=1000)
    gate.charge(1, 15, buffered=0, now=0.0, req_id=1)
    with pytest.raises(ProtocolError) as e:
        gate.charge(1, 10, buffered=0, now=0.0, req_id=2)  # 5 left
    assert (e.value.code, e.value.req_id) == ("rate_limited", 2)
    gate.charge(1, 5, buffered=0, now=0.0, req_id=3)  # a refusal took nothing
    gate.charge(1, 10, buffered=0, now=1.0, req_id=4)  # refilled 10 in a second
    with pytest.raises(ProtocolError):
        gate.charge(2, 21, buffered=0, now=0.0, req_id=5)  # never more than the burst
    gate.charge(2, 0, buffered=10**9, now=0.0, req_id=6)  # nothing to send: free


def test_gate_refuses_a_connection_past_its_high_water_mark() -> None:
    gate = SnapshotGate(rate=10, burst=20, high_water=1000)
    with pytest.raises(ProtocolError) as e:
        gate.charge(1, 1, buffered=1001, now=0.0, req_id=1)
    assert "high-water" in e.value.message


def test_gate_frees_buckets_of_closed_connections() -> None:
    alive = {0}
    gate = SnapshotGate(rate=10, burst=20, high_water=1000, alive=lambda: alive)
    for conn in range(200):
        gate.charge(conn, 1, buffered=0, now=0.0, req_id=None)
    assert len(gate._buckets) < 100


def test_server_charges_subscribe_and_resync_per_snapshot() -> None:
    _, hub, session = setup()
    cfg = dataclasses.replace(GatewayConfig(), snapshot_rate=1.0, snapshot_burst=2)
    server = GatewayServer(cfg, hub)
    sub = '{"op":"subscribe","id":1,"channel":"book","symbols":["KRAKEN:BTC-USD"],"depth":%d}'
    server.dispatch(session, sub % 10)
    server.dispatch(session, sub % 20)
    with pytest.raises(ProtocolError) as e:
        server.dispatch(session, sub % 50)
    assert e.value.code == "rate_limited"
    with pytest.raises(ProtocolError):  # two views named: two snapshots, none left
        server.dispatch(session, '{"op":"resync","id":2,"symbols":["KRAKEN:BTC-USD"]}')
    other = type(session)(FakeConn(), binary=False, batch=False)
    other.conn.transport.buffered = 10**7  # behind: may not ask for more
    hub.sessions.add(other)
    with pytest.raises(ProtocolError) as e:
        server.subscribe(other, parse_request(sub % 10))
    assert "high-water" in e.value.message


def test_the_hub_encodes_a_views_snapshot_once_for_every_new_subscriber() -> None:
    market, hub, s = setup()
    key = ViewKey(False, "KRAKEN:BTC-USD", 20, False)
    others = [Session(FakeConn(), binary=False, batch=False) for _ in range(5)]
    for x in [s, *others]:
        hub.add_view(x, key)
    assert hub.snapshot_frames.encodings == 1
    feed(market, hub, delta(2, [(100.5, 1.0)], []))
    late = Session(FakeConn(), binary=False, batch=False)
    hub.add_view(late, key)
    assert hub.snapshot_frames.encodings == 2  # a new version of the view, encoded once more
