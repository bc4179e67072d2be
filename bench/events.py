"""Events benchmark (`make bench-events`): the outbox path against raw aio-pika, on this machine, in one run.

Outbox path: a writer commits one event per transaction (`add_event`), the relay publishes it (LISTEN/NOTIFY
wake, SKIP LOCKED claim, confirm), the consumer dedups it in `processed_events` and starts the handler.
  latency    commit returned -> handler started, paced writes (p50/p99)
  throughput concurrent writers, one event per transaction: first commit -> last handler started (events/s)
  drain      a backlog committed with no relay running, then relayed: relay start -> last handler (events/s)
Raw aio-pika: the same broker path without a database: persistent publish with confirm to a durable quorum queue,
manual ack after the callback.
  latency    publish called -> consumer callback started (p50/p99)
  throughput pipelined confirmed publishes, first publish -> last callback (messages/s)
The drain and raw aio-pika's throughput are measured in DRAIN_ROUNDS interleaved rounds; drain/raw is the median of
the rounds' ratios, each printed.

Uses the real PostgreSQL and RabbitMQ, under unique names it removes afterwards. About a minute.
"""

import asyncio
import contextlib
import logging
import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comm.cli import freeze_started_heap
from comm.db import create_engine, create_sessionmaker
from comm.events import Consumer, EventMeta, OutboxRelay, UserCreated, add_event, add_event_tables
from comm.events.broker import QUORUM
from comm.events.testing import delete_topology
from comm.settings import CommSettings
from comm.testing import temporary_database, unique_name

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
LATENCY_EVENTS, LATENCY_RATE = 500, 100.0  # 5 s of paced writes
THROUGHPUT_EVENTS, WRITERS = 2000, 8
DRAIN_ROUNDS = 5


def event() -> UserCreated:
    return UserCreated(user_id=uuid.uuid4(), username="bench", email="bench@example.com", timestamp=datetime.now(UTC))


@dataclass(frozen=True)
class Latency:
    """p50 and p99 in seconds."""

    p50: float
    p99: float

    def __str__(self) -> str:
        return f"p50 {self.p50 * 1000:7.2f} ms   p99 {self.p99 * 1000:7.2f} ms"


def percentiles(samples: list[float]) -> Latency:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return Latency(p50=cuts[49], p99=cuts[98])


async def wait_for_count(seen: dict[object, float], count: int, *, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while len(seen) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(seen)} of {count} arrived")
        await asyncio.sleep(0.005)


async def paced(count: int, rate: float, send: Callable[[], Awaitable[object]]) -> None:
    """Call `send` `count` times at `rate` per second."""
    start = time.perf_counter()
    for i in range(count):
        await send()
        await asyncio.sleep(max(0.0, start + (i + 1) / rate - time.perf_counter()))


async def outbox_latency(sessionmaker: async_sessionmaker[AsyncSession], started: dict[object, float]) -> Latency:
    committed: dict[object, float] = {}

    async def write() -> None:
        async with sessionmaker() as session, session.begin():
            event_id = await add_event(session, event())
        committed[event_id] = time.perf_counter()

    await paced(LATENCY_EVENTS, LATENCY_RATE, write)
    await wait_for_count(started, len(committed))
    return percentiles([started[event_id] - at for event_id, at in committed.items()])


async def outbox_throughput(sessionmaker: async_sessionmaker[AsyncSession], started: dict[object, float]) -> str:
    started.clear()

    async def writer(count: int) -> None:
        for _ in range(count):
            async with sessionmaker() as session, session.begin():
                await add_event(session, event())

    begin = time.perf_counter()
    await asyncio.gather(*(writer(THROUGHPUT_EVENTS // WRITERS) for _ in range(WRITERS)))
    written = time.perf_counter() - begin
    total = THROUGHPUT_EVENTS // WRITERS * WRITERS
    await wait_for_count(started, total)
    elapsed = max(started.values()) - begin
    return f"{total / elapsed:7.0f} events/s   ({total} events, writers alone {total / written:.0f} commits/s)"


async def outbox_drain(engine: AsyncEngine, settings: CommSettings, started: dict[object, float]) -> float:
    """A backlog written while no relay runs, then drained: relay and consumer capacity, writers aside."""
    started.clear()
    sessionmaker = create_sessionmaker(engine)
    for _ in range(THROUGHPUT_EVENTS // 100):
        async with sessionmaker() as session, session.begin():
            for _ in range(100):
                await add_event(session, event())
    relay = OutboxRelay(engine=engine, settings=settings)
    begin = time.perf_counter()
    await relay.start()
    try:
        await wait_for_count(started, THROUGHPUT_EVENTS)
    finally:
        await relay.stop()
    return THROUGHPUT_EVENTS / (max(started.values()) - begin)


@dataclass
class OutboxSide:
    """The consumer of the outbox path, running; what its handler started, by event id."""

    engine: AsyncEngine
    settings: CommSettings
    sessionmaker: async_sessionmaker[AsyncSession]
    started: dict[object, float]


@contextlib.asynccontextmanager
async def outbox_side(engine: AsyncEngine, settings: CommSettings) -> AsyncIterator[OutboxSide]:
    started: dict[object, float] = {}

    async def handle(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
        started[meta.event_id] = time.perf_counter()

    sessionmaker = create_sessionmaker(engine)
    consumer = Consumer(queue=f"{settings.events_exchange}.bench", settings=settings, sessionmaker=sessionmaker)
    consumer.register(UserCreated, handle)
    await consumer.start()
    await consumer.ready()
    try:
        yield OutboxSide(engine, settings, sessionmaker, started)
    finally:
        await consumer.stop()


async def outbox_flowing(side: OutboxSide) -> tuple[Latency, str]:
    """Latency and throughput with the relay running all along."""
    relay = OutboxRelay(engine=side.engine, settings=side.settings)
    await relay.start()
    try:
        return await outbox_latency(side.sessionmaker, side.started), await outbox_throughput(
            side.sessionmaker, side.started
        )
    finally:
        await relay.stop()


@dataclass
class RawSide:
    """Raw aio-pika: a publishing channel and a consumer on a queue of its own; what arrived, by message id."""

    channel: AbstractChannel
    queue_name: str
    arrived: dict[object, float]


@contextlib.asynccontextmanager
async def raw_side(queue_name: str) -> AsyncIterator[RawSide]:
    connection = await aio_pika.connect_robust(RABBITMQ_URL)
    try:
        publish_channel = await connection.channel()
        consume_channel = await connection.channel()
        await consume_channel.set_qos(prefetch_count=32)
        queue = await consume_channel.declare_queue(queue_name, durable=True, arguments=QUORUM)
        arrived: dict[object, float] = {}

        async def on_message(message: AbstractIncomingMessage) -> None:
            arrived[message.message_id] = time.perf_counter()
            await message.ack()

        consumer_tag = await queue.consume(on_message)
        try:
            yield RawSide(publish_channel, queue_name, arrived)
        finally:
            await queue.cancel(consumer_tag)
            await consume_channel.queue_delete(queue_name)
    finally:
        await connection.close()


async def raw_publish(side: RawSide, sent: dict[object, float] | None = None) -> None:
    message_id = str(uuid.uuid4())
    if sent is not None:
        sent[message_id] = time.perf_counter()
    body = aio_pika.Message(b"{}", message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await side.channel.default_exchange.publish(body, routing_key=side.queue_name)


async def raw_latency(side: RawSide) -> Latency:
    """Paced publishes, one confirm at a time."""
    sent: dict[object, float] = {}
    side.arrived.clear()
    await paced(LATENCY_EVENTS, LATENCY_RATE, lambda: raw_publish(side, sent))
    await wait_for_count(side.arrived, len(sent))
    return percentiles([side.arrived[message_id] - at for message_id, at in sent.items()])


async def raw_throughput(side: RawSide) -> float:
    """Pipelined publishes, 100 confirms in flight."""
    side.arrived.clear()
    begin = time.perf_counter()
    for _ in range(THROUGHPUT_EVENTS // 100):
        await asyncio.gather(*(raw_publish(side) for _ in range(100)))
    await wait_for_count(side.arrived, THROUGHPUT_EVENTS)
    return THROUGHPUT_EVENTS / (max(side.arrived.values()) - begin)


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    load_before = os.getloadavg()[0]
    exchange = unique_name("bench.events")
    settings = CommSettings(service_name="bench", rabbitmq_url=RABBITMQ_URL, events_exchange=exchange)
    async with temporary_database("bench_events") as url:
        engine = create_engine(url, pool_size=20)
        metadata = MetaData()
        add_event_tables(metadata)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        try:
            async with outbox_side(engine, settings) as outbox, raw_side(f"{exchange}.raw") as raw:
                freeze_started_heap()  # as `python -m <service> serve` does once its app has started
                latency, throughput = await outbox_flowing(outbox)
                raw_p = await raw_latency(raw)
                # Drain and raw throughput interleaved, round by round: each lasts about a second, and one
                # second of a shared machine is noise; the ratio of a round compares two seconds side by side.
                rounds = []
                for _ in range(DRAIN_ROUNDS):
                    drain = await outbox_drain(engine, settings, outbox.started)
                    rounds.append((drain, await raw_throughput(raw)))
        finally:
            await engine.dispose()
            await delete_topology(url=RABBITMQ_URL, exchange=exchange, queues=[f"{exchange}.bench"])
    print(f"outbox -> handler   latency     {latency}   (commit -> handler start, {LATENCY_RATE:.0f} events/s paced)")
    print(f"outbox -> handler   throughput  {throughput}")
    print(f"raw aio-pika        latency     {raw_p}   (publish -> consumer callback, same pacing)")
    for n, (drain, raw_rate) in enumerate(rounds, 1):
        print(
            f"round {n}: outbox backlog drain {drain:5.0f} events/s ({THROUGHPUT_EVENTS} written first), raw aio-pika"
            f" throughput {raw_rate:5.0f} messages/s: {drain / raw_rate:.2f}"
        )
    ratios = [drain / raw_rate for drain, raw_rate in rounds]
    print(
        f"drain/raw = {statistics.median(ratios):.2f}, the median of {len(ratios)} rounds"
        f" ({min(ratios):.2f} to {max(ratios):.2f}) (goal >= 0.5)"
    )
    print(f"latency p50 ratio = {latency.p50 / raw_p.p50:.1f} (goal <= 5)")
    print(f"p99 ratio = {latency.p99 / raw_p.p99:.1f} (goal <= 10)")
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    asyncio.run(main())
