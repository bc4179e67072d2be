"""Event tables kept bounded (docs/architecture.md §4): sent outbox rows and dedup records are deleted after a
retention period, in small batches, by the process that owns them. Without this both tables only ever grow.

- `outbox`: rows sent more than `outbox_retention_seconds` ago (default 7 days), by each relay. A pending row is
  never deleted, however old. A sent row is needed for nothing but looking back (what went out, when, under which
  trace), which is what the week is for.
- `processed_events`: one consumer's records older than `processed_events_retention_seconds` (default 14 days), by
  that consumer. A record must outlive every redelivery of its event: retries end within `events_max_attempts` x
  `events_retry_delay_seconds` (25 s by default), and a relay sends a row again only until it is marked sent. A
  message parked in a `.dlq` and replayed after the window is applied again; the handlers are idempotent on state
  (upserts ordered by the event's timestamp, counts derived from per-item state), so that gives the same state.

Each runs at start, then every `events_prune_interval_seconds` (an hour), in a task from `start_pruning`; a
retention of 0 keeps rows forever.
Replicas pruning at once only wait on each other's row locks.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from functools import partial
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Delete, Table, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from comm.events.tables import TABLES

log = logging.getLogger(__name__)

BATCH = 1000  # rows per DELETE: short transactions, short row locks
Transaction = Callable[[], AbstractAsyncContextManager[AsyncConnection] | AbstractAsyncContextManager[AsyncSession]]


async def prune_outbox(begin: Transaction, keep_seconds: float) -> int:
    """Delete outbox rows sent more than `keep_seconds` ago; returns how many."""
    return await _delete_in_batches(begin, outbox_batch(keep_seconds))


async def prune_processed_events(begin: Transaction, consumer: str, keep_seconds: float) -> int:
    """Delete `consumer`'s dedup records older than `keep_seconds`; returns how many."""
    return await _delete_in_batches(begin, processed_events_batch(consumer, keep_seconds))


def outbox_batch(keep_seconds: float) -> Delete:
    """One batch of outbox rows sent more than `keep_seconds` ago, deleted (found through `ix_outbox_sent`)."""
    outbox = TABLES.outbox
    return _batch(outbox, outbox.c.id, outbox.c.sent_at < _ago(keep_seconds))


def processed_events_batch(consumer: str, keep_seconds: float) -> Delete:
    """One batch of `consumer`'s old dedup records, deleted (found through `ix_processed_events_consumer_at`)."""
    processed = TABLES.processed_events
    old = (processed.c.consumer == consumer) & (processed.c.processed_at < _ago(keep_seconds))
    return _batch(processed, processed.c.event_id, old)


def _batch(table: Table, key: ColumnElement[object], condition: ColumnElement[bool]) -> Delete:
    return delete(table).where(condition, key.in_(select(key).where(condition).limit(BATCH).scalar_subquery()))


def start_pruning(
    what: str, prune: Callable[[float], Awaitable[int]], *, keep_seconds: float, interval_seconds: float
) -> asyncio.Task[None] | None:
    """Run `prune(keep_seconds)` now and every `interval_seconds` in a task (cancel it to stop); None when the
    retention is 0, which keeps rows forever."""
    if keep_seconds <= 0:
        return None
    return asyncio.create_task(_keep_pruning(what, partial(prune, keep_seconds), interval_seconds), name=what)


async def _keep_pruning(what: str, prune: Callable[[], Awaitable[int]], interval_seconds: float) -> None:
    """Until cancelled; a failure is logged and tried again at the next interval."""
    while True:
        try:
            if deleted := await prune():
                log.info("%s: deleted %d rows past their retention", what, deleted)
        except Exception as exc:
            log.warning("%s: pruning failed (%s: %s); trying again later", what, type(exc).__name__, exc)
        await asyncio.sleep(interval_seconds)


def _ago(seconds: float) -> ColumnElement[object]:
    return func.clock_timestamp() - timedelta(seconds=seconds)


async def _delete_in_batches(begin: Transaction, batch: Delete) -> int:
    deleted = 0
    while True:
        async with begin() as conn:
            result = cast(CursorResult[Any], await conn.execute(batch))
        deleted += result.rowcount
        if result.rowcount < BATCH:
            return deleted
