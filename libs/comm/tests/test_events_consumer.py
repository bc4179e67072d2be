"""Consumers against the real broker and database: once-only application, delayed retries, parking, shutdown."""

import asyncio
import uuid
from contextlib import AsyncExitStack
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from comm.events.broker import Broker, connect, declare_consumer_queue
from comm.events.consumer import EventMeta
from comm.events.models import Event, UserCreated, encode_event
from comm.events.testing import TcpProxy, publish_without_message_id, take_messages, wait_until
from comm.settings import CommSettings


async def publisher(stack: AsyncExitStack, settings: CommSettings) -> Broker:
    """A raw connection to publish what no outbox would (malformed bodies, seed messages without id)."""
    broker = await connect(settings=settings, role="test publisher")
    stack.push_async_callback(broker.close)
    return broker


def consumed(queue: str, outcome: str, routing_key: str = "user.created") -> float:
    labels = {"service": "events-test", "queue": queue, "routing_key": routing_key, "outcome": outcome}
    return REGISTRY.get_sample_value("events_consumed_total", labels) or 0.0


async def parked(settings: CommSettings, queue: str, into: list[AbstractIncomingMessage]) -> bool:
    into.extend(await take_messages(url=settings.rabbitmq_url, queue=f"{queue}.dlq"))
    return bool(into)


class Flaky:
    """A handler that fails its first `failures` calls per event, then records the effect."""

    def __init__(self, events: Any, *, failures: int) -> None:
        self.events = events
        self.failures = failures
        self.calls: dict[uuid.UUID, int] = {}
        self.attempts_seen: list[int] = []

    async def __call__(self, session: AsyncSession, event: Event, meta: EventMeta) -> None:
        self.calls[meta.event_id] = self.calls.get(meta.event_id, 0) + 1
        self.attempts_seen.append(meta.attempt)
        if self.calls[meta.event_id] <= self.failures:
            raise ConnectionResetError(f"downstream hiccup {self.calls[meta.event_id]}")
        await self.events.record_effect(session, event, meta)


async def test_a_handler_that_fails_twice_then_succeeds_applies_the_event_once(events: Any) -> None:
    settings = events.settings
    flaky = Flaky(events, failures=2)
    queue = (await events.consumer("flaky", {UserCreated: flaky})).queue
    await events.relay()

    [first] = await events.write_events([events.user_created("first")])
    await wait_until(lambda: events.has_effects(queue=queue, count=1))
    [later] = await events.write_events([events.user_created("later")])
    await wait_until(lambda: events.has_effects(queue=queue, count=2))

    assert await events.count_effects(queue=queue, event_id=first) == 1
    assert flaky.calls[first] == 3
    assert flaky.attempts_seen[:3] == [1, 2, 3]
    assert (consumed(queue, "retried"), consumed(queue, "ok"), consumed(queue, "parked")) == (4, 2, 0)
    assert await take_messages(url=settings.rabbitmq_url, queue=f"{queue}.dlq") == []
    assert later in flaky.calls


async def test_a_handler_that_always_fails_is_parked_with_the_reason_after_max_attempts(events: Any) -> None:
    settings = events.settings  # events_max_attempts=4
    attempts: dict[str, set[int]] = {}

    async def handle(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
        attempts.setdefault(event.username, set()).add(meta.attempt)
        if event.username == "poison":
            raise ValueError("username is poison")
        await events.record_effect(session, event, meta)

    queue = (await events.consumer("doomed", {UserCreated: handle})).queue
    await events.relay()

    [poison] = await events.write_events([events.user_created("poison")])
    [fine] = await events.write_events([events.user_created("fine")])
    dlq: list[AbstractIncomingMessage] = []
    await wait_until(lambda: parked(settings, queue, dlq))

    [message] = dlq
    headers = message.headers or {}
    assert message.message_id == str(poison)
    assert headers["x-error"] == "ValueError: username is poison"
    assert headers["x-attempts"] == 4
    assert isinstance(headers["x-first-failed-at"], str)
    assert headers["x-routing-key"] == "user.created"
    assert "x-death" not in headers  # the broker's dead-letter history is not carried into the parked copy
    # By attempt, not by call: a batch the poison shared with "fine" ran its handler once more, rolled back.
    assert attempts["poison"] == {1, 2, 3, 4}
    assert await events.count_effects(queue=queue, event_id=fine) == 1
    assert await events.count_effects(queue=queue) == 1
    assert consumed(queue, "parked") == 1


async def test_a_hung_handler_times_out_and_is_parked_while_later_events_flow(events: Any) -> None:
    settings = events.settings.model_copy(update={"events_handler_timeout_seconds": 0.3})

    async def handle(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
        if event.username == "hangs":
            await asyncio.Event().wait()  # a lock or a call that never answers
        await events.record_effect(session, event, meta)

    queue = (await events.consumer("hung-handler", {UserCreated: handle}, settings=settings)).queue
    await events.relay()
    [hung] = await events.write_events([events.user_created("hangs")])
    [fine] = await events.write_events([events.user_created("fine")])
    dlq: list[AbstractIncomingMessage] = []
    await wait_until(lambda: parked(settings, queue, dlq), within=15)
    assert [message.message_id for message in dlq] == [str(hung)]
    assert (dlq[0].headers or {})["x-error"].startswith("TimeoutError")
    assert await events.count_effects(queue=queue, event_id=fine) == 1


async def test_a_malformed_body_is_parked_at_once_and_later_events_flow(events: Any) -> None:
    settings = events.settings
    queue = (await events.consumer("strict", {UserCreated: events.record_effect})).queue
    raw = await publisher(events.stack, settings)

    bodies = [b"{not json", b'{"UserCreated":{"user_id":"nope"}}', b'{"UserExploded":{}}']
    for body in bodies:
        await raw.exchange.publish(aio_pika.Message(body, message_id=str(uuid.uuid4())), routing_key="user.created")
    good = events.user_created("good")
    await raw.exchange.publish(aio_pika.Message(encode_event(good)), routing_key="user.created")
    dlq: list[AbstractIncomingMessage] = []

    async def all_parked() -> bool:
        await parked(settings, queue, dlq)
        return len(dlq) == len(bodies)

    await wait_until(lambda: events.has_effects(queue=queue, count=1))
    await wait_until(all_parked)

    assert sorted(message.body for message in dlq) == sorted(bodies)
    reasons = [str((message.headers or {})["x-error"]) for message in dlq]
    assert all(reason.startswith("MalformedEvent: ") for reason in reasons)
    assert all((message.headers or {})["x-attempts"] == 1 for message in dlq)


async def test_a_seed_message_without_id_gets_a_stable_id_and_a_redelivery_is_a_duplicate(events: Any) -> None:
    settings = events.settings
    queue = (await events.consumer("seed", {UserCreated: events.record_effect})).queue
    body = encode_event(events.user_created("rusty"))

    for _ in range(2):  # a seed producer's message, and that message again (a redelivery, a re-send)
        await publish_without_message_id(url=settings.rabbitmq_url, exchange="", routing_key=queue, body=body)
    await wait_until(lambda: consumed(queue, "duplicate") == 1)

    assert await events.count_effects(queue=queue) == 1
    assert consumed(queue, "ok") == 1


async def test_a_retry_comes_back_to_its_own_queue_only(events: Any) -> None:
    flaky_queue = (await events.consumer("flaky", {UserCreated: Flaky(events, failures=1)})).queue
    steady_queue = (await events.consumer("steady", {UserCreated: events.record_effect})).queue
    await events.relay()

    await events.write_events([events.user_created()])
    await wait_until(lambda: events.has_effects(queue=flaky_queue, count=1))
    await asyncio.sleep(0.2)  # a leaked retry would have reached the steady queue by now

    assert consumed(flaky_queue, "retried") == 1
    assert (consumed(steady_queue, "ok"), consumed(steady_queue, "duplicate")) == (1, 0)


async def test_stop_lets_the_handler_in_flight_finish_and_ack(events: Any) -> None:
    entered = asyncio.Event()

    async def slow(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
        entered.set()
        await asyncio.sleep(0.5)
        await events.record_effect(session, event, meta)

    consumer = await events.consumer("slow", {UserCreated: slow})
    queue = consumer.queue
    raw = await publisher(events.stack, events.settings)
    await raw.exchange.publish(aio_pika.Message(encode_event(events.user_created())), routing_key="user.created")
    async with asyncio.timeout(10):
        await entered.wait()

    await consumer.stop()

    assert await events.count_effects(queue=queue) == 1
    assert consumed(queue, "ok") == 1
    declared = await raw.channel.declare_queue(queue, passive=True)
    assert declared.declaration_result.message_count == 0  # acked, not waiting for redelivery


async def test_a_consumer_survives_losing_the_broker_connection_without_a_restart(events: Any) -> None:
    proxy = TcpProxy(target_url=events.settings.rabbitmq_url)
    await proxy.open()
    events.stack.push_async_callback(proxy.close)
    consumer = await events.consumer("robust", {UserCreated: events.record_effect}, settings=events.with_url(proxy.url))
    queue = consumer.queue
    await events.relay()
    await events.write_events([events.user_created("before")])
    await wait_until(lambda: events.has_effects(queue=queue, count=1))

    await proxy.close()  # the broker "restarts": every connection through the proxy is cut
    await events.write_events([events.user_created("during")])
    await asyncio.sleep(0.5)
    await proxy.open()

    await wait_until(lambda: events.has_effects(queue=queue, count=2), within=20)
    await events.write_events([events.user_created("after")])
    await wait_until(lambda: events.has_effects(queue=queue, count=3), within=10)


async def test_a_message_that_keeps_coming_back_unsettled_is_parked_by_the_delivery_limit(events: Any) -> None:
    settings = events.settings.model_copy(update={"events_delivery_limit": 2})
    queue = events.queue("crashy")
    broker = await publisher(events.stack, settings)
    channel = await broker.connection.channel()
    amqp_queue = await declare_consumer_queue(
        broker, channel, queue=queue, routing_keys=["user.created"], settings=settings
    )
    await broker.exchange.publish(aio_pika.Message(encode_event(events.user_created())), routing_key="user.created")

    deliveries = 0
    dlq: list[AbstractIncomingMessage] = []

    async def bounced_until_parked() -> bool:
        nonlocal deliveries
        if (message := await amqp_queue.get(fail=False)) is not None:
            deliveries += 1  # a consumer that dies on this message: it goes back unsettled, again and again
            await message.nack(requeue=True)
        return await parked(settings, queue, dlq)

    await wait_until(bounced_until_parked)

    assert deliveries == 3  # the first delivery and two redeliveries
    assert (dlq[0].headers or {})["x-first-death-reason"] == "delivery_limit"
