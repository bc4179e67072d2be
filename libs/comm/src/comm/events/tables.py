"""The two tables events need in every service's own database: `outbox` (producer) and `processed_events` (consumer).

A service adds them to its metadata with `add_event_tables(Base.metadata)`, so Alembic autogenerate writes them
into the service's migration; the library queries them through its own identical definitions (`TABLES`).
"""

from typing import NamedTuple

from sqlalchemy import Column, DateTime, Index, Integer, MetaData, String, Table, Text, Uuid, func, text
from sqlalchemy.dialects.postgresql import JSONB


class EventTables(NamedTuple):
    """The outbox and the consumers' dedup record."""

    outbox: Table
    processed_events: Table


def add_event_tables(metadata: MetaData) -> EventTables:
    """Define `outbox` and `processed_events` on the service's metadata (for its Alembic migration)."""
    outbox = Table(
        "outbox",
        metadata,
        Column("id", Uuid, primary_key=True),  # the event id, sent as the AMQP message_id
        Column("routing_key", String(255), nullable=False),
        Column("body", Text, nullable=False),  # the UTF-8 JSON body, byte for byte
        Column("headers", JSONB, nullable=False, server_default=text("'{}'::jsonb")),  # W3C trace context
        # clock_timestamp, not now(): rows added in one transaction keep their order.
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("clock_timestamp()")),
        Column("attempts", Integer, nullable=False, server_default=text("0")),
        # When the broker confirmed custody (a consumer's queue or the unroutable queue), not consumer delivery.
        Column("sent_at", DateTime(timezone=True)),
        Column("last_error", Text),
        Index("ix_outbox_pending", "created_at", postgresql_where=text("sent_at IS NULL")),
        # Retention deletes by sent_at (comm.events.retention): without this it scanned the whole table.
        Index("ix_outbox_sent", "sent_at", postgresql_where=text("sent_at IS NOT NULL")),
    )
    processed_events = Table(
        "processed_events",
        metadata,
        Column("event_id", Uuid, primary_key=True),
        Column("consumer", String(255), primary_key=True),  # the queue whose handler applied it
        Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Index("ix_processed_events_consumer_at", "consumer", "processed_at"),  # retention, per consumer
    )
    return EventTables(outbox=outbox, processed_events=processed_events)


TABLES = add_event_tables(MetaData())
"""The library's own handle on the tables; same names and columns as those a service adds to its metadata."""
