"""What a delivery carries besides its body: its event id, its attempt count, and the copies that a failure and a
replay republish."""

import uuid
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from comm.events.models import derived_event_id
from comm.events.timestamps import format_event_timestamp

# Headers the broker adds on dead-lettering and redelivery; a republished copy starts without them.
_BROKER_HEADERS = (
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-delivery-count",
)
# The failure record a consumer adds (`_failure_headers`); a replay starts the count again.
_FAILURE = ("x-attempts", "x-error", "x-first-failed-at", "x-last-failed-at", "x-queue", "x-routing-key")


def event_id(message: AbstractIncomingMessage) -> uuid.UUID:
    """The AMQP message_id, or for a producer that sets none (the seed's) an id derived from the body."""
    try:
        return uuid.UUID(message.message_id) if message.message_id else derived_event_id(message.body)
    except ValueError:
        return derived_event_id(message.body)


def attempt(message: AbstractIncomingMessage) -> int:
    """Which attempt this delivery is: 1 + the failures recorded in `x-attempts`."""
    failures = (message.headers or {}).get("x-attempts", 0)
    return failures + 1 if isinstance(failures, int) else 1


def failed_copy(message: AbstractIncomingMessage, *, error: str, attempts: int, queue: str) -> aio_pika.Message:
    """The same event under the same id, with the failure recorded, for the retry or parking queue."""
    return _copy(message, headers=_failure_headers(message, error=error, attempts=attempts, queue=queue))


def replayed_copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    """A parked event sent back to its queue (comm.events.replay): same id, a fresh retry budget, `x-replays` + 1."""
    kept = {key: value for key, value in (message.headers or {}).items() if key not in (*_BROKER_HEADERS, *_FAILURE)}
    replays = (message.headers or {}).get("x-replays", 0)
    kept["x-replays"] = replays + 1 if isinstance(replays, int) else 1
    return _copy(message, headers=kept)


def _copy(message: AbstractIncomingMessage, *, headers: dict[str, Any]) -> aio_pika.Message:
    return aio_pika.Message(
        body=message.body,
        headers=headers,
        message_id=str(event_id(message)),
        type=message.type,
        content_type=message.content_type,
        app_id=message.app_id,
        timestamp=message.timestamp,
        correlation_id=message.correlation_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


def _failure_headers(message: AbstractIncomingMessage, *, error: str, attempts: int, queue: str) -> dict[str, Any]:
    """The message's headers plus the failure record: the first failure kept, the latest error and count set."""
    headers = {key: value for key, value in (message.headers or {}).items() if key not in _BROKER_HEADERS}
    now = format_event_timestamp(datetime.now(UTC))
    headers.setdefault("x-first-failed-at", now)
    headers.setdefault("x-routing-key", message.type or message.routing_key)
    headers.update({"x-attempts": attempts, "x-error": error[:2000], "x-last-failed-at": now, "x-queue": queue})
    return headers
