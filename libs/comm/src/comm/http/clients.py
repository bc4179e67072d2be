"""Typed clients of the four services: one method per endpoint, answers as minimal models.

Each wraps one `ServiceClient` (its `http` attribute), built from the settings' `*_SERVICE_URL`. Calls carry an
internal token: for the identity given, or by default for the calling service acting on its own. Models ignore
fields they do not name, so a service can add fields without breaking its callers. They grow methods as the
services do; build one per downstream in the lifespan and close it there.
"""

import time
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import ClassVar, Self

import httpx
from opentelemetry import trace
from pydantic import BaseModel, ConfigDict

from comm.errors import Unauthorized, UpstreamClientError
from comm.http.client import ServiceClient
from comm.http.retry import IDEMPOTENCY_HEADER
from comm.settings import CommSettings
from comm.tokens import Identity

SERVICE = Identity()  # the calling service acting on its own


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class User(_Model):
    id: uuid.UUID
    username: str
    email: str
    roles: list[str] = []


class Post(_Model):
    id: uuid.UUID
    slug: str
    title: str
    author_id: uuid.UUID
    published: bool | None = None  # None from a blog that does not say (the seed's)


class Profile(_Model):
    user_id: uuid.UUID
    username: str
    bio: str | None = None
    image: str | None = None


class Comment(_Model):
    id: uuid.UUID
    post_id: uuid.UUID
    body: str
    status: str


class TokenRejected(Unauthorized):
    detail = "invalid or expired token"


class _TypedClient:
    """Shared construction and lifecycle of the typed clients."""

    downstream: ClassVar[str]

    def __init__(
        self,
        *,
        settings: CommSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.http = ServiceClient(
            downstream=self.downstream,
            # The seed's AUTH_SERVICE_URL, BLOG_SERVICE_URL, ...: `<downstream>_service_url` in the settings.
            base_url=getattr(settings, f"{self.downstream}_service_url"),
            settings=settings,
            transport=transport,
            clock=clock,
            tracer_provider=tracer_provider,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class AuthServiceClient(_TypedClient):
    downstream = "auth"

    async def validate_token(self, token: str, *, identity: Identity = SERVICE) -> User:
        """`POST /auth/validate`: the user a token belongs to; TokenRejected (401) if auth refuses it."""
        # Validating changes nothing, so the request may be sent again: the key lets the retry policy do so.
        headers = {IDEMPOTENCY_HEADER: uuid.uuid4().hex}
        try:
            return await self.http.post(
                "/auth/validate", json={"token": token}, response_model=User, headers=headers, identity=identity
            )
        except UpstreamClientError as exc:
            if exc.upstream_status == 401:
                raise TokenRejected from exc
            raise


class BlogServiceClient(_TypedClient):
    downstream = "blog"

    async def get_post(self, post_id: uuid.UUID, *, identity: Identity = SERVICE) -> Post:
        """`GET /posts/{id}`."""
        return await self.http.get(
            "/posts/{post_id}", path_params={"post_id": post_id}, response_model=Post, identity=identity
        )


class UserServiceClient(_TypedClient):
    downstream = "user"

    async def get_profile(self, user_id: uuid.UUID, *, identity: Identity = SERVICE) -> Profile:
        """`GET /profiles/{id}`."""
        return await self.http.get(
            "/profiles/{user_id}", path_params={"user_id": user_id}, response_model=Profile, identity=identity
        )


class CommentServiceClient(_TypedClient):
    downstream = "comment"

    async def get_comment(self, comment_id: uuid.UUID, *, identity: Identity = SERVICE) -> Comment:
        """`GET /comments/{id}`."""
        return await self.http.get(
            "/comments/{comment_id}", path_params={"comment_id": comment_id}, response_model=Comment, identity=identity
        )
