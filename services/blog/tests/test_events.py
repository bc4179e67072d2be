"""post.published, post.updated and post.deleted leave through the outbox and reach the real broker."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aio_pika
import httpx
import pytest

from blog.settings import BlogSettings
from comm.events.models import PostDeleted, PostPublished, PostUpdated, decode_event
from comm.events.testing import wait_until

Message = aio_pika.abc.AbstractIncomingMessage


@pytest.fixture
async def post_events(settings: BlogSettings, blog_url: str) -> AsyncIterator[list[Message]]:
    """Every post.* message published on the test exchange while the test runs."""
    received: list[Message] = []
    connection = await aio_pika.connect(settings.rabbitmq_url)
    channel = await connection.channel()
    exchange = None

    async def declared() -> bool:
        # The relay declares the exchange once it is connected: wait for it rather than race it.
        nonlocal channel, exchange
        try:
            exchange = await channel.declare_exchange(settings.events_exchange, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            channel = await connection.channel()
            return False
        return True

    await wait_until(declared, within=20, interval=0.1)
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, "post.*")

    async def keep(message: Message) -> None:
        received.append(message)

    await queue.consume(keep, no_ack=True)
    yield received
    await connection.close()


def _about(messages: list[Message], post_id: str) -> list[tuple[Message, Any]]:
    decoded = [(message, decode_event(message.body)) for message in messages]
    return [(message, event) for message, event in decoded if str(event.post_id) == post_id]


async def test_publish_update_delete_events_in_the_seed_format(
    client: httpx.AsyncClient, new_author: Any, post_events: list[Message]
) -> None:
    author = new_author()
    post = await author.post(title="Evented")
    await client.patch(f"/posts/{post['id']}", json={"title": "Evented again"}, headers=author.headers)
    await client.delete(f"/posts/{post['id']}", headers=author.headers)
    await wait_until(lambda: len(_about(post_events, post["id"])) == 3, within=20)
    (m1, published), (m2, updated), (m3, deleted) = _about(post_events, post["id"])
    assert isinstance(published, PostPublished)
    assert (published.author_id, published.title) == (author.id, "Evented")
    assert isinstance(updated, PostUpdated)
    assert updated.title == "Evented again"
    assert isinstance(deleted, PostDeleted)
    assert deleted.author_id == author.id
    assert [(m.type, m.app_id) for m in (m1, m2, m3)] == [
        ("post.published", "blog"),
        ("post.updated", "blog"),
        ("post.deleted", "blog"),
    ]
    assert len({uuid.UUID(m.message_id) for m in (m1, m2, m3)}) == 3
    assert m1.body.startswith(b'{"PostPublished":{"post_id":"' + post["id"].encode())


async def test_a_draft_publishes_once_when_published_and_deleted_drafts_still_say_so(
    client: httpx.AsyncClient, new_author: Any, post_events: list[Message]
) -> None:
    author = new_author()
    draft = await author.post(draft=True, title="Quiet draft")
    await client.patch(f"/posts/{draft['id']}", json={"body": "edited in private"}, headers=author.headers)
    await client.post(f"/posts/{draft['id']}/publish", headers=author.headers)
    await client.post(f"/posts/{draft['id']}/publish", headers=author.headers)
    other = await author.post(draft=True)
    await client.delete(f"/posts/{other['id']}", headers=author.headers)
    await wait_until(lambda: _about(post_events, other["id"]), within=20)
    await wait_until(lambda: _about(post_events, draft["id"]), within=20)
    assert [m.type for m, _ in _about(post_events, draft["id"])] == ["post.published"]
    assert [m.type for m, _ in _about(post_events, other["id"])] == ["post.deleted"]


async def test_no_event_for_a_favorite_or_an_unchanged_post(
    client: httpx.AsyncClient, new_author: Any, post_events: list[Message]
) -> None:
    author, fan = new_author(), new_author()
    post = await author.post()
    await client.put(f"/posts/{post['id']}/favorite", headers=fan.headers)
    await client.patch(f"/posts/{post['id']}", json={"title": post["title"]}, headers=author.headers)
    marker = await author.post()  # written after: once its event is in, the ones before it would be too
    await wait_until(lambda: _about(post_events, marker["id"]), within=20)
    assert [m.type for m, _ in _about(post_events, post["id"])] == ["post.published"]
