"""Relays and consumers under faults a TCP close does not show (a hung broker), a database refusing connections,
and their supervision."""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from comm.events.broker import connect
from comm.events.models import UserCreated
from comm.events.relay import OutboxRelay
from comm.events.supervision import Supervised
from comm.events.tables import TABLES
from comm.events.testing import TcpProxy, publish_event, take_messages, wait_until
from comm.health import add_health_routes, workers_check
from comm.testing import admin_database_url

outbox = TABLES.outbox
# aiormq gives a broker up after (heartbeat + 1) x 3 s without a frame: 6 s here. The publish timeout is longer,
# so the confirms are still pending when it does and receive its CancelledError.
HUNG = {"events_heartbeat_seconds": 1, "events_publish_timeout_seconds": 30.0}


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))).scalar_one())


async def all_sent(engine: AsyncEngine) -> bool:
    return await pending(engine) == 0


async def hung_broker(events: Any) -> TcpProxy:
    proxy = TcpProxy(target_url=events.settings.rabbitmq_url)
    await proxy.open()
    events.stack.push_async_callback(proxy.close)
    events.stack.callback(proxy.resume)  # whatever the test did, nothing is left hanging
    return proxy


async def test_a_relay_outlives_a_hung_broker_and_its_pending_rows_go_out_when_it_answers_again(events: Any) -> None:
    queue = (await events.consumer("hung-relay", {UserCreated: events.record_effect})).queue
    proxy = await hung_broker(events)
    relay = await events.relay(settings=events.with_url(proxy.url).model_copy(update=HUNG))
    await events.write_events([events.user_created("before")])
    await wait_until(lambda: events.has_effects(queue=queue, count=1), within=10)

    proxy.hang()
    during = await events.write_events([events.user_created(f"d{i}") for i in range(5)])
    await asyncio.sleep(9)  # past aiormq's 6 s: the connection is given up on, the confirms cancelled
    assert await pending(events.engine) == len(during)
    proxy.resume()

    await wait_until(lambda: events.has_effects(queue=queue, count=1 + len(during)), within=20)
    await wait_until(lambda: all_sent(events.engine), within=10)
    for event_id in during:
        assert await events.count_effects(queue=queue, event_id=event_id) == 1
    assert relay.problem() is None


async def test_a_consumer_outlives_a_hung_broker_and_takes_what_waited_when_it_answers_again(events: Any) -> None:
    proxy = await hung_broker(events)
    settings = events.with_url(proxy.url).model_copy(update=HUNG)
    consumer = await events.consumer("hung-consumer", {UserCreated: events.record_effect}, settings=settings)
    await events.relay()
    await events.write_events([events.user_created("before")])
    await wait_until(lambda: events.has_effects(queue=consumer.queue, count=1), within=10)

    proxy.hang()
    during = await events.write_events([events.user_created(f"d{i}") for i in range(5)])
    await asyncio.sleep(9)
    proxy.resume()

    await wait_until(lambda: events.has_effects(queue=consumer.queue, count=1 + len(during)), within=30)
    for event_id in during:
        assert await events.count_effects(queue=consumer.queue, event_id=event_id) == 1
    assert consumer.problem() is None


class RelayCrash(BaseException):
    """Not an error anything may catch: the relay's loop ends."""


async def test_ready_is_red_with_the_reason_while_a_relay_is_dead(events: Any) -> None:
    async def crash(sent: list[uuid.UUID]) -> None:
        raise RelayCrash("between ack and mark")

    relay = OutboxRelay(engine=events.engine, settings=events.settings, before_mark_sent=crash)
    app = FastAPI()
    add_health_routes(app, checks={"events": workers_check(lambda: [relay])})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        await relay.start()
        events.stack.push_async_callback(relay.stop)
        assert (await client.get("/ready")).status_code == 200
        await events.write_events([events.user_created()])
        await wait_until(lambda: relay.problem() is not None, within=10)
        response = await client.get("/ready")
    assert response.status_code == 503
    reason = "events-test outbox relay: dead (RelayCrash: between ack and mark)"
    assert response.json()["checks"]["events"] == f"failed: {reason}"


async def test_a_supervised_loop_is_restarted_after_any_death_and_reported_meanwhile() -> None:
    runs: list[int] = []
    release = asyncio.Event()

    async def run() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            raise asyncio.CancelledError  # a future cancelled under the loop, not the loop being stopped
        if len(runs) == 2:
            raise RuntimeError("boom")
        while True:
            loop.beat()
            await release.wait()

    loop = Supervised("test loop", run, service="events-test", restart_cap_seconds=0.5, stuck_after_seconds=60)
    loop.start()
    try:
        await wait_until(lambda: loop.problem() is not None and "restarting after" in loop.problem(), within=5)
        await wait_until(lambda: len(runs) == 3 and loop.problem() is None, within=5)
    finally:
        await loop.stop()
    assert loop.problem() == "test loop: not running"


async def test_a_supervised_loop_without_progress_is_reported_stuck() -> None:
    async def run() -> None:
        await asyncio.Event().wait()  # never beats

    loop = Supervised("test loop", run, service="events-test", restart_cap_seconds=0.5, stuck_after_seconds=0.2)
    loop.start()
    try:
        await wait_until(lambda: (loop.problem() or "").startswith("test loop: stuck"), within=5)
    finally:
        await loop.stop()


@contextlib.asynccontextmanager
async def refusing_connections(database: str) -> AsyncIterator[None]:
    """The test's own database refuses new connections and its open ones are ended; allowed again whatever happens."""
    admin = await asyncpg.connect(admin_database_url().replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                database,
            )
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


async def test_a_database_refusing_connections_pauses_consumption_and_parks_nothing(events: Any) -> None:
    consumer = await events.consumer("db-outage", {UserCreated: events.record_effect})
    broker = await connect(settings=events.settings, role="test publisher")
    events.stack.push_async_callback(broker.close)
    sent = [await publish_event(broker.exchange, events.user_created("before"), app_id="test")]
    await wait_until(lambda: events.has_effects(queue=consumer.queue, count=1), within=10)

    async with refusing_connections(events.engine.url.database):
        for i in range(20):
            sent.append(await publish_event(broker.exchange, events.user_created(f"d{i}"), app_id="test"))
            await asyncio.sleep(0.1)
        # Longer than every attempt and retry delay together (4 x 0.1 s): before, each event was parked by now.
        await asyncio.sleep(5)

    await wait_until(lambda: events.has_effects(queue=consumer.queue, count=len(sent)), within=30)
    for event_id in sent:
        assert await events.count_effects(queue=consumer.queue, event_id=event_id) == 1
    assert await take_messages(url=events.settings.rabbitmq_url, queue=f"{consumer.queue}.dlq") == []
    assert await take_messages(url=events.settings.rabbitmq_url, queue=f"{consumer.queue}.retry") == []


async def test_a_poison_row_does_not_hold_back_the_rows_around_it(events: Any) -> None:
    queue = (await events.consumer("poison-row", {UserCreated: events.record_effect})).queue
    async with events.engine.begin() as conn:  # a row the broker can never take: its header does not encode
        poison = {"id": uuid.uuid4(), "routing_key": "user.created", "body": "{}", "headers": {"big": 2**70}}
        await conn.execute(outbox.insert().values(**poison))
    good = await events.write_events([events.user_created(f"g{i}") for i in range(40)])
    # Batches of 5, each with the poison row first: backing off after each (0.05 s doubling, up to 30 s here)
    # would take some 25 s to reach the tenth.
    settings = events.settings.model_copy(update={"outbox_batch_size": 5, "events_reconnect_interval_seconds": 30.0})
    await events.relay(settings=settings)
    await wait_until(lambda: events.has_effects(queue=queue, count=len(good)), within=8)
    assert await pending(events.engine) == 1
