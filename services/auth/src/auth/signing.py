"""User tokens: ES256 JWTs signed with the service's key, and the JWKS that publishes its public half.

One algorithm is pinned (ES256), so `alg: none` and HS256-signed-with-the-public-key tokens are refused by PyJWT
before any claim is read. `typ` = "access" keeps user tokens apart from internal service tokens.

A token's verified claims are kept until the token expires (cachetools' TLRUCache, each entry living until its own
`exp`): checking the signature again would give the same answer, and it cost about 100 µs, a sixth of
`POST /auth/validate`. Revocation is not cached: the caller checks `version` against the database every time.
Refusals are not cached either.
"""

import logging
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cachetools import TLRUCache
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from auth.settings import AuthSettings

ALGORITHM = "ES256"
TOKEN_TYPE = "access"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a verified user token says."""

    user_id: uuid.UUID
    version: int
    expires_at: float  # `exp`, seconds since the epoch


class InvalidToken(Exception):
    """The token is not one this service issued, or it is no longer valid."""


class TokenSigner:
    """Mints and verifies user tokens with one EC P-256 key."""

    def __init__(self, settings: AuthSettings, *, cache_size: int = 10_000) -> None:
        self._verified: TLRUCache[str, TokenClaims] = TLRUCache(
            maxsize=cache_size, ttu=lambda _token, claims, _now: claims.expires_at, timer=time.time
        )
        self._key = load_signing_key(settings)
        self._public = self._key.public_key()
        self._issuer = settings.token_issuer
        self._audience = settings.token_audience
        self._ttl = timedelta(seconds=settings.token_ttl_seconds)
        jwk = ECAlgorithm.to_jwk(self._public, as_dict=True)
        self.kid = jwk["x"][:16]
        self.jwks = {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}]}

    def mint(self, *, user_id: uuid.UUID, version: int) -> str:
        now = datetime.now(UTC)
        claims = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": str(user_id),
            "iat": now,
            "exp": now + self._ttl,
            "jti": uuid.uuid4().hex,
            "typ": TOKEN_TYPE,
            "ver": version,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(self, token: str) -> TokenClaims:
        """Signature, expiry, issuer, audience and type; revocation is the caller's check of `version`."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verified[token] = self._decode(token)
        return claims

    def _decode(self, token: str) -> TokenClaims:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "typ", "ver"]},
            )
            if claims["typ"] != TOKEN_TYPE:
                raise InvalidToken("not a user token")
            return TokenClaims(
                user_id=uuid.UUID(claims["sub"]), version=int(claims["ver"]), expires_at=float(claims["exp"])
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken(str(exc)) from exc


def load_signing_key(settings: AuthSettings) -> ec.EllipticCurvePrivateKey:
    """The configured key (env PEM, then file), else a development key generated once and kept on disk."""
    if settings.signing_key is not None:
        return _parse(settings.signing_key.get_secret_value().encode())
    if settings.signing_key_file is not None:
        return _parse(settings.signing_key_file.read_bytes())
    if settings.environment == "production":  # checked when serving, not by comm.cli: migrations need no key
        sys.exit("auth: ENVIRONMENT=production refuses to start: AUTH_SIGNING_KEY or AUTH_SIGNING_KEY_FILE is missing")
    path = settings.dev_signing_key_file
    if path.exists():
        log.warning("auth: using the development signing key %s (set AUTH_SIGNING_KEY_FILE in production)", path)
        return _parse(path.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)
    log.warning("auth: generated a development signing key at %s (set AUTH_SIGNING_KEY_FILE in production)", path)
    return key


def _parse(pem: bytes) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ValueError("the auth signing key must be an EC P-256 private key (ES256)")
    return key
