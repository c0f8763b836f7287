"""Token verification with public keys (RS256 from a PEM file, ES256 from a JWKS file by
``kid``), which key an algorithm may use, every refusal's reason, and ``issue_token``'s
own refusals. The HS256 claims rules are in test_auth.py."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm

from gateway.auth import AuthError, TokenVerifier, issue_token
from mdgw.config import AuthConfig

SECRET = "keys-secret-0123456789-0123456789-abcdef"
ISS = "market-data-server"


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, str]:
    return pem(rsa_key())


def claims(**over: object) -> dict[str, Any]:
    now = int(time.time())
    body = {"sub": "alice", "iss": ISS, "iat": now, "exp": now + 60, **over}
    return {k: v for k, v in body.items() if v is not None}


def reason(v: TokenVerifier, token: str) -> str:
    with pytest.raises(AuthError) as e:
        v.verify(token)
    return e.value.reason


def test_rs256_is_verified_with_the_public_key_file(tmp_path: Path, rsa_keys) -> None:
    private, public = rsa_keys
    key_file = tmp_path / "pub.pem"
    key_file.write_text(public)
    v = TokenVerifier(
        AuthConfig(jwt_public_key_file=str(key_file), jwt_algorithms=("RS256", "HS256"))
    )
    assert v.verify(jwt.encode(claims(), private, "RS256"))["sub"] == "alice"
    other, _ = pem(ec.generate_private_key(ec.SECP256R1()))
    assert reason(v, jwt.encode(claims(), other, "ES256")) == "algorithm"  # not allowed
    # HS256 is allowed but no secret is configured: nothing else is ever an HMAC key
    assert reason(v, jwt.encode(claims(), SECRET, "HS256")) == "algorithm"
    forged = rsa_key()
    assert reason(v, jwt.encode(claims(), forged, "RS256")) == "signature"


def test_an_asymmetric_algorithm_needs_a_key(rsa_keys) -> None:
    v = TokenVerifier(AuthConfig(jwt_secret=SECRET, jwt_algorithms=("HS256", "RS256")))
    with pytest.raises(AuthError, match="RS256 not configured"):
        v.verify(jwt.encode(claims(), rsa_keys[0], "RS256"))


def jwks_file(tmp_path: Path, keys: dict[str, ec.EllipticCurvePrivateKey]) -> str:
    entries = []
    for kid, key in keys.items():
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        entries.append({**jwk, "kid": kid, "use": "sig"})
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": entries}))
    return str(path)


def test_es256_keys_come_from_the_jwks_by_kid(tmp_path: Path) -> None:
    a, b = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    v = TokenVerifier(
        AuthConfig(jwt_jwks_file=jwks_file(tmp_path, {"a": a, "b": b}), jwt_algorithms=("ES256",))
    )
    for kid, key in (("a", a), ("b", b)):
        token = jwt.encode(claims(sub=kid), key, "ES256", headers={"kid": kid})
        assert v.verify(token)["sub"] == kid
    assert reason(v, jwt.encode(claims(), a, "ES256", headers={"kid": "c"})) == "unknown_key"
    assert reason(v, jwt.encode(claims(), a, "ES256")) == "unknown_key"  # no kid at all
    swapped = jwt.encode(claims(), a, "ES256", headers={"kid": "b"})
    assert reason(v, swapped) == "signature"


def test_each_refusal_has_its_reason() -> None:
    v = TokenVerifier(AuthConfig(jwt_secret=SECRET, jwt_audience="desk", jwt_leeway=0.0))

    def hs(**over: object) -> str:
        return jwt.encode(claims(**{"aud": "desk", **over}), SECRET, "HS256")

    assert v.verify(hs())["aud"] == "desk"
    assert reason(v, "") == "missing"
    assert reason(v, "%%%") == "malformed"
    assert reason(v, hs(exp=int(time.time()) - 1)) == "expired"
    assert reason(v, hs(nbf=int(time.time()) + 60)) == "not_yet_valid"
    assert reason(v, hs(iss="someone-else")) == "issuer"
    assert reason(v, hs(aud="other-app")) == "audience"
    assert reason(v, jwt.encode(claims(), SECRET, "HS256")) == "claims"  # no aud
    assert reason(v, hs(iss=None)) == "claims"
    assert reason(v, jwt.encode(claims(aud="desk"), "x" * 40, "HS256")) == "signature"
    assert reason(v, hs(exp="tomorrow")) == "invalid"


def test_a_verifier_needs_a_supported_algorithm() -> None:
    with pytest.raises(ValueError, match="no supported algorithm"):
        TokenVerifier(AuthConfig(jwt_secret=SECRET, jwt_algorithms=("XS999",)))


def test_issue_token_puts_the_audience_and_refuses_what_it_cannot_sign(rsa_keys) -> None:
    cfg = AuthConfig(jwt_secret=SECRET, jwt_audience="desk")
    token = issue_token(cfg, "bob", 60, extra={"symbols": ["BTC-USD"]})
    body = jwt.decode(token, SECRET, algorithms=["HS256"], audience="desk", issuer=ISS)
    assert (body["sub"], body["aud"], body["symbols"]) == ("bob", "desk", ["BTC-USD"])
    assert body["exp"] - body["iat"] == 60
    rs = dataclasses.replace(cfg, jwt_algorithms=("RS256",))
    with pytest.raises(ValueError, match="no key to sign RS256"):
        issue_token(rs, "bob", 60)
    signed = issue_token(rs, "bob", 60, private_key=rsa_keys[0])
    assert jwt.decode(signed, rsa_keys[1], algorithms=["RS256"], audience="desk")["sub"] == "bob"
    with pytest.raises(ValueError, match="no key to sign HS256"):
        issue_token(AuthConfig(), "bob", 60)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        issue_token(AuthConfig(jwt_secret="short"), "bob", 60)
