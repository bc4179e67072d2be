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

Uses the real PostgreSQL and RabbitMQ, under unique names it removes afterwards. About a minute.
"""

import asyncio
import logging
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comm.db import create_engine, create_sessionmaker
from comm.events import Consumer, EventMeta, OutboxRelay, UserCreated, add_event, add_event_tables
from comm.events.broker import QUORUM
from comm.events.testing import delete_topology
from comm.settings import CommSettings
from comm.testing import temporary_database, unique_name

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
LATENCY_EVENTS, LATENCY_RATE = 500, 100.0  # 5 s of paced writes
THROUGHPUT_EVENTS, WRITERS = 2000, 8


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


async def run_outbox(engine: AsyncEngine, settings: CommSettings) -> tuple[Latency, str, float]:
    started: dict[object, float] = {}

    async def handle(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
        started[meta.event_id] = time.perf_counter()

    sessionmaker = create_sessionmaker(engine)
    consumer = Consumer(queue=f"{settings.events_exchange}.bench", settings=settings, sessionmaker=sessionmaker)
    consumer.register(UserCreated, handle)
    await consumer.start()
    await consumer.ready()
    try:
        relay = OutboxRelay(engine=engine, settings=settings)
        await relay.start()
        try:
            latency = await outbox_latency(sessionmaker, started)
            throughput = await outbox_throughput(sessionmaker, started)
        finally:
            await relay.stop()
        return latency, throughput, await outbox_drain(engine, settings, started)
    finally:
        await consumer.stop()


async def run_raw(queue_name: str) -> tuple[Latency, float]:
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
        results = await raw_figures(publish_channel, queue_name, arrived)
        await queue.cancel(consumer_tag)
        await consume_channel.queue_delete(queue_name)
        return results
    finally:
        await connection.close()


async def raw_figures(channel: AbstractChannel, queue_name: str, arrived: dict[object, float]) -> tuple[Latency, float]:
    """Latency (paced, one confirm at a time) and throughput (100 confirms in flight) of raw publishes."""
    sent: dict[object, float] = {}

    async def publish() -> None:
        message_id = str(uuid.uuid4())
        sent[message_id] = time.perf_counter()
        body = aio_pika.Message(b"{}", message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await channel.default_exchange.publish(body, routing_key=queue_name)

    await paced(LATENCY_EVENTS, LATENCY_RATE, publish)
    await wait_for_count(arrived, len(sent))
    latency = percentiles([arrived[message_id] - at for message_id, at in sent.items()])
    arrived.clear()
    begin = time.perf_counter()
    for _ in range(THROUGHPUT_EVENTS // 100):
        await asyncio.gather(*(publish() for _ in range(100)))
    await wait_for_count(arrived, THROUGHPUT_EVENTS)
    elapsed = max(arrived.values()) - begin
    return latency, THROUGHPUT_EVENTS / elapsed


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
            outbox = await run_outbox(engine, settings)
            raw = await run_raw(f"{exchange}.raw")
        finally:
            await engine.dispose()
            await delete_topology(url=RABBITMQ_URL, exchange=exchange, queues=[f"{exchange}.bench"])
    print(f"outbox -> handler   latency     {outbox[0]}   (commit -> handler start, {LATENCY_RATE:.0f} events/s paced)")
    print(f"outbox -> handler   throughput  {outbox[1]}")
    print(f"outbox backlog      drain       {outbox[2]:7.0f} events/s   ({THROUGHPUT_EVENTS} events, written first)")
    print(f"raw aio-pika        latency     {raw[0]}   (publish -> consumer callback, same pacing)")
    print(f"raw aio-pika        throughput  {raw[1]:7.0f} messages/s ({THROUGHPUT_EVENTS} messages)")
    print(f"drain/raw = {outbox[2] / raw[1]:.2f} (goal >= 0.5)")
    print(f"latency p50 ratio = {outbox[0].p50 / raw[0].p50:.1f} (goal <= 5)")
    print(f"p99 ratio = {outbox[0].p99 / raw[0].p99:.1f} (goal <= 10)")
    print(f"load average (1 min): {load_before:.2f} before, {os.getloadavg()[0]:.2f} after, on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    asyncio.run(main())
