"""Who is calling: `Authorization: Token <jwt>` validated by auth, cached for a few seconds.

A positive answer is cached for `token_cache_ttl_seconds` (default 5 s), so a revoked token stops working within
that time; refusals are never cached. Concurrent requests with one token share one validation. The gateway then
calls services on the viewer's behalf with internal tokens (comm.tokens) that carry the viewer's id and roles;
nothing the client sends is forwarded as identity.
"""

import asyncio
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Annotated

from cachetools import TTLCache
from fastapi import Depends, Request

from comm.errors import Unauthorized
from comm.http.clients import AuthServiceClient, User
from comm.openapi import requires
from comm.tokens import Identity

ANONYMOUS = Identity()


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in user and the token they signed in with."""

    user: User
    token: str

    @property
    def identity(self) -> Identity:
        return Identity(user_id=self.user.id, roles=frozenset(self.user.roles))


def identity_of(viewer: Viewer | None) -> Identity:
    """Whom the gateway calls services for: the viewer, or nobody."""
    return viewer.identity if viewer is not None else ANONYMOUS


class TokenValidator:
    """Asks auth whether a token is good, remembering good answers briefly."""

    def __init__(
        self, auth: AuthServiceClient, *, ttl_seconds: float, size: int, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._auth = auth
        self._cache: TTLCache[bytes, User] = TTLCache(maxsize=size, ttl=ttl_seconds, timer=timer)
        # One question to auth per token at a time: when an answer expires, the requests that a front end sends
        # together (a page's articles, tags, profile ...) wait for one validation instead of sending one each.
        # Hand-written (a dict of tasks): async-lru would coalesce too, but it keys on the raw token and cannot
        # leave refusals uncached while sharing them with the requests waiting at that moment.
        self._asking: dict[bytes, asyncio.Task[User]] = {}

    async def validate(self, token: str) -> User:
        key = hashlib.sha256(token.encode()).digest()
        user = self._cache.get(key)
        if user is not None:
            return user
        task = self._asking.get(key)
        if task is None:
            task = asyncio.create_task(self._ask(key, token))
            self._asking[key] = task
            task.add_done_callback(partial(self._asked, key))
        # Shielded: a request that goes away (client disconnect) does not cancel the others' validation.
        return await asyncio.shield(task)

    async def _ask(self, key: bytes, token: str) -> User:
        user = await self._auth.validate_token(token)
        self._cache[key] = user
        return user

    def _asked(self, key: bytes, task: asyncio.Task[User]) -> None:
        self._asking.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a refusal nobody waits for any more is not logged as lost

    def forget(self, token: str) -> None:
        """Drop a cached answer (after the user changed, so the next read sees the change)."""
        self._cache.pop(hashlib.sha256(token.encode()).digest(), None)


class InvalidAuthorization(Unauthorized):
    detail = "authorization header must be 'Token <jwt>'"


class MissingAuthorization(Unauthorized):
    detail = "missing authorization credentials"


# `Token <jwt>` in the OpenAPI, on the operations whose dependencies read it (comm.openapi; gateway.main documents it).
TOKEN_SCHEME = "Token"
TOKEN = {
    "type": "apiKey",
    "in": "header",
    "name": "Authorization",
    "description": "`Token <jwt>`, the token from login or registration.",
}


@requires([{TOKEN_SCHEME: []}, {}])  # `{}`: or none
async def optional_viewer(request: Request) -> Viewer | None:
    """The viewer, or None without a token; an invalid token is 401 even where a token is optional."""
    authorization = request.headers.get("Authorization")
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in ("token", "bearer") or not token or len(token) > 4096:
        raise InvalidAuthorization
    validator: TokenValidator = request.app.state.token_validator
    return Viewer(user=await validator.validate(token), token=token)


@requires([{TOKEN_SCHEME: []}])
async def required_viewer(request: Request) -> Viewer:
    """One dependency, not one over `optional_viewer`: FastAPI solves each level per request (comm.openapi)."""
    viewer = await optional_viewer(request)
    if viewer is None:
        raise MissingAuthorization
    return viewer


OptionalViewer = Annotated[Viewer | None, Depends(optional_viewer)]
CurrentViewer = Annotated[Viewer, Depends(required_viewer)]
