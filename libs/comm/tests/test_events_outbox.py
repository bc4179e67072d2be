"""The transactional outbox and its relay, against the real PostgreSQL and RabbitMQ."""

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import REGISTRY
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from comm.events.broker import connect
from comm.events.models import PostDeleted, UserCreated, encode_event
from comm.events.outbox import add_event
from comm.events.relay import OutboxRelay
from comm.events.tables import TABLES
from comm.events.testing import TcpProxy, take_messages, wait_until

outbox = TABLES.outbox


async def pending(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).where(outbox.c.sent_at.is_(None)))).scalar_one())


async def all_sent(engine: AsyncEngine) -> bool:
    return await pending(engine) == 0


async def outbox_rows(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(outbox).order_by(outbox.c.created_at))).all())


async def raw_queue(stack: AsyncExitStack, settings: Any, routing_key: str) -> asyncio.Queue[AbstractIncomingMessage]:
    """An exclusive queue bound to the test exchange: what the relay put on the wire, properties included."""
    broker = await connect(settings=settings, role="test listener")
    stack.push_async_callback(broker.close)
    amqp_queue = await broker.channel.declare_queue(exclusive=True)
    await amqp_queue.bind(broker.exchange, routing_key)
    received: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    await amqp_queue.consume(received.put, no_ack=True)
    return received


async def test_a_rolled_back_use_case_leaves_no_row_and_publishes_nothing(events: Any) -> None:
    wire = await raw_queue(events.stack, events.settings, "user.created")
    await events.relay()

    async def failing_use_case() -> None:
        async with events.sessionmaker() as session, session.begin():
            await session.execute(insert(events.effects).values(queue="state", event_id=uuid.uuid4()))
            await add_event(session, events.user_created("ghost"))
            raise RuntimeError("use case failed")

    with pytest.raises(RuntimeError, match="use case failed"):
        await failing_use_case()
    [committed] = await events.write_events([events.user_created("real")])

    message = await asyncio.wait_for(wire.get(), timeout=10)
    assert message.message_id == str(committed)
    assert [row.id for row in await outbox_rows(events.engine)] == [committed]
    assert await events.count_effects(queue="state") == 0  # the state change went with it
    await asyncio.sleep(0.3)  # nothing else arrives: the rolled-back event never reached the wire
    assert wire.empty()


async def test_the_relay_publishes_with_the_design_properties_and_marks_sent_after_the_ack(
    events_spans: Any, events: Any
) -> None:
    wire = await raw_queue(events.stack, events.settings, "user.*")
    await events.relay()
    written = [events.user_created(f"u{i}") for i in range(5)]
    ids = await events.write_events(written)

    received = [await asyncio.wait_for(wire.get(), timeout=10) for _ in ids]

    assert [message.message_id for message in received] == [str(event_id) for event_id in ids]  # in order
    first = received[0]
    assert first.body == encode_event(written[0])
    assert (first.type, first.routing_key, first.content_type) == ("user.created", "user.created", "application/json")
    assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert first.app_id == "events-test"
    assert first.timestamp is not None
    assert isinstance((first.headers or {}).get("traceparent"), str)
    await wait_until(lambda: all_sent(events.engine), within=5)
    rows = await outbox_rows(events.engine)
    assert all(row.sent_at is not None and row.attempts == 1 and row.last_error is None for row in rows)
    await wait_until(lambda: _gauge("outbox_backlog") == 0, within=5)


def _gauge(name: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service": "events-test"})


async def test_writes_succeed_while_the_broker_is_unreachable_and_every_event_flows_when_it_is_back(
    events: Any,
) -> None:
    queue = (await events.consumer("outage", {UserCreated: events.record_effect})).queue
    proxy = TcpProxy(target_url=events.settings.rabbitmq_url)
    await proxy.open()
    events.stack.push_async_callback(proxy.close)
    await proxy.close()  # the broker is unreachable from the relay's side from the start
    await events.relay(settings=events.with_url(proxy.url))

    before = await events.write_events([events.user_created(f"b{i}") for i in range(3)])
    await asyncio.sleep(0.5)
    assert await pending(events.engine) == 3
    await wait_until(lambda: (_gauge("outbox_backlog") or 0) == 3, within=5)

    await proxy.open()
    await wait_until(lambda: events.count_effects(queue=queue), within=10)
    await wait_until(lambda: events.has_effects(queue=queue, count=len(before)), within=10)

    await proxy.close()  # now cut a live connection
    during = await events.write_events([events.user_created(f"d{i}") for i in range(3)])
    await asyncio.sleep(0.5)
    assert await pending(events.engine) == 3
    await proxy.open()
    await wait_until(lambda: events.has_effects(queue=queue, count=len(before) + len(during)), within=15)
    await wait_until(lambda: all_sent(events.engine), within=5)
    for event_id in [*before, *during]:
        assert await events.count_effects(queue=queue, event_id=event_id) == 1


class RelayCrash(BaseException):
    """The process dies: not an error the relay could catch and retry."""


async def test_a_relay_killed_between_the_broker_ack_and_mark_sent_republishes_and_the_event_applies_once(
    events: Any,
) -> None:
    queue = (await events.consumer("crash", {UserCreated: events.record_effect})).queue
    acked: list[uuid.UUID] = []

    async def crash(sent: list[uuid.UUID]) -> None:
        acked.extend(sent)
        raise RelayCrash

    [event_id] = await events.write_events([events.user_created()])
    doomed = OutboxRelay(engine=events.engine, settings=events.settings, before_mark_sent=crash)
    await doomed.start()
    await wait_until(lambda: acked == [event_id], within=10)
    with contextlib.suppress(RelayCrash):  # or cancelled while rolling back: dead either way, rows unmarked
        await doomed.stop()
    await wait_until(lambda: events.count_effects(queue=queue), within=10)
    assert await pending(events.engine) == 1  # published, confirmed, yet not marked: the crash window

    await events.relay()
    await wait_until(lambda: all_sent(events.engine), within=10)
    labels = {"service": "events-test", "queue": queue, "routing_key": "user.created", "outcome": "duplicate"}
    await wait_until(lambda: REGISTRY.get_sample_value("events_consumed_total", labels) == 1, within=10)
    assert await events.count_effects(queue=queue, event_id=event_id) == 1


@contextlib.contextmanager
def alternate_exchange_policy(exchange: str) -> Iterator[None]:
    """The policy infra/rabbitmq sets on `blog.events`, here on the test's own exchange (cleared afterwards)."""
    name = f"{exchange}.alternate"
    definition = json.dumps({"alternate-exchange": f"{exchange}.unroutable"})
    pattern = f"^{re.escape(exchange)}$"
    subprocess.run(
        ["rabbitmqctl", "-q", "set_policy", "--apply-to", "exchanges", name, pattern, definition], check=True
    )
    try:
        yield
    finally:
        subprocess.run(["rabbitmqctl", "-q", "clear_policy", name], check=True)


@pytest.mark.parametrize("policy", [False, True], ids=["relay-sends-returned-message", "alternate-exchange-policy"])
async def test_an_unroutable_event_is_kept_in_the_unroutable_queue_and_not_reported_consumed(
    policy: bool, events: Any
) -> None:
    settings = events.settings
    if policy:
        if shutil.which("rabbitmqctl") is None:
            pytest.skip("rabbitmqctl is not on this machine")
        events.stack.enter_context(alternate_exchange_policy(settings.events_exchange))
    queue = (await events.consumer("users-only", {UserCreated: events.record_effect})).queue
    await events.relay()
    nobody_listens = PostDeleted(
        post_id=uuid.uuid4(), author_id=uuid.uuid4(), timestamp=events.user_created().timestamp
    )

    [lost_id, routed_id] = await events.write_events([nobody_listens, events.user_created()])

    await wait_until(lambda: all_sent(events.engine), within=10)
    await wait_until(lambda: events.count_effects(queue=queue), within=10)
    unroutable = f"{settings.events_exchange}.unroutable"
    messages: list[AbstractIncomingMessage] = []

    async def arrived() -> bool:
        messages.extend(await take_messages(url=settings.rabbitmq_url, queue=unroutable))
        return bool(messages)

    await wait_until(arrived, within=5)
    assert [(message.message_id, message.type) for message in messages] == [(str(lost_id), "post.deleted")]
    assert messages[0].body == encode_event(nobody_listens)
    # Sent means "the broker has it" (here: parked in the unroutable queue); only processed_events says consumed.
    async with events.engine.connect() as conn:
        consumed = (await conn.execute(select(TABLES.processed_events.c.event_id))).scalars().all()
    assert consumed == [routed_id]


async def test_the_events_exchange_is_declared_as_the_seed_declares_it(events_topology: Any) -> None:
    """A Rust service built from the seed declares the exchange topic + durable, no arguments, before or after us."""
    settings = events_topology.settings
    seed = await aio_pika.connect_robust(settings.rabbitmq_url)
    try:
        channel = await seed.channel()
        await channel.declare_exchange(settings.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        ours = await connect(settings=settings, role="test")
        await ours.close()
        # An arguments mismatch would close the channel with PRECONDITION_FAILED here.
        await channel.declare_exchange(settings.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
    finally:
        await seed.close()


async def test_two_relays_on_one_outbox_never_publish_an_event_twice(events: Any) -> None:
    settings = events.settings.model_copy(update={"outbox_batch_size": 20})
    wire = await raw_queue(events.stack, settings, "user.created")
    ids = await events.write_events([events.user_created(f"u{i}") for i in range(300)])

    for _ in range(2):
        await events.relay(settings=settings)
    await wait_until(lambda: all_sent(events.engine), within=20)
    await asyncio.sleep(0.2)  # a duplicate publish would have landed by now

    received = [wire.get_nowait().message_id for _ in range(wire.qsize())]
    assert sorted(received) == sorted(str(event_id) for event_id in ids)


async def test_a_commit_wakes_the_idle_relay_through_notify_without_waiting_for_the_poll(events: Any) -> None:
    wire = await raw_queue(events.stack, events.settings, "user.created")
    await events.relay(settings=events.settings.model_copy(update={"outbox_poll_interval_seconds": 60.0}))
    await asyncio.sleep(0.3)  # the relay has found nothing and is waiting: only a NOTIFY can wake it now

    for name in ("first", "second"):
        [event_id] = await events.write_events([events.user_created(name)])
        message = await asyncio.wait_for(wire.get(), timeout=5)
        assert message.message_id == str(event_id)
