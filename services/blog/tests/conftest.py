"""The blog service under a real uvicorn server, on its own fresh database and its own exchange."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from blog.main import create_app
from blog.settings import BlogSettings
from comm.authors import authors_queue
from comm.db import migrate
from comm.events.testing import delete_topology
from comm.testing import internal_token_keys, serve, temporary_database, tokens_of, unique_name
from comm.tokens import HEADER, Identity

KEYS = internal_token_keys(("gateway", "comment", "blog"))  # the suite's own: nothing is read from the environment
GATEWAY = tokens_of(KEYS, "gateway")
COMMENT = tokens_of(KEYS, "comment")


@pytest.fixture
def internal_keys() -> dict[str, str]:
    """The apps' keys this suite's blog knows (comm.testing.internal_token_keys), to call it as another app."""
    return KEYS


def internal_headers(user_id: uuid.UUID | None = None, roles: frozenset[str] = frozenset()) -> dict[str, str]:
    """What the gateway sends: an internal token for blog, on behalf of a user or of nobody."""
    return {HEADER: GATEWAY.mint(audience="blog", identity=Identity(user_id=user_id, roles=roles))}


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    async with temporary_database("blog") as url:
        await migrate(package="blog", url=url)
        yield url


@pytest.fixture(scope="session")
async def settings(database_url: str) -> AsyncIterator[BlogSettings]:
    settings = BlogSettings(
        database_url=database_url,
        internal_token_public_keys=KEYS["INTERNAL_TOKEN_PUBLIC_KEYS"],
        events_exchange=unique_name("test.blog.events"),
        queue_prefix=unique_name("test.blog"),
        events_retry_delay_seconds=0.2,
        events_reconnect_interval_seconds=0.5,
    )
    yield settings
    await delete_topology(
        url=settings.rabbitmq_url, exchange=settings.events_exchange, queues=[authors_queue(settings.queue_prefix)]
    )


@pytest.fixture(scope="session")
def app(settings: BlogSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
async def blog_url(app: FastAPI) -> AsyncIterator[str]:
    async with serve(app) as url:
        async with asyncio.timeout(30):  # the authors queue exists and is bound before a test publishes
            for consumer in app.state.consumers:
                await consumer.ready()
        yield url


@pytest.fixture
async def client(blog_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling as the gateway for nobody; tests pass `headers=as_user(...)` to act for a user."""
    async with httpx.AsyncClient(base_url=blog_url, headers=internal_headers(), timeout=30) as client:
        yield client


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, to check what is stored."""
    conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    yield conn
    await conn.close()


class Author:
    """A user of the tests: an id, the headers that act for them, and a way to write posts."""

    def __init__(self, client: httpx.AsyncClient, roles: frozenset[str] = frozenset()) -> None:
        self.id = uuid.uuid4()
        self.headers = internal_headers(self.id, roles)
        self._client = client

    async def post(self, **fields: Any) -> dict[str, Any]:
        """Create a post (defaults for the required fields); returns the response body."""
        body = {"title": unique_name("Title"), "description": "about it", "body": "the text", **fields}
        response = await self._client.post("/posts", json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created


NewAuthor = Callable[..., Author]


@pytest.fixture
def new_author(client: httpx.AsyncClient) -> NewAuthor:
    def make(roles: frozenset[str] = frozenset()) -> Author:
        return Author(client, roles)

    return make


Headers = Callable[..., dict[str, str]]


@pytest.fixture
def headers_for() -> Headers:
    return internal_headers
