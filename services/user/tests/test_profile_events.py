"""user.created and user.updated through the real broker: one correct profile whatever the order or repeats."""

import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from comm.events.models import UserCreated, UserUpdated
from comm.events.testing import wait_until
from comm.testing import unique_name
from user.consumers import profile_sync_queue
from user.models import Profile
from user.settings import UserSettings

Headers = Callable[..., dict[str, str]]
Publish = Callable[..., Awaitable[uuid.UUID]]
WaitProcessed = Callable[[str, Iterable[uuid.UUID]], Awaitable[None]]

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def created(user_id: uuid.UUID, username: str, at: datetime = T0) -> UserCreated:
    return UserCreated(user_id=user_id, username=username, email=f"{username}@mail.com", timestamp=at)


def updated(user_id: uuid.UUID, username: str, at: datetime) -> UserUpdated:
    return UserUpdated(user_id=user_id, username=username, email=f"{username}@mail.com", timestamp=at)


async def rows(engine: AsyncEngine, **where: Any) -> int:
    """How many profile rows match (user_id=... or username=...)."""
    query = select(func.count()).select_from(Profile).filter_by(**where)
    async with engine.connect() as conn:
        return int((await conn.scalar(query)) or 0)


def duplicates_seen(settings: UserSettings) -> float:
    labels = {"service": "user", "queue": profile_sync_queue(settings), "routing_key": "user.created"}
    return REGISTRY.get_sample_value("events_consumed_total", {**labels, "outcome": "duplicate"}) or 0.0


async def test_user_created_through_the_broker_creates_the_profile(client: httpx.AsyncClient, publish: Publish) -> None:
    user_id, name = uuid.uuid4(), unique_name("created")
    await publish(created(user_id, name))

    async def visible() -> bool:
        return (await client.get(f"/profiles/{user_id}")).status_code == 200

    await wait_until(visible, within=30)
    profile = (await client.get(f"/profiles/{user_id}")).json()
    assert profile == {
        "user_id": str(user_id),
        "username": name,
        "bio": None,
        "image": None,
        "following": False,
        "commentCount": 0,
    }


async def test_a_redelivered_event_is_applied_once(
    client: httpx.AsyncClient, publish: Publish, wait_processed: WaitProcessed, settings: UserSettings, engine: Any
) -> None:
    user_id, name = uuid.uuid4(), unique_name("twice")
    event = created(user_id, name)
    before = duplicates_seen(settings)
    message_id = await publish(event)
    await publish(event, message_id=message_id)  # the broker redelivering, or the relay re-sending
    resent = await publish(event)  # the same event under another id: the state absorbs it too
    await wait_processed(profile_sync_queue(settings), [message_id, resent])
    await wait_until(lambda: duplicates_seen(settings) == before + 1, within=30)
    assert await rows(engine, user_id=user_id) == 1
    assert await rows(engine, username=name) == 1
    assert (await client.get(f"/profiles/by-username/{name}")).json()["user_id"] == str(user_id)


async def test_updated_before_created_leaves_the_newest_name(
    client: httpx.AsyncClient,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    headers_for: Headers,
    engine: Any,
) -> None:
    user_id, old, new = uuid.uuid4(), unique_name("old"), unique_name("new")
    ids = [await publish(updated(user_id, new, T0 + timedelta(seconds=5)))]
    ids.append(await publish(created(user_id, old, T0)))
    await wait_processed(profile_sync_queue(settings), ids)
    assert (await client.get(f"/profiles/{user_id}")).json()["username"] == new
    assert await rows(engine, user_id=user_id) == 1

    # Bio and image belong to the user: a later rename keeps them, a stale one changes nothing.
    mine = headers_for(user_id)
    await client.patch("/profiles/me", json={"bio": "kept", "image": "https://img.example.com/me.png"}, headers=mine)
    newest = unique_name("newest")
    ids = [await publish(updated(user_id, newest, T0 + timedelta(seconds=9)))]
    ids.append(await publish(updated(user_id, unique_name("stale"), T0 + timedelta(seconds=7))))
    await wait_processed(profile_sync_queue(settings), ids)
    profile = (await client.get(f"/profiles/{user_id}")).json()
    assert (profile["username"], profile["bio"], profile["image"]) == (newest, "kept", "https://img.example.com/me.png")
    assert (await client.get(f"/profiles/by-username/{old}")).status_code == 404


async def test_a_rename_on_a_replica_whose_clock_is_behind_wins_by_its_identity_version(
    client: httpx.AsyncClient, publish: Publish, wait_processed: WaitProcessed, settings: UserSettings
) -> None:
    user_id, first, renamed, again = uuid.uuid4(), unique_name("first"), unique_name("renamed"), unique_name("again")
    behind = T0 - timedelta(milliseconds=50)  # the rename's replica runs 50 ms behind the registration's
    ids = [await publish(created(user_id, first, T0).model_copy(update={"version": 1}))]
    ids.append(await publish(updated(user_id, renamed, behind).model_copy(update={"version": 2})))
    await wait_processed(profile_sync_queue(settings), ids)
    assert (await client.get(f"/profiles/{user_id}")).json()["username"] == renamed

    # Reordered, the clocks the other way round: still the higher version.
    ids = [await publish(updated(user_id, again, T0 - timedelta(seconds=1)).model_copy(update={"version": 4}))]
    ids.append(
        await publish(
            updated(user_id, unique_name("stale"), T0 + timedelta(seconds=1)).model_copy(update={"version": 3})
        )
    )
    await wait_processed(profile_sync_queue(settings), ids)
    assert (await client.get(f"/profiles/{user_id}")).json()["username"] == again


async def test_the_event_after_the_ensure_path_does_not_duplicate_and_wins(
    client: httpx.AsyncClient,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    headers_for: Headers,
    engine: Any,
) -> None:
    user_id, name = uuid.uuid4(), unique_name("ryw")
    mine = headers_for(user_id)
    ensured = await client.put(f"/profiles/{user_id}", json={"username": name}, headers=mine)
    assert (await client.get(f"/profiles/by-username/{name}")).json() == ensured.json()  # readable at once
    await wait_processed(profile_sync_queue(settings), [await publish(created(user_id, name, datetime.now(UTC)))])
    assert await rows(engine, user_id=user_id) == 1
    lookup = await client.get("/profiles", params={"usernames": name})
    assert [p["user_id"] for p in lookup.json()["profiles"]] == [str(user_id)]

    # Auth's event is authoritative over what the ensure path was told; a later ensure never undoes it.
    other_id, told, real = uuid.uuid4(), unique_name("told"), unique_name("real")
    await client.put(f"/profiles/{other_id}", json={"username": told}, headers=headers_for(other_id))
    await wait_processed(profile_sync_queue(settings), [await publish(created(other_id, real, datetime.now(UTC)))])
    await client.put(f"/profiles/{other_id}", json={"username": told}, headers=headers_for(other_id))
    assert (await client.get(f"/profiles/{other_id}")).json()["username"] == real


async def test_a_name_reused_before_the_rename_arrives_resolves_to_its_new_holder(
    client: httpx.AsyncClient,
    publish: Publish,
    wait_processed: WaitProcessed,
    settings: UserSettings,
    headers_for: Headers,
) -> None:
    """A renames away from `name`, then B registers `name`; B's creation arrives before A's rename."""
    a, b, name, renamed = uuid.uuid4(), uuid.uuid4(), unique_name("taken"), unique_name("renamed")
    queue = profile_sync_queue(settings)
    await wait_processed(queue, [await publish(created(a, name, T0))])
    await wait_processed(queue, [await publish(created(b, name, T0 + timedelta(seconds=20)))])
    assert (await client.get(f"/profiles/by-username/{name}")).json()["user_id"] == str(b)
    await wait_processed(queue, [await publish(updated(a, renamed, T0 + timedelta(seconds=10)))])
    assert (await client.get(f"/profiles/by-username/{name}")).json()["user_id"] == str(b)
    assert (await client.get(f"/profiles/by-username/{renamed}")).json()["user_id"] == str(a)

    # Same race through the ensure path: the just-registered user's row holds the name before any event.
    c, d, other = uuid.uuid4(), uuid.uuid4(), unique_name("taken")
    await wait_processed(queue, [await publish(created(c, other, T0))])
    await client.put(f"/profiles/{d}", json={"username": other}, headers=headers_for(d))
    assert (await client.get(f"/profiles/by-username/{other}")).json()["user_id"] == str(d)
    follow = await client.post(f"/profiles/by-username/{other}/follow", headers=headers_for(a))
    assert follow.json()["user_id"] == str(d)
