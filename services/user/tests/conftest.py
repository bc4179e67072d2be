"""The user service under a real uvicorn server, on its own fresh database, exchange and queues."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import aio_pika
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from comm.db import create_sessionmaker, migrate
from comm.events.models import Event
from comm.events.tables import TABLES
from comm.events.testing import delete_topology, publish_event, wait_until
from comm.testing import serve, temporary_database, unique_name
from comm.tokens import HEADER, Identity, InternalTokens
from user.consumers import comment_counts_queue, profile_sync_queue
from user.main import create_app
from user.settings import UserSettings

GATEWAY = InternalTokens.development("gateway")  # what the apps accept with no keys set


def internal_headers(user_id: uuid.UUID | None = None, roles: frozenset[str] = frozenset()) -> dict[str, str]:
    """What the gateway sends: an internal token for the user service, on behalf of a user or of nobody."""
    return {HEADER: GATEWAY.mint(audience="user", identity=Identity(user_id=user_id, roles=roles))}


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    async with temporary_database("user") as url:
        await migrate(package="user", url=url)
        yield url


@pytest.fixture(scope="session")
async def settings(database_url: str) -> AsyncIterator[UserSettings]:
    settings = UserSettings(
        database_url=database_url,
        events_exchange=unique_name("test.user.events"),
        queue_prefix=unique_name("test.user"),
        events_retry_delay_seconds=0.2,
        events_reconnect_interval_seconds=0.5,
    )
    yield settings
    await delete_topology(
        url=settings.rabbitmq_url,
        exchange=settings.events_exchange,
        queues=[profile_sync_queue(settings), comment_counts_queue(settings)],
    )


@pytest.fixture(scope="session")
async def user_app(settings: UserSettings) -> FastAPI:
    return create_app(settings)


@pytest.fixture(scope="session")
async def user_url(user_app: FastAPI) -> AsyncIterator[str]:
    async with serve(user_app) as url:
        async with asyncio.timeout(30):  # the queues exist and are bound before a test publishes
            for consumer in user_app.state.consumers:
                await consumer.ready()
        yield url


@pytest.fixture
async def client(user_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=user_url, headers=internal_headers(), timeout=10) as client:
        yield client


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The test's own connection to the service's database, for handler-level tests and assertions."""
    # Handler-level tests commit hundreds of tiny transactions: no need to wait for the disk on each.
    engine = create_async_engine(
        database_url, pool_size=2, connect_args={"server_settings": {"synchronous_commit": "off"}}
    )
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


Headers = Callable[..., dict[str, str]]
Publish = Callable[..., Awaitable[uuid.UUID]]
WaitProcessed = Callable[[str, Iterable[uuid.UUID]], Awaitable[None]]
NewProfile = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
def headers_for() -> Headers:
    return internal_headers


@pytest.fixture(scope="session")
async def publish(user_url: str, settings: UserSettings) -> AsyncIterator[Publish]:
    """Publish an event to the test exchange with the properties the outbox relay sets; returns its message id."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(settings.events_exchange, ensure=True)

    async def send(event: Event, *, message_id: uuid.UUID | None = None) -> uuid.UUID:
        return await publish_event(exchange, event, app_id="test", message_id=message_id)

    yield send
    await connection.close()


@pytest.fixture
def wait_processed(engine: AsyncEngine) -> WaitProcessed:
    """Wait until the consumer of `queue` has committed every one of `event_ids`."""

    async def wait(queue: str, event_ids: Iterable[uuid.UUID]) -> None:
        wanted = set(event_ids)
        processed = TABLES.processed_events
        query = select(func.count()).where(processed.c.consumer == queue, processed.c.event_id.in_(wanted))

        async def done() -> bool:
            async with engine.connect() as conn:
                return (await conn.scalar(query)) == len(wanted)

        await wait_until(done, within=30, interval=0.05)

    return wait


@pytest.fixture
def new_profile(client: httpx.AsyncClient) -> NewProfile:
    """A profile made through the ensure path for a new user id; returns the profile as the user sees it."""

    async def make(username: str | None = None) -> dict[str, Any]:
        user_id = uuid.uuid4()
        name = username or unique_name("u")
        response = await client.put(f"/profiles/{user_id}", json={"username": name}, headers=internal_headers(user_id))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return make
