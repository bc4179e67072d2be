"""profile.updated: every change of a profile's public face goes out through the outbox with a growing version."""

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from comm.events.models import (
    CommentCreated,
    CommentDeleted,
    CommentModerated,
    ProfileUpdated,
    UserCreated,
    UserUpdated,
    decode_event,
)
from comm.events.tables import TABLES
from comm.events.testing import wait_until
from comm.testing import unique_name
from user.consumers import comment_counts_queue, profile_sync_queue
from user.settings import UserSettings

Headers = Callable[..., dict[str, str]]
Publish = Callable[..., Awaitable[uuid.UUID]]
WaitProcessed = Callable[[str, Iterable[uuid.UUID]], Awaitable[None]]
NewProfile = Callable[..., Awaitable[dict[str, Any]]]

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def published(engine: AsyncEngine, user_id: uuid.UUID | str) -> list[ProfileUpdated]:
    """The user's `profile.updated` events in the outbox, in the order they were added."""
    outbox = TABLES.outbox
    query = select(outbox.c.body).where(outbox.c.routing_key == "profile.updated").order_by(outbox.c.created_at)
    async with engine.connect() as conn:
        events = [decode_event(body.encode()) for body in await conn.scalars(query)]
    return [e for e in events if isinstance(e, ProfileUpdated) and str(e.user_id) == str(user_id)]


def faces(events: list[ProfileUpdated]) -> list[tuple[int, str, str | None, int]]:
    return [(e.version, e.username, e.bio, e.comment_count) for e in events]


async def test_creation_rename_and_profile_edits_publish_growing_versions(
    client: httpx.AsyncClient,
    new_profile: NewProfile,
    headers_for: Headers,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    engine: AsyncEngine,
) -> None:
    profile = await new_profile()  # the ensure path at registration
    user_id, name = uuid.UUID(profile["user_id"]), profile["username"]
    again = await client.put(f"/profiles/{user_id}", json={"username": name}, headers=headers_for(user_id))
    assert again.status_code == 200  # exists already: no change, no event
    assert faces(await published(engine, user_id)) == [(1, name, None, 0)]

    renamed = unique_name("renamed")
    queue = profile_sync_queue(settings)
    ids = [
        await publish(UserCreated(user_id=user_id, username=name, email="a@mail.com", timestamp=T0)),
        await publish(
            UserUpdated(user_id=user_id, username=renamed, email="a@mail.com", timestamp=T0 + timedelta(seconds=2))
        ),
    ]
    await wait_processed(queue, ids)
    late = await publish(
        UserUpdated(user_id=user_id, username="stale", email="a@mail.com", timestamp=T0 + timedelta(seconds=1))
    )
    await wait_processed(queue, [late])  # older than the rename: nothing applied, nothing published

    edited = await client.patch("/profiles/me", json={"bio": "hello"}, headers=headers_for(user_id))
    assert edited.status_code == 200, edited.text
    await client.patch("/profiles/me", json={"image": "https://img.example/a.png"}, headers=headers_for(user_id))
    events = await published(engine, user_id)
    assert faces(events) == [
        (1, name, None, 0),
        (2, name, None, 0),
        (3, renamed, None, 0),
        (4, renamed, "hello", 0),
        (5, renamed, "hello", 0),
    ]
    assert events[-1].image == "https://img.example/a.png"


async def test_comment_count_changes_publish_the_new_count_once_each(
    new_profile: NewProfile,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    engine: AsyncEngine,
) -> None:
    profile = await new_profile()
    author, post = uuid.UUID(profile["user_id"]), uuid.uuid4()
    first, second = uuid.uuid4(), uuid.uuid4()
    queue = comment_counts_queue(settings)
    created = CommentCreated(comment_id=first, post_id=post, author_id=author, timestamp=T0, status="approved")
    created_id = await publish(created)
    await publish(created, message_id=created_id)  # a redelivery: applied once
    resent = await publish(created)  # the same event under another id: the state absorbs it, nothing published
    ids = [
        created_id,
        resent,
        await publish(
            CommentCreated(comment_id=second, post_id=post, author_id=author, timestamp=T0, status="approved")
        ),
    ]
    await wait_processed(queue, ids)
    ids = [
        await publish(
            CommentModerated(
                comment_id=second,
                post_id=post,
                author_id=author,
                moderator_id=uuid.uuid4(),
                status="rejected",
                reason="spam",
                timestamp=T0 + timedelta(seconds=1),
            )
        ),
        await publish(CommentDeleted(comment_id=first, post_id=post, author_id=author, timestamp=T0)),
    ]
    await wait_processed(queue, ids)
    again = await publish(CommentDeleted(comment_id=first, post_id=post, author_id=author, timestamp=T0))
    anonymous = await publish(
        CommentCreated(comment_id=uuid.uuid4(), post_id=post, author_id=None, timestamp=T0, status="pending")
    )
    await wait_processed(queue, [again, anonymous])
    counts = [(e.version, e.comment_count) for e in await published(engine, author)]
    assert counts == [(1, 0), (2, 1), (3, 2), (4, 1), (5, 0)]


async def test_comments_of_a_user_without_a_profile_publish_nothing_until_it_is_created(
    client: httpx.AsyncClient,
    headers_for: Headers,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    engine: AsyncEngine,
) -> None:
    author = uuid.uuid4()
    event = CommentCreated(
        comment_id=uuid.uuid4(), post_id=uuid.uuid4(), author_id=author, timestamp=T0, status="approved"
    )
    await wait_processed(comment_counts_queue(settings), [await publish(event)])
    assert await published(engine, author) == []
    name = unique_name("late")
    await client.put(f"/profiles/{author}", json={"username": name}, headers=headers_for(author))
    assert faces(await published(engine, author)) == [(1, name, None, 1)]


async def test_the_relay_sends_profile_updated_to_the_broker(
    new_profile: NewProfile, engine: AsyncEngine, settings: UserSettings
) -> None:
    profile = await new_profile()
    outbox = TABLES.outbox
    query = select(outbox.c.sent_at).where(
        outbox.c.routing_key == "profile.updated", outbox.c.body.contains(profile["user_id"])
    )

    async def sent() -> bool:
        async with engine.connect() as conn:
            return (await conn.scalar(query)) is not None

    await wait_until(sent, within=30)
