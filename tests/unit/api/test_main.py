"""The server around the app: uvicorn settings, in-process start/stop, TLS (loopback only)."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api.app import create_app
from api.main import server_config, start_api
from api.state import StateStore
from core.market import Market
from tests.unit.api.apidata import make_config


def self_signed(tmp_path: Path) -> tuple[str, str]:
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
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def test_server_config() -> None:
    config = make_config(host="127.0.0.1", port=8123, tls_cert="c.pem", tls_key="k.pem")
    sc = server_config(config, create_app(config, StateStore(Market())))
    assert (sc.host, sc.port) == ("127.0.0.1", 8123)
    assert (sc.ssl_certfile, sc.ssl_keyfile) == ("c.pem", "k.pem")
    assert sc.proxy_headers is False  # api.security decides the client address
    assert sc.server_header is False and sc.access_log is False
    assert sc.loop in ("uvloop", "asyncio") and sc.lifespan == "on"
    plain = server_config(make_config(), create_app(make_config(), StateStore(Market())))
    assert plain.ssl_certfile is None and plain.ssl_keyfile is None


async def test_start_and_stop_in_process(market: Market) -> None:
    api = await start_api(make_config(host="127.0.0.1", port=0), StateStore(market))
    try:
        assert api.port > 0
        async with httpx.AsyncClient(base_url=api.url) as c:
            assert (await c.get("/health")).json() == {"status": "healthy"}
            r = await c.get("/api/v1/orderbook/BINANCE:BTC-USDT?depth=1")
            assert r.status_code == 200 and r.json()["sequence"] == 101
            assert "server" not in r.headers
    finally:
        await api.stop()
    assert api.task.done()


async def test_tls(tmp_path: Path, market: Market) -> None:
    cert, key = self_signed(tmp_path)
    config = make_config(host="127.0.0.1", port=0, tls_cert=cert, tls_key=key)
    api = await start_api(config, StateStore(market))
    try:
        ctx = ssl.create_default_context(cafile=cert)
        url = f"https://localhost:{api.port}"
        async with httpx.AsyncClient(base_url=url, verify=ctx) as c:
            assert (await c.get("/health")).json() == {"status": "healthy"}
            assert (await c.get("/api/v1/symbols")).status_code == 200
    finally:
        await api.stop()
