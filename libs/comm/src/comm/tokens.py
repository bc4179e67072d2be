"""Internal service tokens (docs/architecture.md §3): who is calling, on whose behalf, signed, short-lived.

The gateway (or any service calling another) sends `X-Internal-Token: <jwt>` on every call made for an identity.
A separate header, not `Authorization`, so it is never confused with the user's `Authorization: Token <jwt>` and the
gateway can drop any copy a client sends. The JWT is HS256 with `INTERNAL_TOKEN_SECRET` (the algorithm is pinned on
both sides, so `alg: none` and algorithm swaps fail) and carries:

    typ "internal" (user tokens say "access"), iss calling service, aud target service,
    sub user id (absent for a service acting on its own), roles, iat, exp (INTERNAL_TOKEN_TTL_SECONDS), jti

A receiving service calls `setup_internal_tokens(app, settings)` once and declares `identity: CallerIdentity` on its
routes; anything but a valid token for that service answers 401 (comm.callers says what a route needs of it).
"""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Header, Request

from comm.errors import Unauthorized
from comm.settings import CommSettings

log = logging.getLogger(__name__)

HEADER = "X-Internal-Token"
ALGORITHM = "HS256"
TOKEN_TYPE = "internal"
LEEWAY_SECONDS = 5  # clock skew between hosts
_CACHE_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Identity:
    """On whose behalf a call is made: a user (`user_id`, `roles`) or, with no user, the calling service itself."""

    user_id: uuid.UUID | None = None
    roles: frozenset[str] = frozenset()
    caller: str | None = None  # the calling service, set on the receiving side from `iss`


class InvalidInternalToken(Unauthorized):
    detail = "invalid internal token"


class MissingInternalToken(Unauthorized):
    detail = "internal token required"


class InternalTokens:
    """Mint tokens for the services this one calls, and verify the tokens sent to it."""

    def __init__(self, *, secret: str, service: str, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self._service = service
        self._ttl = ttl_seconds
        self._clock = clock
        # Minting costs about as much as the rest of a request, so a token is reused for the first half of its life.
        self._minted: dict[tuple[str, Identity], tuple[str, float]] = {}
        # A caller reuses its token for half its life, so the same token arrives many times: its verified identity
        # is kept until the token expires (a signature and its claims cannot change; only time can end it).
        self._verified: dict[str, tuple[Identity, float]] = {}

    @classmethod
    def from_settings(cls, settings: CommSettings) -> "InternalTokens":
        """Tokens signed with the settings' secret, issued by (and for) `settings.service_name`."""
        secret = settings.internal_token_secret.get_secret_value()
        return cls(secret=secret, service=settings.service_name, ttl_seconds=settings.internal_token_ttl_seconds)

    @property
    def service(self) -> str:
        """The service these tokens are issued by and verified for."""
        return self._service

    def mint(self, *, audience: str, identity: Identity) -> str:
        """A token for calling `audience` on behalf of `identity`."""
        key = (audience, Identity(identity.user_id, identity.roles))
        now = self._clock()
        cached = self._minted.get(key)
        if cached is not None and now < cached[1]:
            return cached[0]
        token = jwt.encode(self._claims(audience=audience, identity=identity, now=now), self._secret, ALGORITHM)
        if len(self._minted) >= _CACHE_LIMIT:
            self._minted.clear()
        self._minted[key] = (token, now + self._ttl / 2)
        return token

    def _claims(self, *, audience: str, identity: Identity, now: float) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "typ": TOKEN_TYPE,
            "iss": self._service,
            "aud": audience,
            "roles": sorted(identity.roles),
            "iat": int(now),
            "exp": int(now) + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        if identity.user_id is not None:
            claims["sub"] = str(identity.user_id)
        return claims

    def verify(self, token: str) -> Identity:
        """The identity in a token meant for this service; InvalidInternalToken otherwise."""
        cached = self._verified.get(token)
        if cached is not None and self._clock() < cached[1]:
            return cached[0]
        identity, expires = self._decode(token)
        if len(self._verified) >= _CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (identity, expires)
        return identity

    def _decode(self, token: str) -> tuple[Identity, float]:
        """The identity in a token, checked in full, and when it stops being valid."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                audience=self._service,
                leeway=LEEWAY_SECONDS,
                # Expiry is judged below by this object's clock, the one the cache of verified tokens goes by.
                options={"require": ["typ", "iss", "aud", "exp", "iat", "jti"], "verify_exp": False},
            )
            expires = float(claims["exp"]) + LEEWAY_SECONDS
            if self._clock() >= expires:
                raise jwt.ExpiredSignatureError("Signature has expired")
            if claims["typ"] != TOKEN_TYPE:
                raise jwt.InvalidTokenError(f"typ {claims['typ']!r} is not {TOKEN_TYPE!r}")
            sub, roles = claims.get("sub"), claims.get("roles", [])
            if not isinstance(roles, list):
                raise jwt.InvalidTokenError("roles is not a list")
            identity = Identity(
                user_id=uuid.UUID(sub) if sub is not None else None,
                roles=frozenset(str(role) for role in roles),
                caller=str(claims["iss"]),
            )
            return identity, expires
        except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
            log.info("rejected internal token: %s", exc)
            raise InvalidInternalToken from exc


def setup_internal_tokens(app: FastAPI, settings: CommSettings) -> InternalTokens:
    """Let the app's routes verify internal tokens (the `CallerIdentity` dependency)."""
    tokens = InternalTokens.from_settings(settings)
    app.state.internal_tokens = tokens
    return tokens


def _verifier(request: Request) -> InternalTokens:
    tokens: InternalTokens | None = getattr(request.app.state, "internal_tokens", None)
    if tokens is None:
        raise RuntimeError("call setup_internal_tokens(app, settings) before using CallerIdentity")
    return tokens


TokenHeader = Annotated[str | None, Header(alias=HEADER)]


# The dependencies are `async def` (they never await): FastAPI would run a plain `def` in a worker thread, a hop
# that costs more than verifying the token.
async def internal_identity(request: Request, token: TokenHeader = None) -> Identity:
    """The verified identity of the caller; 401 without a valid internal token for this service."""
    if not token:
        raise MissingInternalToken
    return _verifier(request).verify(token)


CallerIdentity = Annotated[Identity, Depends(internal_identity)]
