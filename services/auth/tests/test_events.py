"""user.created and user.updated leave through the outbox and reach the real broker in the seed's format."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aio_pika
import httpx
import pytest

from auth.settings import AuthSettings
from comm.events.models import UserCreated, UserUpdated, decode_event
from comm.events.testing import wait_until

Register = Callable[[], Awaitable[dict[str, Any]]]
Headers = Callable[..., dict[str, str]]


@pytest.fixture
async def user_events(settings: AuthSettings) -> AsyncIterator[list[aio_pika.abc.AbstractIncomingMessage]]:
    """Every user.* message published on the test exchange while the test runs."""
    received: list[aio_pika.abc.AbstractIncomingMessage] = []
    connection = await aio_pika.connect(settings.rabbitmq_url)
    channel = await connection.channel()
    exchange = await channel.declare_exchange(settings.events_exchange, aio_pika.ExchangeType.TOPIC, passive=True)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "user.*")

    async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        received.append(message)

    await queue.consume(keep, no_ack=True)
    yield received
    await connection.close()


async def test_register_and_rename_publish_user_events(
    client: httpx.AsyncClient,
    register: Register,
    headers_for: Headers,
    user_events: list[aio_pika.abc.AbstractIncomingMessage],
) -> None:
    user = await register()
    await client.patch(
        "/auth/users/me", json={"username": user["username"] + "2"}, headers=headers_for(uuid.UUID(user["id"]))
    )

    def mine() -> list[tuple[Any, Any]]:
        decoded = [(m, decode_event(m.body)) for m in user_events]
        return [(m, e) for m, e in decoded if getattr(e, "user_id", None) == uuid.UUID(user["id"])]

    await wait_until(lambda: len(mine()) == 2, within=10)
    (created_message, created), (_, updated) = mine()
    assert isinstance(created, UserCreated)
    assert (created.username, created.email) == (user["username"], user["email"])
    assert isinstance(updated, UserUpdated)
    assert updated.username == user["username"] + "2"
    assert (created.version, updated.version) == (1, 2)  # set in auth's transactions: the order, without clocks
    assert (created_message.type, created_message.app_id) == ("user.created", "auth")
    assert uuid.UUID(created_message.message_id)
