"""Events: the seed's wire format, the transactional outbox and reliable consumers.

A producing service adds `add_event_tables(metadata)` to its models, calls `add_event(session, event)` inside the
use case's transaction and runs an `OutboxRelay` in its lifespan; a consuming service registers handlers on a
`Consumer` per queue and runs it in its lifespan. README.md, "libs/comm: events", shows the wiring.
"""

from comm.events.consumer import Consumer, EventMeta, Handler
from comm.events.models import (
    BY_ROUTING_KEY,
    EVENT_TYPES,
    CommentCreated,
    CommentDeleted,
    CommentModerated,
    CommentStatus,
    Event,
    MalformedEvent,
    PostDeleted,
    PostPublished,
    PostUpdated,
    UserCreated,
    UserUpdated,
    decode_event,
    encode_event,
)
from comm.events.outbox import add_event
from comm.events.relay import OutboxRelay
from comm.events.tables import EventTables, add_event_tables

__all__ = [
    "BY_ROUTING_KEY",
    "EVENT_TYPES",
    "CommentCreated",
    "CommentDeleted",
    "CommentModerated",
    "CommentStatus",
    "Consumer",
    "Event",
    "EventMeta",
    "EventTables",
    "Handler",
    "MalformedEvent",
    "OutboxRelay",
    "PostDeleted",
    "PostPublished",
    "PostUpdated",
    "UserCreated",
    "UserUpdated",
    "add_event",
    "add_event_tables",
    "decode_event",
    "encode_event",
]
