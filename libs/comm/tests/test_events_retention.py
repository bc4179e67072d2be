"""Retention of the event tables, against the real PostgreSQL (and RabbitMQ for the relay and consumer)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from comm.events.models import UserCreated
from comm.events.retention import (
    BATCH,
    outbox_batch,
    processed_events_batch,
    prune_outbox,
    prune_processed_events,
    start_pruning,
)
from comm.events.tables import TABLES
from comm.events.testing import wait_until

outbox, processed = TABLES.outbox, TABLES.processed_events
WEEK = 7 * 24 * 3600


def ago(**delta: float) -> datetime:
    return datetime.now(UTC) - timedelta(**delta)


async def outbox_row(engine: AsyncEngine, *, created: datetime, sent: datetime | None) -> uuid.UUID:
    row_id = uuid.uuid4()
    async with engine.begin() as conn:
        values = {"id": row_id, "routing_key": "user.created", "body": "{}", "created_at": created, "sent_at": sent}
        await conn.execute(insert(outbox).values(**values))
    return row_id


async def remaining(engine: AsyncEngine, column: Any) -> set[Any]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(column))).scalars().all())


async def count(engine: AsyncEngine, column: Any) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count(column)))).scalar_one())


async def test_only_rows_sent_before_the_retention_are_deleted_never_a_pending_one(events_engine: AsyncEngine) -> None:
    sent_long_ago = await outbox_row(events_engine, created=ago(days=9), sent=ago(days=8))
    sent_lately = await outbox_row(events_engine, created=ago(days=9), sent=ago(hours=1))
    pending_for_a_month = await outbox_row(events_engine, created=ago(days=30), sent=None)

    assert await prune_outbox(events_engine.begin, keep_seconds=WEEK) == 1

    assert await remaining(events_engine, outbox.c.id) == {sent_lately, pending_for_a_month}
    assert sent_long_ago not in await remaining(events_engine, outbox.c.id)


async def test_a_large_backlog_is_deleted_in_batches(events_engine: AsyncEngine) -> None:
    rows = BATCH * 2 + 7
    async with events_engine.begin() as conn:
        await conn.execute(
            insert(outbox),
            [
                {
                    "id": uuid.uuid4(),
                    "routing_key": "k",
                    "body": "{}",
                    "created_at": ago(days=9),
                    "sent_at": ago(days=8),
                }
                for _ in range(rows)
            ],
        )
    assert await prune_outbox(events_engine.begin, keep_seconds=WEEK) == rows
    assert await count(events_engine, outbox.c.id) == 0


async def test_a_consumer_deletes_only_its_own_old_records(
    events_engine: AsyncEngine, events_sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    old, recent, other_queue_old = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    async with events_engine.begin() as conn:
        await conn.execute(
            insert(processed),
            [
                {"event_id": old, "consumer": "mine", "processed_at": ago(days=15)},
                {"event_id": recent, "consumer": "mine", "processed_at": ago(days=1)},
                {"event_id": other_queue_old, "consumer": "theirs", "processed_at": ago(days=15)},
            ],
        )

    deleted = await prune_processed_events(events_sessionmaker.begin, consumer="mine", keep_seconds=2 * WEEK)

    assert deleted == 1
    assert await remaining(events_engine, processed.c.event_id) == {recent, other_queue_old}


async def test_a_running_relay_and_consumer_prune_what_passed_their_retention(events: Any) -> None:
    settings = events.settings.model_copy(
        update={
            "outbox_retention_seconds": 1.0,
            "processed_events_retention_seconds": 1.0,
            "events_prune_interval_seconds": 0.2,
        }
    )
    consumer = await events.consumer("pruned", {UserCreated: events.record_effect}, settings=settings)
    await events.relay(settings=settings)

    [event_id] = await events.write_events([events.user_created()])

    await wait_until(lambda: events.count_effects(queue=consumer.queue), within=10)
    # Applied once, then both the sent row and the dedup record go once they are older than a second.
    await wait_until(lambda: _empty(events.engine), within=10)
    assert await events.count_effects(queue=consumer.queue, event_id=event_id) == 1


async def _empty(engine: AsyncEngine) -> bool:
    return await count(engine, outbox.c.id) == 0 and await count(engine, processed.c.event_id) == 0


async def test_a_retention_of_zero_keeps_rows_forever() -> None:
    async def prune(keep_seconds: float) -> int:
        raise AssertionError("nothing is pruned when the retention is 0")

    assert start_pruning("test", prune, keep_seconds=0, interval_seconds=0.01) is None


@pytest.mark.parametrize(
    ("batch", "index"),
    [
        (outbox_batch(WEEK), "ix_outbox_sent"),
        (processed_events_batch("user.profile-sync", WEEK), "ix_processed_events_consumer_at"),
    ],
    ids=["outbox", "processed_events"],
)
async def test_retention_finds_its_rows_through_an_index(events_engine: AsyncEngine, batch: Any, index: str) -> None:
    async with events_engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))  # the tables are tiny here: ask how it would scale
        compiled = batch.compile(conn.sync_connection, compile_kwargs={"literal_binds": True})
        plan = "\n".join((await conn.execute(text(f"EXPLAIN {compiled}"))).scalars().all())
    assert index in plan, plan
