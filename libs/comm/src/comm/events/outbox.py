"""The producer's half of the transactional outbox (docs/architecture.md §4): an event joins the caller's transaction.

The state change and its event commit together or not at all; `OutboxRelay` publishes committed rows. The
`pg_notify` below is transactional too: the relay is woken only when the caller commits.
"""

import uuid

from opentelemetry import propagate
from sqlalchemy import func, insert
from sqlalchemy.ext.asyncio import AsyncSession

from comm.events.models import Event, encode_event
from comm.events.tables import TABLES

NOTIFY_CHANNEL = "comm_outbox"


async def add_event(session: AsyncSession, event: Event, *, event_id: uuid.UUID | None = None) -> uuid.UUID:
    """Add the event to the session's open transaction (never commits); returns the event id."""
    trace_context: dict[str, str] = {}
    propagate.inject(trace_context)  # traceparent/tracestate of the request that caused the event
    event_id = event_id or uuid.uuid4()
    await session.execute(
        insert(TABLES.outbox)
        .values(id=event_id, routing_key=event.routing_key, body=encode_event(event).decode(), headers=trace_context)
        # The NOTIFY rides on the INSERT: one round trip per event, not two. PostgreSQL folds a transaction's
        # identical notifications into one, delivered at its commit.
        .returning(func.pg_notify(NOTIFY_CHANNEL, ""))
    )
    return event_id
