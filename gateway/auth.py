"""JWT verification for WebSocket handshakes (PyJWT), errors translated at the edge.

Only algorithms on the configured allow-list are accepted, and the key type must
match the algorithm family, so ``alg: none`` and HS/RS confusion are refused.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt

from mdgw.config import AuthConfig

HMAC_ALGS = {"HS256", "HS384", "HS512"}
ASYM_ALGS = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "EdDSA"}


class AuthError(Exception):
    """A refused credential; ``reason`` is a short tag for metrics and logs."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class TokenVerifier:
    """Checks signature, exp/nbf with leeway, issuer and optional audience."""

    def __init__(self, cfg: AuthConfig) -> None:
        self.algorithms = [a for a in cfg.jwt_algorithms if a in HMAC_ALGS | ASYM_ALGS]
        if not self.algorithms:
            raise ValueError("auth.jwt_algorithms has no supported algorithm")
        self.issuer = cfg.jwt_issuer
        self.audience = cfg.jwt_audience or None
        self.leeway = cfg.jwt_leeway
        self.max_connections_per_subject = cfg.max_connections_per_subject
        self.secret = cfg.jwt_secret
        self.public_key = (
            Path(cfg.jwt_public_key_file).read_text() if cfg.jwt_public_key_file else None
        )
        self.jwks: dict[str, Any] = {}
        if cfg.jwt_jwks_file:
            data = json.loads(Path(cfg.jwt_jwks_file).read_text())
            for jwk in data.get("keys", []):
                self.jwks[jwk.get("kid", "")] = jwt.PyJWK(jwk)

    def _key(self, token: str) -> tuple[Any, list[str]]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as e:
            raise AuthError("malformed", "malformed token") from e
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthError("algorithm", f"algorithm {alg!r} not allowed")
        if alg in HMAC_ALGS:
            if not self.secret:
                raise AuthError("algorithm", f"algorithm {alg} not configured")
            return self.secret, [alg]
        if self.jwks:
            jwk = self.jwks.get(header.get("kid", ""))
            if jwk is None:
                raise AuthError("unknown_key", "unknown key id")
            return jwk.key, [alg]
        if self.public_key is None:
            raise AuthError("algorithm", f"algorithm {alg} not configured")
        return self.public_key, [alg]

    def verify(self, token: str) -> dict[str, Any]:
        if not token:
            raise AuthError("missing", "missing token")
        key, algs = self._key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=algs,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": ["exp", "iss"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise AuthError("expired", "token expired") from e
        except jwt.ImmatureSignatureError as e:
            raise AuthError("not_yet_valid", "token not yet valid") from e
        except jwt.InvalidIssuerError as e:
            raise AuthError("issuer", "wrong issuer") from e
        except jwt.InvalidAudienceError as e:
            raise AuthError("audience", "wrong audience") from e
        except jwt.InvalidSignatureError as e:
            raise AuthError("signature", "bad signature") from e
        except jwt.MissingRequiredClaimError as e:
            raise AuthError("claims", f"missing claim {e.claim}") from e
        except (jwt.InvalidTokenError, ValueError, TypeError) as e:
            raise AuthError("invalid", "invalid token") from e
        return claims


def issue_token(
    cfg: AuthConfig,
    sub: str,
    ttl: float,
    *,
    private_key: str | None = None,
    algorithm: str | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    """A signed token for development and tests (``mdgw token``)."""
    alg = algorithm or cfg.jwt_algorithms[0]
    now = int(time.time())
    payload: dict[str, Any] = {
        "sub": sub,
        "iss": cfg.jwt_issuer,
        "iat": now,
        "nbf": now,
        "exp": now + int(ttl),
    }
    if cfg.jwt_audience:
        payload["aud"] = cfg.jwt_audience
    payload.update(extra or {})
    key = cfg.jwt_secret if alg in HMAC_ALGS else private_key
    if not key:
        raise ValueError(f"no key to sign {alg}: set auth.jwt_secret or pass a private key")
    return jwt.encode(payload, key, algorithm=alg)
