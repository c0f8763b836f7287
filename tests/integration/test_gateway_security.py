"""Gateway security: JWT at the handshake, claim restrictions, expiry, TLS, Origin.

The gateway runs in-process (``tests/integration/helpers.py``); Kafka is real.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import ssl
import time
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.integration.helpers import gateway_with_feed

pytestmark = [pytest.mark.kafka]

SECRET = "test-secret-0123456789-0123456789-abcd"
ISS = "market-data-server"


def rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def self_signed(tmp: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def secured(config, tmp_path: Path, **auth) -> tuple:
    private, public = rsa_pair()
    pub_file = tmp_path / "pub.pem"
    pub_file.write_text(public)
    a = dataclasses.replace(
        config.auth,
        jwt_enabled=True,
        jwt_secret=SECRET,
        jwt_public_key_file=str(pub_file),
        jwt_algorithms=("HS256", "RS256"),
        jwt_audience="md-clients",
        **auth,
    )
    return dataclasses.replace(config, auth=a), private, public


def claims(**over) -> dict:
    now = int(time.time())
    return {
        "sub": "alice",
        "iss": ISS,
        "aud": "md-clients",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        **over,
    }


async def refused(url: str, token: str | None, header: bool = True) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None and header else None
    full = url if header or token is None else f"{url}?token={token}"
    with pytest.raises(InvalidStatus) as info:
        await connect(full, additional_headers=headers)
    return info.value.response.status_code


async def test_every_bad_token_is_refused_with_401_before_upgrade(config, tmp_path) -> None:
    cfg, private, public = secured(config, tmp_path)
    _, other_public = rsa_pair()
    async with gateway_with_feed(cfg) as (_rt, url, _sim):
        bad = {
            "expired": jwt.encode(claims(exp=int(time.time()) - 60), SECRET, "HS256"),
            "not yet valid": jwt.encode(claims(nbf=int(time.time()) + 600), SECRET, "HS256"),
            "wrong issuer": jwt.encode(claims(iss="someone-else"), SECRET, "HS256"),
            "wrong audience": jwt.encode(claims(aud="other-app"), SECRET, "HS256"),
            "no exp": jwt.encode(
                {k: v for k, v in claims().items() if k != "exp"}, SECRET, "HS256"
            ),
            "wrong signature": jwt.encode(
                claims(), "not-the-secret-0123456789-0123456789", "HS256"
            ),
            "alg none": jwt.encode(claims(), None, "none"),
            "HS/RS confusion": _hs_with_public_key(public),
            "RS signed by another key": jwt.encode(claims(), rsa_pair()[0], "RS256"),
            "malformed": "not.a.jwt",
            "garbage": "%%%%",
        }
        for name, token in bad.items():
            assert await refused(url, token) == 401, name
        assert await refused(url, None) == 401, "missing"
        assert await refused(url, bad["expired"], header=False) == 401, "query token"
        good_rs = jwt.encode(claims(), private, "RS256")
        async with connect(url, additional_headers={"Authorization": f"Bearer {good_rs}"}):
            pass
        good_hs = jwt.encode(claims(), SECRET, "HS256")
        async with connect(f"{url}?token={good_hs}&format=json"):
            pass
        del other_public


def _hs_with_public_key(public_pem: str) -> str:
    """An HS256 token keyed with the server's RSA public key (the classic confusion)."""
    import base64
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(orjson.dumps({"alg": "HS256", "typ": "JWT"}))
    body = b64(orjson.dumps(claims()))
    sig = hmac.new(public_pem.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(sig)}"


async def test_claims_restrict_symbols_and_channels(config, tmp_path) -> None:
    cfg, _, _ = secured(config, tmp_path)
    async with gateway_with_feed(cfg) as (_rt, url, _sim):
        token = jwt.encode(claims(symbols=["KRAKEN:BTC-USD"], channels=["book"]), SECRET, "HS256")
        async with connect(
            f"{url}?format=json", additional_headers={"Authorization": f"Bearer {token}"}
        ) as ws:

            async def reply(msg: dict) -> dict:
                await ws.send(orjson.dumps(msg).decode())
                while True:
                    data = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
                    if data["type"] in ("subscribed", "error"):
                        return data

            ok = await reply(
                {"op": "subscribe", "id": 1, "channel": "book", "symbols": ["KRAKEN:BTC-USD"]}
            )
            assert ok["type"] == "subscribed"
            no = await reply(
                {"op": "subscribe", "id": 2, "channel": "book", "symbols": ["BINANCE:BTC-USDT"]}
            )
            assert (no["type"], no["code"]) == ("error", "forbidden")
            no = await reply(
                {"op": "subscribe", "id": 3, "channel": "trades", "symbols": ["KRAKEN:BTC-USD"]}
            )
            assert no["code"] == "forbidden"


async def test_expired_connection_is_closed_1008_unless_it_reauthenticates(
    config, tmp_path
) -> None:
    cfg, _, _ = secured(config, tmp_path, jwt_leeway=0.0)
    async with gateway_with_feed(cfg) as (_rt, url, _sim):
        short = jwt.encode(claims(exp=int(time.time()) + 2), SECRET, "HS256")
        renewed = False
        async with connect(
            f"{url}?format=json", additional_headers={"Authorization": f"Bearer {short}"}
        ) as ws:
            await ws.send(
                orjson.dumps(
                    {
                        "op": "auth",
                        "id": 1,
                        "token": jwt.encode(claims(exp=int(time.time()) + 60), SECRET, "HS256"),
                    }
                ).decode()
            )
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                try:
                    data = orjson.loads(await asyncio.wait_for(ws.recv(), 1))
                except TimeoutError:
                    continue
                renewed = renewed or data.get("type") == "authenticated"
            assert renewed  # still open after the first token's expiry
        short = jwt.encode(claims(exp=int(time.time()) + 2), SECRET, "HS256")
        async with connect(
            f"{url}?format=json", additional_headers={"Authorization": f"Bearer {short}"}
        ) as ws:
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    await asyncio.wait_for(ws.recv(), 6)
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008


async def test_wss_end_to_end_and_origin_allow_list(config, tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    gw = dataclasses.replace(
        config.gateway, tls_cert=cert, tls_key=key, allowed_origins=("https://desk.example",)
    )
    cfg = dataclasses.replace(config, gateway=gw)
    async with gateway_with_feed(cfg) as (rt, _url, _sim):
        ctx = ssl.create_default_context(cafile=cert)
        url = f"wss://localhost:{rt.port}/ws?format=json"
        async with connect(url, ssl=ctx, origin="https://desk.example") as ws:
            await ws.send('{"op":"subscribe","id":1,"channel":"book","symbols":["KRAKEN:BTC-USD"]}')
            kinds = set()
            while "order_book_snapshot" not in kinds:
                kinds.add(orjson.loads(await asyncio.wait_for(ws.recv(), 5))["type"])
        with pytest.raises(InvalidStatus) as info:
            await connect(url, ssl=ctx, origin="https://evil.example")
        assert info.value.response.status_code == 403
        with pytest.raises(ssl.SSLError):
            await connect(url, ssl=ssl.create_default_context())  # untrusted certificate


def test_token_command_prints_a_verifiable_token() -> None:
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mdgw",
            "token",
            "--sub",
            "bob",
            "--ttl",
            "60",
            "--symbols",
            "KRAKEN:BTC-USD",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "MDGW_AUTH_JWT_SECRET": SECRET},  # never on the command line
    ).stdout.strip()
    decoded = jwt.decode(out, SECRET, algorithms=["HS256"], issuer=ISS)
    assert decoded["sub"] == "bob" and decoded["symbols"] == ["KRAKEN:BTC-USD"]
    assert 0 < decoded["exp"] - time.time() <= 61
