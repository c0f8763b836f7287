"""The WebSocket server (docs/protocol.md §4) on ``websockets``: handshake policy, control ops.

Plain HTTP on the same port answers ``/health``, ``/metrics`` and ``/asyncapi.json``.
Handshakes are refused before any upgrade: 503 past ``max_connections``, 401 for a bad token,
403 for a foreign Origin, 429 for too many attempts from one IP.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gateway import authz
from gateway.auth import AuthError, TokenVerifier
from gateway.candles import CandleKey
from gateway.connection import GatewayConnection
from gateway.hub import Hub
from gateway.limits import ConnectionCounter, address_group
from gateway.ops import PATHS as OPS_PATHS
from gateway.ops import OpsEndpoints
from gateway.protocol import ProtocolError, parse_request
from gateway.protocol import Request as ControlRequest
from gateway.ratelimit import AttemptLimiter, TokenBucket
from gateway.sent_meter import SentMeter
from gateway.session import Session, socket_fd
from gateway.snapshots import SnapshotGate
from gateway.subscriptions import StreamKey, ViewKey
from mdgw import metrics
from mdgw.config import GatewayConfig
from schemas import wire

log = logging.getLogger(__name__)

JSON_PROTOCOL = "marketdata.v1.json"
PB_PROTOCOL = "marketdata.v1.protobuf"


def http_response(status: int, body: bytes, content_type: str = "application/json") -> Response:
    headers = Headers(
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-cache"),
        ]
    )
    return Response(status, HTTPStatus(status).phrase, headers, body)


def error_response(status: int, message: str) -> Response:
    return http_response(status, orjson.dumps({"error": message}))


CATCH_UP_WAIT_S = 1.0
"""Longest a request waits for the records an idle fetch held back (``until_books_current``)."""


class ReplayHandler(Protocol):
    """Runs ``replay`` and ``cancel_replay`` requests (``gateway.replay.ReplayManager``)."""

    def __call__(self, session: Session, req: ControlRequest) -> None: ...


class GatewayServer:
    """Connection policy and the control-message loop; data flows through the Hub."""

    def __init__(
        self,
        cfg: GatewayConfig,
        hub: Hub,
        *,
        verifier: TokenVerifier | None = None,
        health: Callable[[], dict[str, Any]] | None = None,
        replays: ReplayHandler | None = None,
        is_ready: Callable[[], bool] = lambda: True,
    ) -> None:
        self.cfg = cfg
        self.hub = hub
        self.clock = hub.time
        self.verifier = verifier
        self.health = health or (lambda: {"status": "healthy"})
        self.ops = OpsEndpoints(cfg.ops_requests_per_second, self.health)
        self.sent = SentMeter()
        self.attempts = AttemptLimiter(cfg.connects_per_minute_per_ip, 60.0)
        self.connections = ConnectionCounter(cfg.max_connections, cfg.max_connections_per_ip)
        self.snapshot_gate = SnapshotGate(
            cfg.snapshot_rate,
            cfg.snapshot_burst,
            cfg.high_water_bytes,
            lambda: {s.id for s in hub.sessions},
        )
        self.per_subject: dict[str, int] = {}
        self.replays = replays
        self.shutting_down = False
        self.is_ready = is_ready
        self.books_current = asyncio.Event()
        """Cleared while records the idle fetch held back are still on their way
        (``Gateway``: the first client after none); requests wait for it, a little."""
        self.books_current.set()

    # ---- handshake -----------------------------------------------------------------

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path in OPS_PATHS:
            return self.ops.respond(path, remote_ip(conn), self.clock.mono())
        if path != "/ws":
            return error_response(404, "not found; the WebSocket endpoint is /ws")
        if self.shutting_down:
            return error_response(503, "server shutting down")
        if not self.is_ready():
            metrics.WS_REFUSED.labels("starting").inc()
            return error_response(503, "starting: catching up with Kafka")
        ip = remote_ip(conn)
        if not self.attempts.allow(ip, self.clock.mono()):
            metrics.WS_REFUSED.labels("rate_limited").inc()
            metrics.RATE_LIMITED.labels("ws_connect").inc()
            return error_response(429, "too many connection attempts")
        if self.connections.total >= self.cfg.max_connections:
            metrics.WS_REFUSED.labels("full").inc()
            return error_response(503, "server full")
        origin = request.headers.get("Origin")
        if (
            self.cfg.allowed_origins
            and origin is not None
            and origin not in self.cfg.allowed_origins
        ):
            metrics.WS_REFUSED.labels("origin").inc()
            return error_response(403, "origin not allowed")
        if self.verifier is not None:
            token = bearer_token(request)
            try:
                claims = self.verifier.verify(token)
            except AuthError as e:
                metrics.WS_REFUSED.labels("unauthorized").inc()
                metrics.AUTH_FAILURES.labels("ws", e.reason).inc()
                log.info("refused token from %s: %s", ip, e.reason)
                return error_response(401, str(e))
            sub = str(claims.get("sub", ""))
            if self.per_subject.get(sub, 0) >= self.verifier.max_connections_per_subject:
                metrics.WS_REFUSED.labels("subject_limit").inc()
                return error_response(429, "too many connections for this subject")
            conn.claims = claims  # type: ignore[attr-defined]  # read back in new_session
        return self.admit(conn, ip)

    def admit(self, conn: ServerConnection, ip: str) -> Response | None:
        """Count the connection now, in the handshake (docs/security.md: limits)."""
        group = address_group(ip)
        refused = self.connections.acquire(group)
        if refused == "full":
            metrics.WS_REFUSED.labels("full").inc()
            return error_response(503, "server full")
        if refused is not None:
            metrics.WS_REFUSED.labels("address_limit").inc()
            return error_response(429, "too many connections from this address")
        conn.connection_lost_waiter.add_done_callback(lambda _: self.connections.release(group))
        return None

    def select_subprotocol(self, conn: ServerConnection, offered: Any) -> Any:
        for proto in offered:
            if proto in (JSON_PROTOCOL, PB_PROTOCOL):
                return proto
        return None

    # ---- connection ----------------------------------------------------------------

    def new_session(self, conn: ServerConnection) -> Session:
        query = parse_qs(urlsplit(conn.request.path).query) if conn.request else {}
        fmt = (query.get("format") or [""])[0]
        if conn.subprotocol:  # negotiated: it names the frames this connection gets
            binary = conn.subprotocol == PB_PROTOCOL
        elif fmt in ("json", "protobuf"):
            binary = fmt == "protobuf"
        else:
            binary = self.cfg.use_binary_protocol
        batch = (query.get("batch") or ["false"])[0].lower() in ("1", "true", "yes")
        claims = getattr(conn, "claims", None) or {}
        exts = conn.protocol.extensions
        return Session(
            conn,
            binary,
            batch,
            remote=remote_ip(conn),
            subject=str(claims.get("sub", "")),
            token_exp=claims.get("exp"),
            compression=bool(exts),
            fd=socket_fd(conn.transport, self.cfg.send_buffer_bytes),
            probe_ns=self.cfg.probe_interval_ms * 1_000_000,
        )

    async def handler(self, conn: ServerConnection) -> None:
        session = self.new_session(conn)
        session.claims = getattr(conn, "claims", None) or {}
        session.tokens = float(self.cfg.control_burst)
        self.hub.add_session(session)
        bucket = TokenBucket(self.cfg.control_rate, self.cfg.control_burst)
        if isinstance(conn, GatewayConnection):
            conn.on_probe = session.on_pong
            conn.on_pings = lambda texts: self.answer_pings(session, bucket, texts)
        self.per_subject[session.subject] = self.per_subject.get(session.subject, 0) + 1
        metrics.WS_CONNECTIONS_TOTAL.inc()
        metrics.WS_CONNECTIONS_ACTIVE.inc()
        try:
            async for message in conn:
                if not self.books_current.is_set():
                    await self.until_books_current()
                if not self.allow(session, bucket):
                    continue
                try:
                    self.dispatch(session, message)
                except ProtocolError as e:
                    self.refuse(session, e)
        except ConnectionClosed:
            pass
        finally:
            if isinstance(conn, GatewayConnection):
                conn.release()  # again: the callbacks may have been set after it was lost
            self.hub.remove_session(session)
            for replay in list(session.replays.values()):
                replay.cancel()
            self.per_subject[session.subject] -= 1
            if not self.per_subject[session.subject]:
                del self.per_subject[session.subject]
            metrics.WS_CONNECTIONS_ACTIVE.dec()
            self.sent.fold(session, closed=True)

    async def until_books_current(self) -> None:
        """Hold a request until the books have the records an idle gateway's bulk fetch
        held back (up to ``kafka.idle_fetch_wait_ms``): the first client's snapshots are
        then current, not that old with the rest following as a burst of deltas. The
        eager fetch brings them within milliseconds; :data:`CATCH_UP_WAIT_S` bounds the
        wait if it does not (the switch back failed), and then requests stop waiting:
        one late answer, not one per request."""
        try:
            await asyncio.wait_for(self.books_current.wait(), CATCH_UP_WAIT_S)
        except TimeoutError:
            self.books_current.set()

    def allow(self, session: Session, bucket: TokenBucket) -> bool:
        """A control message arrived: within the connection's rate, or refused."""
        session.last_activity = self.clock.mono()
        if bucket.allow(session.last_activity):
            return True
        metrics.RATE_LIMITED.labels("ws_control").inc()
        self.refuse(session, ProtocolError("rate_limited", "too many messages"))
        return False

    def answer_pings(self, session: Session, bucket: TokenBucket, texts: list[bytes]) -> bool:
        """A read of nothing but ``ping`` requests, answered in the read (one write per
        pong, after the data already written): False if any is something else."""
        try:
            reqs = [parse_request(t) for t in texts]
        except ProtocolError:
            return False  # websockets reads it and the handler refuses it as usual
        if any(req.op != "ping" for req in reqs):
            return False
        for req in reqs:
            if session.closing:  # refused too often (1008): the rest of the read is moot
                break
            if self.allow(session, bucket):
                self.pong(session, req)
        return True

    def pong(self, session: Session, req: ControlRequest) -> None:
        session.send_control("pong", id=req.id, timestamp=self.clock.wall_ns())

    def refuse(self, session: Session, e: ProtocolError) -> None:
        metrics.CLIENT_ERRORS.labels(e.code).inc()
        session.send_control("error", id=e.req_id, code=e.code, message=e.message)
        session.strikes += 1
        if session.strikes >= self.cfg.abuse_strikes:
            log.info("closing %s after %d refused messages", session.remote, session.strikes)
            close_later(session, 1008, "repeated abuse")

    def dispatch(self, session: Session, message: str | bytes) -> None:
        if isinstance(message, bytes):
            raise ProtocolError("bad_request", "control messages are JSON text frames")
        req = parse_request(message)
        op = req.op
        if op == "ping":
            self.pong(session, req)
        elif op == "subscribe":
            self.subscribe(session, req)
        elif op == "unsubscribe":
            self.unsubscribe(session, req)
        elif op == "resync":
            names = tuple(req.symbols)
            held = self.hub.views_of(session)
            self.charge_snapshots(session, sum(k.name in names for k in held), req.id)
            self.hub.resync(session, names)
        elif op == "auth":
            self.reauth(session, req.token, req.id)
        elif op in ("replay", "cancel_replay"):
            if self.replays is None:
                raise ProtocolError("bad_request", "replay is not enabled here", req.id)
            self.replays(session, req)

    def check_allowed(
        self, session: Session, channel: str, symbols: tuple[str, ...], req_id: object
    ) -> None:
        authz.check_allowed(session.claims, channel, symbols, req_id)

    def charge_snapshots(self, session: Session, snapshots: int, req_id: object) -> None:
        """One token per snapshot a request would send (gateway/snapshots.py)."""
        now = self.clock.mono()
        self.snapshot_gate.charge(session.id, snapshots, session.buffered(), now, req_id)

    def subscription_count(self, session: Session) -> int:
        return self.hub.subs.count(session)

    def subscribe(self, session: Session, req: ControlRequest) -> None:
        self.check_allowed(session, req.channel, req.symbols, req.id)
        authz.check_capacity(
            self.subscription_count(session), len(req.symbols), self.cfg.max_subscriptions, req.id
        )
        market = self.hub.market
        for s in req.symbols:
            if req.channel == "aggregated_book":
                known = market.aggregated(s) is not None
            elif req.channel == "bbo":
                known = self.hub.bbo.known(s)
            else:
                known = market.book(s) is not None
            if not known:
                raise ProtocolError("unknown_symbol", f"unknown symbol {s}", req.id)
        resumed: dict[str, list[bytes] | None] = {}
        reply: dict[str, Any] = {}
        if req.channel in ("book", "aggregated_book"):
            resumed = self.resumable(session, req)
            held = sum(frames is not None for frames in resumed.values())
            self.charge_snapshots(session, len(req.symbols) - held, req.id)
            if req.since is not None:  # docs/protocol.md §4.10
                ok = {s: resumed.get(s) is not None for s in req.since}
                reply["resumed"] = ok[req.symbols[0]] if len(req.symbols) == 1 else ok
        if req.interval:
            reply["interval"] = req.interval
        session.send_control(
            "subscribed", id=req.id, channel=req.channel, symbols=list(req.symbols), **reply
        )
        for s in req.symbols:
            if req.channel in ("book", "aggregated_book"):
                frames = resumed.get(s)
                self.hub.add_view(session, view_key(req, s), snapshot=frames is None)
                if frames:
                    self.hub.send_resumed(session, frames)
            elif req.channel == "bbo":
                self.hub.bbo.subscribe(session, s)
            elif req.channel == "trades":
                self.hub.add_stream(session, StreamKey("trades", s))
            elif req.channel == "candles":
                self.hub.candles.subscribe(session, CandleKey(s, req.interval))
            else:
                self.hub.add_stream(session, StreamKey("stats", s))
                stats = market.stats(s, self.clock.wall_ns())
                if stats is not None:
                    session.send_data(
                        wire.stats_pb(stats) if session.binary else wire.stats_json(stats)
                    )

    def resumable(self, session: Session, req: ControlRequest) -> dict[str, list[bytes] | None]:
        """Per symbol with ``since``: the view's messages the client missed, or None
        (a snapshot then). A view the session already holds is not resumed."""
        out: dict[str, list[bytes] | None] = {}
        for s, seq in (req.since or {}).items():
            key = view_key(req, s)
            held = self.hub.subs.has(session, key)
            out[s] = None if held else self.hub.resume(key, seq, session.binary)
            metrics.RESUMES.labels("resumed" if out[s] is not None else "snapshot").inc()
        return out

    def unsubscribe(self, session: Session, req: ControlRequest) -> None:
        for s in req.symbols:
            if req.channel in ("book", "aggregated_book"):
                for key in self.hub.views_of(session):
                    if key.name == s and key.channel == req.channel:
                        self.hub.remove_view(session, key)
            elif req.channel == "bbo":
                self.hub.bbo.unsubscribe(session, s)
            elif req.channel == "candles":
                for held in self.hub.subs.of(session):
                    if (
                        isinstance(held, CandleKey)
                        and held.name == s
                        and (req.interval in ("", held.interval))
                    ):
                        self.hub.candles.unsubscribe(session, held)
            else:
                self.hub.remove_stream(session, StreamKey(req.channel, s))
        session.send_control(
            "unsubscribed", id=req.id, channel=req.channel, symbols=list(req.symbols)
        )

    def reauth(self, session: Session, token: str, req_id: object) -> None:
        if self.verifier is None:
            session.send_control("authenticated", id=req_id)
            return
        try:
            claims = self.verifier.verify(token)
        except AuthError as e:
            metrics.AUTH_FAILURES.labels("ws", e.reason).inc()
            raise ProtocolError("unauthorized", str(e), req_id) from e
        if str(claims.get("sub", "")) != session.subject:
            raise ProtocolError("unauthorized", "token subject differs", req_id)
        session.token_exp = claims.get("exp")
        session.claims = claims
        session.send_control("authenticated", id=req_id, exp=session.token_exp)

    def expire_tokens(self) -> None:
        now = self.clock.wall()
        for s in list(self.hub.sessions):
            if s.token_exp is not None and s.token_exp < now:
                close_later(s, 1008, "token expired")
                s.token_exp = None


_closing: set[asyncio.Task[None]] = set()


async def _close(session: Session, code: int, reason: str, grace: float) -> None:
    try:
        await asyncio.wait_for(session.conn.close(code, reason), grace)
    except (TimeoutError, ConnectionClosed, OSError):
        pass
    finally:
        transport = session.conn.transport
        if transport is not None and not transport.is_closing():
            transport.abort()  # a peer that does not read never sees the close frame


def close_later(session: Session, code: int, reason: str, grace: float = 2.0) -> None:
    """Close once (the close frame, then abort after ``grace``); keeps a task reference."""
    if session.closing:
        return
    session.closing = True
    task = asyncio.ensure_future(_close(session, code, reason, grace))
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def view_key(req: ControlRequest, symbol: str) -> ViewKey:
    return ViewKey(req.channel == "aggregated_book", symbol, req.depth, req.speed == "100ms")


def remote_ip(conn: ServerConnection) -> str:
    addr = conn.remote_address
    return str(addr[0]) if addr else ""


def bearer_token(request: Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    query = parse_qs(urlsplit(request.path).query)
    return (query.get("token") or [""])[0]
