"""Fixtures of the comm suite. Event fixtures are prefixed `events_` or bundled in `events` (HTTP has its own)."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import Column, Integer, MetaData, String, Table, Uuid, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comm.db import create_engine, create_sessionmaker
from comm.events.consumer import Consumer, EventMeta, Handler
from comm.events.models import Event, UserCreated
from comm.events.outbox import add_event
from comm.events.relay import OutboxRelay
from comm.events.tables import add_event_tables
from comm.events.testing import delete_topology
from comm.settings import CommSettings
from comm.testing import temporary_database, unique_name

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"

events_metadata = MetaData()
add_event_tables(events_metadata)
# What the test handlers do to the database: one row per application, so "applied once" is a count.
effects = Table(
    "effects",
    events_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("queue", String(255), nullable=False),
    Column("event_id", Uuid, nullable=False),
)


@dataclass
class EventsTopology:
    """A unique exchange per test and the queues named under it, deleted at teardown."""

    settings: CommSettings
    queues: list[str] = field(default_factory=list)

    def queue(self, concern: str) -> str:
        name = f"{self.settings.events_exchange}.{concern}"
        self.queues.append(name)
        return name

    def with_url(self, url: str) -> CommSettings:
        return self.settings.model_copy(update={"rabbitmq_url": url})


@pytest.fixture
async def events_engine() -> AsyncIterator[AsyncEngine]:
    """A fresh database holding the outbox, processed_events and the handlers' effects."""
    async with temporary_database("events") as url:
        engine = create_engine(url, pool_size=5)
        async with engine.begin() as conn:
            await conn.run_sync(events_metadata.create_all)
        try:
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
def events_sessionmaker(events_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(events_engine)


@pytest.fixture
async def events_topology() -> AsyncIterator[EventsTopology]:
    settings = CommSettings(
        service_name="events-test",
        rabbitmq_url=RABBITMQ_URL,
        events_exchange=unique_name("test.events"),
        events_retry_delay_seconds=0.1,
        events_max_attempts=4,
        events_reconnect_interval_seconds=0.3,
        events_publish_timeout_seconds=3.0,
        outbox_poll_interval_seconds=0.5,
    )
    topology = EventsTopology(settings=settings)
    try:
        yield topology
    finally:
        await delete_topology(url=RABBITMQ_URL, exchange=settings.events_exchange, queues=topology.queues)


@dataclass
class Events:
    """A test's events set-up in one fixture: its database, exchange and queues, and the relays and consumers it starts.

    What it starts stops when the test ends, before the database and the exchange go. Test modules cannot import
    from here (importlib mode), so the helpers come with it.
    """

    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    topology: EventsTopology
    stack: AsyncExitStack

    effects: ClassVar[Table] = effects

    @property
    def settings(self) -> CommSettings:
        return self.topology.settings

    def queue(self, concern: str) -> str:
        """The queue for `concern` under the test's exchange, deleted at teardown."""
        return self.topology.queue(concern)

    def with_url(self, url: str) -> CommSettings:
        """The test's settings with another broker URL (a TcpProxy's)."""
        return self.topology.with_url(url)

    async def consumer(
        self, concern: str, handlers: Mapping[type[Event], Handler[Any]], *, settings: CommSettings | None = None
    ) -> Consumer:
        """Start a consumer on the queue for `concern` and wait until it consumes; stopped at teardown."""
        consumer = Consumer(
            queue=self.queue(concern), settings=settings or self.settings, sessionmaker=self.sessionmaker
        )
        for model, handler in handlers.items():
            consumer.register(model, handler)
        await consumer.start()
        self.stack.push_async_callback(consumer.stop)
        async with asyncio.timeout(10):
            await consumer.ready()
        return consumer

    async def relay(self, *, settings: CommSettings | None = None) -> OutboxRelay:
        """Start a relay on the test's outbox; stopped at teardown."""
        relay = OutboxRelay(engine=self.engine, settings=settings or self.settings)
        await relay.start()
        self.stack.push_async_callback(relay.stop)
        return relay

    @staticmethod
    def user_created(username: str = "alice") -> UserCreated:
        """A fresh event."""
        return UserCreated(
            user_id=uuid.uuid4(), username=username, email=f"{username}@example.com", timestamp=datetime.now(UTC)
        )

    async def write_events(self, events: list[Event]) -> list[uuid.UUID]:
        """Commit the events in one use-case transaction, as a service would."""
        async with self.sessionmaker() as session, session.begin():
            return [await add_event(session, event) for event in events]

    @staticmethod
    async def record_effect(session: AsyncSession, event: Event, meta: EventMeta) -> None:
        """A handler whose side effect is one `effects` row per application."""
        await session.execute(insert(effects).values(queue=meta.queue, event_id=meta.event_id))

    async def count_effects(self, *, queue: str, event_id: uuid.UUID | None = None) -> int:
        """How many times handlers on `queue` applied events (or this event)."""
        query = select(func.count()).select_from(effects).where(effects.c.queue == queue)
        if event_id is not None:
            query = query.where(effects.c.event_id == event_id)
        async with self.engine.connect() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def has_effects(self, *, queue: str, count: int) -> bool:
        """Whether exactly `count` applications happened on `queue` (a `wait_until` predicate)."""
        return await self.count_effects(queue=queue) == count


@pytest.fixture
async def events(
    events_engine: AsyncEngine,
    events_sessionmaker: async_sessionmaker[AsyncSession],
    events_topology: EventsTopology,
) -> AsyncIterator[Events]:
    """Its stack closes before the database and the exchange go, since it depends on their fixtures."""
    async with AsyncExitStack() as stack:
        yield Events(engine=events_engine, sessionmaker=events_sessionmaker, topology=events_topology, stack=stack)


@pytest.fixture(scope="session")
def events_span_exporter() -> InMemorySpanExporter:
    """An in-memory exporter on the process's SDK tracer provider (installed here unless one already is)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "a non-SDK tracer provider was installed first"
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@pytest.fixture
def events_spans(events_span_exporter: InMemorySpanExporter) -> Iterator[InMemorySpanExporter]:
    events_span_exporter.clear()
    yield events_span_exporter
    events_span_exporter.clear()
