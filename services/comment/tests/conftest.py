"""The comment service under a real uvicorn server, with a stand-in blog, on its own database, exchange and queues.

Blog is being written by another engineer, so `FakeBlog` stands in for it: a small real FastAPI app serving
`GET /posts/{id}` behind the same internal tokens, whose posts the tests choose and which a test can stop. Every
other boundary is the real thing: PostgreSQL, RabbitMQ, uvicorn, the comm library.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import aio_pika
import asyncpg
import httpx
import pytest
from fastapi import Depends, FastAPI

from comm.db import migrate
from comm.errors import NotFound, install_error_handlers
from comm.events.models import Event, PostDeleted, decode_event
from comm.events.testing import delete_topology, publish_event
from comm.settings import CommSettings
from comm.testing import serve, temporary_database, unique_name
from comm.tokens import HEADER, Identity, InternalTokens, identity_from, setup_internal_tokens
from comment.main import create_app
from comment.settings import CommentSettings

GATEWAY = InternalTokens.development("gateway")  # what the apps accept with no keys set


@dataclass(frozen=True)
class Actor:
    """On whose behalf the gateway calls: a user with roles, or nobody (an anonymous client)."""

    user_id: uuid.UUID | None = None
    roles: frozenset[str] = frozenset()

    @property
    def headers(self) -> dict[str, str]:
        return {HEADER: GATEWAY.mint(audience="comment", identity=Identity(self.user_id, self.roles))}


class FakeBlog:
    """Blog's `GET /posts/{id}` (docs/architecture.md §3): 404 for unknown posts and for others' drafts."""

    def __init__(self) -> None:
        self.posts: dict[uuid.UUID, dict[str, Any]] = {}
        self.seen: list[Identity] = []  # the identity of every call, as blog verified it
        self.app = FastAPI()
        setup_internal_tokens(self.app, CommSettings(service_name="blog"))
        install_error_handlers(self.app)
        self.app.add_api_route("/posts/{post_id}", self._get_post, methods=["GET"])

    def add(self, *, published: bool = True, author_id: uuid.UUID | None = None) -> uuid.UUID:
        post_id = uuid.uuid4()
        self.posts[post_id] = {
            "id": str(post_id),
            "slug": f"post-{post_id.hex[:8]}",
            "title": "A post",
            "author_id": str(author_id or uuid.uuid4()),
            "published": published,  # blog's PostOut has more fields; comment reads only these
        }
        return post_id

    async def _get_post(
        self, post_id: uuid.UUID, identity: Annotated[Identity, Depends(identity_from("comment"))]
    ) -> dict[str, Any]:
        self.seen.append(identity)
        post = self.posts.get(post_id)
        if post is None or (not post["published"] and post["author_id"] != str(identity.user_id)):
            raise NotFound("post not found")
        return post


@dataclass
class Kit:
    """What the tests share: the app's URL and settings, the stand-in blog, the broker and the database."""

    url: str
    settings: CommentSettings
    blog: FakeBlog
    client: httpx.AsyncClient
    exchange: aio_pika.abc.AbstractExchange
    received: list[tuple[aio_pika.abc.AbstractIncomingMessage, Event]] = field(default_factory=list)

    @staticmethod
    def user(*roles: str) -> Actor:
        return Actor(user_id=uuid.uuid4(), roles=frozenset(roles))

    anonymous = Actor()

    async def create(
        self, post_id: uuid.UUID, actor: Actor, body: str = "Nice post", author_name: str | None = None
    ) -> httpx.Response:
        payload: dict[str, Any] = {"body": body}
        if author_name is not None:
            payload["author_name"] = author_name
        return await self.client.post(f"/posts/{post_id}/comments", json=payload, headers=actor.headers)

    async def created(self, post_id: uuid.UUID, actor: Actor, **kwargs: Any) -> dict[str, Any]:
        response = await self.create(post_id, actor, **kwargs)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def listed(self, post_id: uuid.UUID, actor: Actor | None = None, **params: Any) -> dict[str, Any]:
        headers = (actor or self.anonymous).headers
        response = await self.client.get(f"/posts/{post_id}/comments", params=params, headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def publish_post_deleted(self, post_id: uuid.UUID, event_id: uuid.UUID | None = None) -> uuid.UUID:
        """What blog's relay sends when a post is deleted, on the test exchange; returns the event id."""
        event = PostDeleted(post_id=post_id, author_id=uuid.uuid4(), timestamp=datetime.now(UTC))
        return await publish_event(self.exchange, event, app_id="blog", message_id=event_id)

    def events(self, routing_key: str, *, post_id: uuid.UUID | None = None) -> list[Any]:
        """The comment events received so far, in order; those of one post if given."""
        return [
            event
            for message, event in self.received
            if message.type == routing_key and (post_id is None or getattr(event, "post_id", None) == post_id)
        ]

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.settings.database_url.replace("+asyncpg", ""))
        try:
            return list(await conn.fetch(query, *args))
        finally:
            await conn.close()

    async def count_comments(self, *post_ids: uuid.UUID) -> int:
        rows = await self.sql("SELECT count(*) AS n FROM comments WHERE post_id = ANY($1::uuid[])", list(post_ids))
        return int(rows[0]["n"])


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    async with temporary_database("comment") as url:
        await migrate(package="comment", url=url)
        yield url


@pytest.fixture(scope="session")
async def blog() -> AsyncIterator[tuple[FakeBlog, str]]:
    fake = FakeBlog()
    async with serve(fake.app) as url:
        yield fake, url


def fast_settings(database_url: str, blog_url: str) -> CommentSettings:
    """Fast breaker, retries and polling; a unique exchange and queue prefix for this run."""
    return CommentSettings(
        database_url=database_url,
        blog_service_url=blog_url,
        events_exchange=unique_name("test.comment.events"),
        queue_prefix=unique_name("test.comment"),
        http_breaker_failure_threshold=3,
        http_breaker_reset_timeout_seconds=0.5,
        http_retry_backoff_base_seconds=0.01,
        http_retry_backoff_max_seconds=0.05,
        http_connect_timeout_seconds=1.0,
        http_read_timeout_seconds=2.0,
        outbox_poll_interval_seconds=0.2,
        events_retry_delay_seconds=0.2,
        events_reconnect_interval_seconds=0.5,
    )


@pytest.fixture(scope="session")
async def settings(database_url: str, blog: tuple[FakeBlog, str]) -> AsyncIterator[CommentSettings]:
    settings = fast_settings(database_url, blog[1])
    yield settings
    await delete_topology(
        url=settings.rabbitmq_url,
        exchange=settings.events_exchange,
        queues=[settings.post_cleanup_queue, settings.authors_queue],
    )


@pytest.fixture(scope="session")
async def comment_url(settings: CommentSettings) -> AsyncIterator[str]:
    app = create_app(settings)
    async with serve(app) as url:
        async with asyncio.timeout(20):  # the queue is declared and consumed: post.deleted has somewhere to go
            await app.state.post_cleanup.ready()
            await app.state.authors.ready()
        yield url


@pytest.fixture(scope="session")
async def kit(comment_url: str, settings: CommentSettings, blog: tuple[FakeBlog, str]) -> AsyncIterator[Kit]:
    """The shared kit; every comment.* message on the test exchange is collected in `kit.received`."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(settings.events_exchange, aio_pika.ExchangeType.TOPIC, passive=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "comment.*")
    async with httpx.AsyncClient(base_url=comment_url, timeout=10) as client:
        kit = Kit(url=comment_url, settings=settings, blog=blog[0], client=client, exchange=exchange)

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            kit.received.append((message, decode_event(message.body)))

        await queue.consume(keep, no_ack=True)
        yield kit
    await connection.close()
