"""gateway.follows: whom a viewer follows, kept in memory or in the real Redis, dropped on a follow, and never put
back stale by a read that raced the follow."""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import coredis
import pytest

from comm.testing import free_port
from gateway.follows import Follows, MemoryStore, RedisStore

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class UserService:
    """Stands in for `GET /profiles/me/following`: counts the calls; `hold` keeps the next answer back."""

    def __init__(self, followed: list[uuid.UUID]) -> None:
        self.followed = followed
        self.calls = 0
        self.hold: asyncio.Event | None = None
        self.asked = asyncio.Event()

    async def following(self) -> list[uuid.UUID]:
        self.calls += 1
        answer = list(self.followed)  # as stored when the call reached the service
        self.asked.set()
        if self.hold is not None:
            await self.hold.wait()
        return answer


@pytest.fixture(params=["memory", "redis"])
async def follows(request: pytest.FixtureRequest) -> AsyncIterator[Follows]:
    if request.param == "memory":
        yield Follows(MemoryStore(ttl_seconds=60, size=100))
        return
    store = Follows(RedisStore(REDIS_URL, ttl_seconds=60))
    yield store
    await store.aclose()


@pytest.fixture
async def viewer() -> AsyncIterator[uuid.UUID]:
    viewer_id = uuid.uuid4()
    yield viewer_id
    redis: coredis.Redis[str] = coredis.Redis.from_url(REDIS_URL, decode_responses=True)
    await redis.delete([f"gateway:follows:{viewer_id}", f"gateway:follows:{viewer_id}:generation"])
    redis.connection_pool.disconnect()


async def test_the_set_is_fetched_once_then_kept(follows: Follows, viewer: uuid.UUID) -> None:
    author = uuid.uuid4()
    users = UserService([author])
    assert await follows.followed_by(viewer, users.following) == {author}
    assert await follows.followed_by(viewer, users.following) == {author}
    assert users.calls == 1


async def test_following_nobody_is_kept_too(follows: Follows, viewer: uuid.UUID) -> None:
    users = UserService([])
    assert await follows.followed_by(viewer, users.following) == frozenset()
    assert await follows.followed_by(viewer, users.following) == frozenset()
    assert users.calls == 1


async def test_a_change_is_read_at_once(follows: Follows, viewer: uuid.UUID) -> None:
    author = uuid.uuid4()
    users = UserService([])
    assert await follows.followed_by(viewer, users.following) == frozenset()
    users.followed.append(author)  # the follow, stored by the user service
    await follows.changed(viewer)  # then dropped by the gateway, before its answer leaves
    assert await follows.followed_by(viewer, users.following) == {author}
    assert users.calls == 2


async def test_another_viewers_change_keeps_this_ones_set(follows: Follows, viewer: uuid.UUID) -> None:
    users = UserService([uuid.uuid4()])
    await follows.followed_by(viewer, users.following)
    await follows.changed(uuid.uuid4())
    await follows.followed_by(viewer, users.following)
    assert users.calls == 1


async def test_a_read_that_raced_a_follow_does_not_put_the_old_set_back(follows: Follows, viewer: uuid.UUID) -> None:
    """The read reaches the user service before the follow is stored and answers after the gateway dropped the set:
    it answers what it read (concurrent with the follow), but keeps nothing, so the next read sees the follow."""
    author = uuid.uuid4()
    users = UserService([])
    users.hold = asyncio.Event()
    reading = asyncio.create_task(follows.followed_by(viewer, users.following))
    await users.asked.wait()
    users.followed.append(author)
    await follows.changed(viewer)
    users.hold.set()
    assert await reading == frozenset()
    users.hold = None
    assert await follows.followed_by(viewer, users.following) == {author}


async def test_without_redis_reads_ask_the_user_service_and_a_follow_still_answers(viewer: uuid.UUID) -> None:
    follows = Follows(RedisStore(f"redis://127.0.0.1:{free_port()}/0", ttl_seconds=60))  # nothing listens there
    author = uuid.uuid4()
    users = UserService([author])
    assert await follows.followed_by(viewer, users.following) == {author}
    assert await follows.followed_by(viewer, users.following) == {author}
    assert users.calls == 2
    await follows.changed(viewer)  # logged, not raised: the follow itself is stored
    await follows.aclose()
