"""Internal service tokens (docs/architecture.md §3): who is calling, on whose behalf, signed, short-lived.

The gateway (or any service calling another) sends `X-Internal-Token: <jwt>` on every call made for an identity.
A separate header, not `Authorization`, so it is never confused with the user's `Authorization: Token <jwt>` and the
gateway can drop any copy a client sends. The JWT is signed by the calling app with its own Ed25519 key and verified
with that app's public key (comm.keys; EdDSA is pinned on both sides, so `alg: none` and algorithm swaps fail), and
carries:

    typ "internal" (user tokens say "access"), iss calling service, aud target service,
    sub user id (absent for a service acting on its own), roles, iat, exp (INTERNAL_TOKEN_TTL_SECONDS), jti

A receiving service calls `setup_internal_tokens(app, settings)` once and declares `identity: CallerIdentity` on its
routes: a valid token for that service from the gateway, 401 for anything that is not a valid token and 403 for
another caller's. A route that other services call says which: `identity: Annotated[Identity,
Depends(identity_from("gateway", "comment"))]` (comm.callers says what a route needs of the identity).
Why not one shared HMAC secret (as before): whoever held it, any service or anyone who read one service's
environment, could mint a token as the gateway for any user, with any role.
"""

import logging
import time
import uuid
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, FastAPI, Request

from comm.errors import Forbidden, Unauthorized
from comm.keys import PublicKeys, development_key, development_public_key
from comm.openapi import document_security, requires
from comm.settings import CommSettings

log = logging.getLogger(__name__)

HEADER = "X-Internal-Token"
SCHEME = "internalToken"  # its name in the OpenAPI (comm.openapi)
ALGORITHM = "EdDSA"
GATEWAY = "gateway"  # the only caller a route takes unless it names others
TOKEN_TYPE = "internal"
LEEWAY_SECONDS = 5  # clock skew between hosts
_CACHE_LIMIT = 10_000
T = TypeVar("T")


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


class CallerNotAllowed(Forbidden):
    detail = "this route does not take calls from this service"


class InternalTokens:
    """Mint tokens for the services this one calls, and verify the tokens sent to it."""

    def __init__(
        self,
        *,
        service: str,
        key: Ed25519PrivateKey,
        public_keys: PublicKeys | None,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._service = service
        self._key = key
        # Each caller's public keys (two while one is rotated); None: any caller's development key (comm.keys).
        self._public_keys = public_keys
        self._ttl = ttl_seconds
        self._clock = clock
        # Minting costs about as much as the rest of a request, so a token is reused for the first half of its life.
        self._minted: dict[tuple[str, Identity], tuple[str, float]] = {}
        # A caller reuses its token for half its life, so the same token arrives many times: its verified identity
        # is kept until the token expires (a signature and its claims cannot change; only time can end it).
        self._verified: dict[str, tuple[Identity, float]] = {}

    @classmethod
    def from_settings(cls, settings: CommSettings) -> "InternalTokens":
        """Tokens signed with the settings' key, issued by (and for) `settings.service_name`."""
        return cls(
            service=settings.service_name,
            key=settings.internal_token_private_key(),
            public_keys=settings.internal_token_public_key_set(),
            ttl_seconds=settings.internal_token_ttl_seconds,
        )

    @classmethod
    def development(
        cls, service: str, *, ttl_seconds: int = 60, clock: Callable[[], float] = time.time
    ) -> "InternalTokens":
        """Tokens with `service`'s development key, accepting any caller's (what an app without keys set uses)."""
        return cls(
            service=service, key=development_key(service), public_keys=None, ttl_seconds=ttl_seconds, clock=clock
        )

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
        token = jwt.encode(self._claims(audience=audience, identity=identity, now=now), self._key, ALGORITHM)
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

    def _keys_of(self, caller: str) -> tuple[Ed25519PublicKey, ...]:
        if self._public_keys is None:
            return (development_public_key(caller),)
        return tuple(self._public_keys.get(caller, ()))

    def _decode(self, token: str) -> tuple[Identity, float]:
        """The identity in a token, checked in full with its issuer's public key, and when it stops being valid."""
        try:
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
            keys = self._keys_of(issuer) if isinstance(issuer, str) else ()
            if not keys:
                raise jwt.InvalidIssuerError(f"no public key for issuer {issuer!r}")
            claims = self._verified_claims(token, keys)
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

    def _verified_claims(self, token: str, keys: tuple[Ed25519PublicKey, ...]) -> dict[str, Any]:
        """The claims, verified with the first of the issuer's keys whose signature matches."""
        for key in keys[:-1]:
            try:
                return self._claims_with(token, key)
            except jwt.InvalidSignatureError:
                continue  # the other key of a rotation
        return self._claims_with(token, keys[-1])

    def _claims_with(self, token: str, key: Ed25519PublicKey) -> dict[str, Any]:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=self._service,
            leeway=LEEWAY_SECONDS,
            # Expiry is judged by this object's clock, the one the cache of verified tokens goes by.
            options={"require": ["typ", "iss", "aud", "exp", "iat", "jti"], "verify_exp": False},
        )
        return claims


def setup_internal_tokens(app: FastAPI, settings: CommSettings) -> InternalTokens:
    """Let the app's routes verify internal tokens (the `CallerIdentity` dependency), and say so in its OpenAPI."""
    tokens = InternalTokens.from_settings(settings)
    app.state.internal_tokens = tokens
    document_security(app, {SCHEME: {"type": "apiKey", "in": "header", "name": HEADER}})
    return tokens


def _verifier(request: Request) -> InternalTokens:
    tokens: InternalTokens | None = getattr(request.app.state, "internal_tokens", None)
    if tokens is None:
        raise RuntimeError("call setup_internal_tokens(app, settings) before using CallerIdentity")
    return tokens


def identity_from(*callers: str) -> Callable[[Request], Coroutine[Any, Any, Identity]]:
    """A dependency: the verified identity of a call from one of `callers`; 401 without a valid internal token for
    this service, 403 for a valid one from another service."""
    return from_identity(_as_is, callers=callers)


def from_identity(
    derive: Callable[[Identity], T], *, callers: Collection[str] = (GATEWAY,)
) -> Callable[[Request], Coroutine[Any, Any, T]]:
    """A dependency: `derive(identity)` of the verified identity of a call from one of `callers` (see
    `identity_from`), in one step. `derive` may raise (comm.callers: 401 without a user).

    One dependency, not one that depends on `CallerIdentity`: FastAPI solves each level of dependencies per
    request (comm.openapi)."""
    allowed = frozenset(callers)

    # `async def` (it never awaits): FastAPI would run a plain `def` in a worker thread, a hop that costs more than
    # verifying the token. The header is read from the request, not declared as a parameter (comm.openapi).
    async def internal_identity(request: Request) -> T:
        token = request.headers.get(HEADER)
        if not token:
            raise MissingInternalToken
        identity = _verifier(request).verify(token)
        if identity.caller not in allowed:
            log.info("refused a call from %s (this route takes %s)", identity.caller, ", ".join(sorted(allowed)))
            raise CallerNotAllowed
        return derive(identity)

    return requires([{SCHEME: []}])(internal_identity)


def _as_is(identity: Identity) -> Identity:
    return identity


CallerIdentity = Annotated[Identity, Depends(identity_from(GATEWAY))]
