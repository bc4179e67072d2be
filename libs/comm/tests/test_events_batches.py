"""Deliveries applied together in one transaction: a failing handler takes no other event down, acks follow commits."""

import asyncio
import itertools
import uuid
from typing import Any

import pytest
from aio_pika.message import IncomingMessage
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from comm.events import batches
from comm.events.batches import BatchApplier
from comm.events.consumer import EventMeta
from comm.events.models import Event, UserCreated
from comm.events.tables import TABLES
from comm.events.testing import take_messages, wait_until


def meta_for(queue: str, event_id: uuid.UUID | None = None) -> EventMeta:
    return EventMeta(
        event_id=event_id or uuid.uuid4(),
        routing_key="user.created",
        queue=queue,
        attempt=1,
        producer="test",
        published_at=None,
    )


async def processed_ids(events: Any, queue: str) -> set[uuid.UUID]:
    processed = TABLES.processed_events
    async with events.engine.connect() as conn:
        rows = await conn.execute(select(processed.c.event_id).where(processed.c.consumer == queue))
        return set(rows.scalars())


async def test_a_failing_handler_in_a_batch_fails_alone_and_the_others_are_applied_once(events: Any) -> None:
    queue = events.queue("batched")
    # One worker: the five are certain to be taken as one batch.
    applier = BatchApplier(queue=queue, sessionmaker=events.sessionmaker, max_batch=32, workers=1)
    calls: dict[uuid.UUID, int] = {}

    async def handle(session: AsyncSession, event: Event, meta: EventMeta) -> None:
        calls[meta.event_id] = calls.get(meta.event_id, 0) + 1
        await events.record_effect(session, event, meta)
        if isinstance(event, UserCreated) and event.username == "poison":
            raise ValueError("poison")

    names = ["a", "b", "poison", "c", "d"]
    metas = [meta_for(queue) for _ in names]
    events_by_meta = [events.user_created(name) for name in names]
    try:
        results = await asyncio.gather(
            *(applier.apply(handle, event, meta) for event, meta in zip(events_by_meta, metas, strict=True)),
            return_exceptions=True,
        )
    finally:
        await applier.close()

    poison = metas[2].event_id
    assert [isinstance(result, ValueError) for result in results] == [False, False, True, False, False]
    assert [result for result in results if not isinstance(result, BaseException)] == [True] * 4
    # Tried together first (in lock order, comm.events.batches), up to the poison; that transaction rolled back,
    # then each was applied alone.
    order = sorted(range(len(names)), key=lambda n: str(events_by_meta[n].user_id))
    before_poison = set(order[: order.index(2) + 1])
    assert [calls[meta.event_id] for meta in metas] == [2 if n in before_poison else 1 for n in range(len(names))]
    for meta in metas:
        assert await events.count_effects(queue=queue, event_id=meta.event_id) == (meta.event_id != poison)
    assert await processed_ids(events, queue) == {meta.event_id for meta in metas} - {poison}


async def test_a_second_delivery_of_one_event_in_a_batch_is_a_duplicate(events: Any) -> None:
    queue = events.queue("batched-duplicate")
    applier = BatchApplier(queue=queue, sessionmaker=events.sessionmaker, max_batch=32, workers=1)
    meta = meta_for(queue)
    event = events.user_created()
    try:
        results = await asyncio.gather(*(applier.apply(events.record_effect, event, meta) for _ in range(3)))
        again = await applier.apply(events.record_effect, event, meta)
    finally:
        await applier.close()

    assert sorted(results) == [False, False, True]
    assert again is False
    assert await events.count_effects(queue=queue, event_id=meta.event_id) == 1


class BatchCounter:
    """A handler that notes which transaction (batch) applied each event."""

    def __init__(self, events: Any) -> None:
        self._events = events
        self._batches = itertools.count()
        self.batch_of: dict[uuid.UUID, int] = {}

    async def __call__(self, session: AsyncSession, event: Event, meta: EventMeta) -> None:
        self.batch_of[meta.event_id] = session.info.setdefault("batch", next(self._batches))
        await self._events.record_effect(session, event, meta)


async def test_under_load_a_batch_waits_for_the_deliveries_that_keep_coming(
    events: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a batch of two (under load), five deliveries a tenth of a second apart join one batch: every step of
    the wait brings one. With no wait, each was a batch of its own."""
    monkeypatch.setattr(batches, "LINGER_SECONDS", 2.0)
    monkeypatch.setattr(batches, "LINGER_STEP_SECONDS", 0.2)
    queue = events.queue("lingering")
    applier = BatchApplier(queue=queue, sessionmaker=events.sessionmaker, max_batch=32, workers=1)
    handle = BatchCounter(events)

    async def later(delay: float, meta: EventMeta) -> bool:
        await asyncio.sleep(delay)
        return await applier.apply(handle, events.user_created(), meta)

    burst = [meta_for(queue) for _ in range(2)]
    trickle = [meta_for(queue) for _ in range(5)]
    try:
        await asyncio.gather(*(applier.apply(handle, events.user_created(), meta) for meta in burst))
        applied = await asyncio.gather(*(later(0.1 * n, meta) for n, meta in enumerate(trickle)))
    finally:
        await applier.close()

    assert applied == [True] * 5
    assert len({handle.batch_of[meta.event_id] for meta in burst}) == 1
    assert len({handle.batch_of[meta.event_id] for meta in trickle}) == 1
    assert await processed_ids(events, queue) == {meta.event_id for meta in burst + trickle}


async def test_a_delivery_to_an_idle_consumer_is_not_held(events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Deliveries that come one at a time wait for no step, however long a step is."""
    monkeypatch.setattr(batches, "LINGER_SECONDS", 60.0)
    monkeypatch.setattr(batches, "LINGER_STEP_SECONDS", 30.0)
    queue = events.queue("idle")
    applier = BatchApplier(queue=queue, sessionmaker=events.sessionmaker, max_batch=32, workers=1)
    handle = BatchCounter(events)
    metas = [meta_for(queue) for _ in range(3)]
    try:
        async with asyncio.timeout(10):
            for meta in metas:
                assert await applier.apply(handle, events.user_created(), meta) is True
    finally:
        await applier.close()

    assert len({handle.batch_of[meta.event_id] for meta in metas}) == 3


async def test_closing_while_a_batch_waits_cancels_its_deliveries(events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer that stops while its worker waits for a batch to fill: the deliveries taken stop waiting
    (cancelled, unacked, so the broker gives them again) instead of waiting for ever."""
    monkeypatch.setattr(batches, "LINGER_SECONDS", 60.0)
    monkeypatch.setattr(batches, "LINGER_STEP_SECONDS", 0.2)
    queue = events.queue("closing")
    applier = BatchApplier(queue=queue, sessionmaker=events.sessionmaker, max_batch=32, workers=1)
    handle = BatchCounter(events)
    await asyncio.gather(*(applier.apply(handle, events.user_created(), meta_for(queue)) for _ in range(2)))

    trickled: list[asyncio.Future[bool]] = []

    async def trickle() -> None:
        while True:  # one delivery per step keeps the worker waiting
            trickled.append(asyncio.ensure_future(applier.apply(handle, events.user_created(), meta_for(queue))))
            await asyncio.sleep(0.1)

    waiting = asyncio.ensure_future(applier.apply(handle, events.user_created(), meta_for(queue)))
    feeding = asyncio.ensure_future(trickle())
    await asyncio.sleep(0.5)
    feeding.cancel()
    await applier.close()
    await asyncio.wait([waiting, *trickled], timeout=5)
    assert waiting.cancelled()
    assert all(delivery.cancelled() for delivery in trickled)
    assert await events.count_effects(queue=queue) == 2  # only the first batch of two was applied


async def test_every_ack_follows_the_commit_of_its_event(events: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many events at once, so the consumer batches them; a poison among them is retried and parked, not applied."""
    queue = events.queue("acks")
    names = [f"user{i}" for i in range(40)]
    names[17] = "poison"
    uncommitted_at_ack: list[str] = []
    acked: list[str] = []
    original_ack = IncomingMessage.ack

    async def checked_ack(self: IncomingMessage, multiple: bool = False) -> None:
        if self.routing_key == "user.created":  # a delivery from the events exchange, not a retry
            acked.append(self.message_id or "")
            if uuid.UUID(self.message_id or "") not in await processed_ids(events, queue):
                uncommitted_at_ack.append(self.message_id or "")
        await original_ack(self, multiple)

    monkeypatch.setattr(IncomingMessage, "ack", checked_ack)

    async def handle(session: AsyncSession, event: UserCreated, meta: EventMeta) -> None:
        await events.record_effect(session, event, meta)
        if event.username == "poison":
            raise ValueError("poison")

    await events.consumer("acks", {UserCreated: handle})
    await events.relay()
    written = await events.write_events([events.user_created(name) for name in names])
    poison = str(written[17])
    parked: list[Any] = []

    async def poison_parked() -> bool:
        parked.extend(await take_messages(url=events.settings.rabbitmq_url, queue=f"{queue}.dlq"))
        return bool(parked)

    await wait_until(poison_parked, within=20)
    await wait_until(lambda: len(acked) == 40)

    assert [message.message_id for message in parked] == [poison]
    assert sorted(acked) == sorted(map(str, written))
    assert uncommitted_at_ack == [poison]  # acked once its retry copy was confirmed, never applied
    assert await processed_ids(events, queue) == set(written) - {written[17]}
    assert await events.count_effects(queue=queue) == 39


async def test_two_replicas_batches_take_shared_locks_in_one_order_and_do_not_deadlock(events: Any) -> None:
    """Two consumers (replicas) each get the same two users' events in opposite orders; each handler locks its
    user (as the authors and comment-count handlers lock the author's row). Sorted by lock key, the second batch
    waits for the first; in delivery order they deadlocked, and every event ran twice (the batch, then alone)."""
    queue = events.queue("batched-lock-order")
    replicas = [BatchApplier(queue=queue, sessionmaker=events.sessionmaker, max_batch=32, workers=1) for _ in "ab"]
    calls: dict[uuid.UUID, int] = {}

    async def handle(session: AsyncSession, event: Event, meta: EventMeta) -> None:
        calls[meta.event_id] = calls.get(meta.event_id, 0) + 1
        assert isinstance(event, UserCreated)
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": str(event.user_id)})
        await asyncio.sleep(0.2)  # both transactions hold their first lock before either asks for its second
        await events.record_effect(session, event, meta)

    first, second = events.user_created("first"), events.user_created("second")
    deliveries = [(replicas[0], [first, second]), (replicas[1], [second, first])]
    metas = {(n, event.user_id): meta_for(queue) for n, (_, batch) in enumerate(deliveries) for event in batch}
    try:
        await asyncio.gather(
            *(
                applier.apply(handle, event, metas[(n, event.user_id)])
                for n, (applier, batch) in enumerate(deliveries)
                for event in batch
            )
        )
    finally:
        for applier in replicas:
            await applier.close()

    assert sorted(calls.values()) == [1, 1, 1, 1]  # no transaction rolled back
    assert await events.count_effects(queue=queue) == 4
