"""Token verification: required and type-checked claims, lifetime cap, secret strength."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jwt
import pytest

from gateway.auth import AuthError, TokenVerifier, issue_token
from mdgw import cli
from mdgw.config import AuthConfig, ConfigError, load_config

SECRET = "unit-secret-0123456789-0123456789-abcdef"
ISS = "market-data-server"


def verifier(**over: object) -> TokenVerifier:
    return TokenVerifier(dataclasses.replace(AuthConfig(jwt_secret=SECRET), **over))


def token(**claims: object) -> str:
    now = int(time.time())
    body = {"sub": "alice", "iss": ISS, "iat": now, "exp": now + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, SECRET, "HS256")


def reason(v: TokenVerifier, t: str) -> str:
    with pytest.raises(AuthError) as e:
        v.verify(t)
    return e.value.reason


def test_a_good_token_passes() -> None:
    assert verifier().verify(token(symbols=["KRAKEN:BTC-USD"]))["sub"] == "alice"


def test_sub_is_required_and_must_be_a_non_empty_string() -> None:
    v = verifier()
    assert reason(v, token(sub=None)) == "claims"
    assert reason(v, token(sub="")) == "claims"


@pytest.mark.parametrize(
    "claims",
    [
        {"symbols": "KRAKEN:BTC-USD"},  # a string: `in` would be a substring test
        {"channels": "book"},
        {"symbols": ["KRAKEN:BTC-USD", 3]},
        {"channels": {"book": True}},
    ],
)
def test_restricting_claims_must_be_lists_of_strings(claims: dict) -> None:
    assert reason(verifier(), token(**claims)) == "claims"


def test_lifetime_is_capped() -> None:
    now = int(time.time())
    v = verifier(jwt_max_lifetime=3600.0, jwt_leeway=0.0)
    assert v.verify(token(iat=now, exp=now + 3600))
    assert reason(v, token(iat=now, exp=now + 3601)) == "lifetime"
    assert reason(v, token(iat=None, exp=now + 7200)) == "lifetime"  # no iat: from now
    assert verifier(jwt_max_lifetime=0.0).verify(token(exp=now + 10 * 365 * 86400))


def test_short_hs256_secret_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        load_config(env={"MDGW_AUTH_JWT_ENABLED": "1", "MDGW_AUTH_JWT_SECRET": "x" * 31})
    assert load_config(env={"MDGW_AUTH_JWT_ENABLED": "1", "MDGW_AUTH_JWT_SECRET": "x" * 32})
    with pytest.raises(ConfigError, match="32 bytes"):
        TokenVerifier(AuthConfig(jwt_secret="short"))
    f = tmp_path / "secret"
    f.write_text("y" * 20 + "\n")
    with pytest.raises(ConfigError, match="32 bytes"):
        load_config(env={"MDGW_AUTH_JWT_SECRET_FILE": str(f)})
    f.write_text(SECRET + "\n")
    cfg = load_config(env={"MDGW_AUTH_JWT_ENABLED": "1", "MDGW_AUTH_JWT_SECRET_FILE": str(f)})
    assert TokenVerifier(cfg.auth).verify(token())
    with pytest.raises(ConfigError, match="jwt_secret_file"):
        load_config(env={"MDGW_AUTH_JWT_SECRET_FILE": str(tmp_path / "missing")})


def test_issue_token_refuses_ttl_over_the_cap() -> None:
    cfg = AuthConfig(jwt_secret=SECRET, jwt_max_lifetime=60.0)
    assert issue_token(cfg, "bob", 60)
    with pytest.raises(ValueError, match="jwt_max_lifetime"):
        issue_token(cfg, "bob", 61)


def test_token_command_takes_the_secret_from_env_or_file_never_argv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for var in ("MDGW_AUTH_JWT_SECRET", "MDGW_AUTH_JWT_SECRET_FILE"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main(["token", "--sub", "bob", "--secret", SECRET]) == 2
    assert "not accepted" in capsys.readouterr().err
    f = tmp_path / "secret"
    f.write_text(SECRET + "\n")
    assert cli.main(["token", "--sub", "bob", "--ttl", "60", "--secret-file", str(f)]) == 0
    printed = capsys.readouterr().out.strip()
    assert jwt.decode(printed, SECRET, algorithms=["HS256"], issuer=ISS)["sub"] == "bob"
    monkeypatch.setenv("MDGW_AUTH_JWT_SECRET", SECRET)
    assert cli.main(["token", "--sub", "carol", "--ttl", "60"]) == 0
    printed = capsys.readouterr().out.strip()
    assert jwt.decode(printed, SECRET, algorithms=["HS256"], issuer=ISS)["sub"] == "carol"
