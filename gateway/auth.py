"""JWT verification for WebSocket handshakes (PyJWT), errors translated at the edge.

Only algorithms on the configured allow-list are accepted, and the key type must
match the algorithm family, so ``alg: none`` and HS/RS confusion are refused.
``exp``, ``iss`` and ``sub`` are required, the claims that restrict a client are
type-checked (:func:`gateway.authz.claim_errors`), a token may not live longer
than ``auth.jwt_max_lifetime``, and an HS256 secret under 32 bytes is refused at
start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt

from gateway.authz import claim_errors
from mdgw.config import MIN_SECRET_BYTES, AuthConfig, ConfigError, jwt_secret

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
        self.max_lifetime = cfg.jwt_max_lifetime
        self.secret = jwt_secret(cfg)
        if self.secret and len(self.secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"auth.jwt_secret must be at least {MIN_SECRET_BYTES} bytes")
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
                options={"require": ["exp", "iss", "sub"]},
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
        problem = claim_errors(claims)
        if problem is not None:
            raise AuthError("claims", f"invalid claims: {problem}")
        self._check_lifetime(claims)
        return claims

    def _check_lifetime(self, claims: dict[str, Any]) -> None:
        """A token valid for longer than ``max_lifetime`` is refused (a leaked one lives on)."""
        if self.max_lifetime <= 0:
            return
        exp = claims["exp"]  # PyJWT checked it is a number
        iat = claims.get("iat")
        start = iat if isinstance(iat, int | float) and not isinstance(iat, bool) else time.time()
        if exp - start > self.max_lifetime + self.leeway:
            raise AuthError("lifetime", f"token lifetime over {self.max_lifetime:g} s")


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
    if cfg.jwt_max_lifetime > 0 and ttl > cfg.jwt_max_lifetime:
        cap = cfg.jwt_max_lifetime
        raise ValueError(f"ttl {ttl:g} s is over auth.jwt_max_lifetime ({cap:g} s)")
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
    key = jwt_secret(cfg) if alg in HMAC_ALGS else private_key
    if not key:
        raise ValueError(
            f"no key to sign {alg}: set MDGW_AUTH_JWT_SECRET or auth.jwt_secret_file, "
            "or pass a private key"
        )
    if alg in HMAC_ALGS and len(key.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the HS256 secret must be at least {MIN_SECRET_BYTES} bytes")
    return jwt.encode(payload, key, algorithm=alg)
