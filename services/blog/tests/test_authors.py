"""Posts carry their authors' public profiles from the read model `profile.updated` keeps (comm.authors)."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
import jsonschema
import pytest

from blog.schemas import PostBatch, PostList, PostOut
from blog.settings import BlogSettings
from comm.authors import authors_queue
from comm.events.models import ProfileUpdated
from comm.events.testing import publish_event, wait_until
from comm.testing import assert_matches_model

Publish = Callable[..., Awaitable[uuid.UUID]]


def profile(user_id: uuid.UUID, version: int, username: str = "alice", **fields: Any) -> ProfileUpdated:
    face: dict[str, Any] = {"bio": None, "image": None, "comment_count": 0, **fields}
    return ProfileUpdated(user_id=user_id, username=username, version=version, timestamp=datetime.now(UTC), **face)


@pytest.fixture
async def publish(settings: BlogSettings, blog_url: str) -> AsyncIterator[Publish]:
    """Publish as the user service's relay does, on the test exchange; returns the message id."""
    connection = await aio_pika.connect(settings.rabbitmq_url)
    channel = await connection.channel(publisher_confirms=True)
    exchange = await channel.get_exchange(settings.events_exchange, ensure=True)

    async def send(event: ProfileUpdated, *, message_id: uuid.UUID | None = None) -> uuid.UUID:
        return await publish_event(exchange, event, app_id="user", message_id=message_id)

    yield send
    await connection.close()


async def processed(db: asyncpg.Connection, settings: BlogSettings, *ids: uuid.UUID) -> None:
    """Wait until the authors consumer has committed every one of `ids`."""
    query = "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])"

    async def done() -> bool:
        return int(await db.fetchval(query, authors_queue(settings.queue_prefix), list(ids))) == len(ids)

    await wait_until(done, within=30, interval=0.05)


async def every_read(client: httpx.AsyncClient, author: Any, post: dict[str, Any]) -> list[Any]:
    """The post's `author` in every read that returns it: by id, by slug, the list, the feed, a lookup."""
    by_id = (await client.get(f"/posts/{post['id']}")).json()
    by_slug = (await client.get(f"/posts/by-slug/{post['slug']}")).json()
    listed = (await client.get("/posts", params={"author_id": str(author.id)})).json()["posts"]
    feed = (await client.post("/posts/feed", json={"author_ids": [str(author.id)]})).json()["posts"]
    lookup = (await client.post("/posts/lookup", json={"ids": [post["id"]]})).json()["posts"]
    return [by_id["author"], by_slug["author"], listed[0]["author"], feed[0]["author"], lookup[0]["author"]]


async def test_posts_carry_the_author_and_null_before_the_profile_arrives(
    client: httpx.AsyncClient, new_author: Any, publish: Publish, db: asyncpg.Connection, settings: BlogSettings
) -> None:
    author = new_author()
    post = await author.post()
    assert post["author"] is None  # a write's answer: the caller knows its author
    assert await every_read(client, author, post) == [None] * 5  # not arrived yet: the gateway asks the user service
    await processed(db, settings, await publish(profile(author.id, 1, "alice", bio="hi", comment_count=2)))
    face = {"username": "alice", "bio": "hi", "image": None, "commentCount": 2}
    assert await every_read(client, author, post) == [face] * 5
    draft = await author.post(draft=True)
    mine = await client.get(f"/posts/{draft['id']}", headers=author.headers)
    assert mine.json()["author"] == face


async def test_every_read_answers_as_its_model_with_and_without_the_author(
    client: httpx.AsyncClient, new_author: Any, publish: Publish, db: asyncpg.Connection, settings: BlogSettings
) -> None:
    """The hot reads build their answers as plain data (comm.answers): the models are still their shape."""
    author = new_author()
    post = await author.post()

    async def check() -> None:
        author_id = str(author.id)
        for answer, model in (
            (await client.get(f"/posts/{post['id']}"), PostOut),
            (await client.get(f"/posts/by-slug/{post['slug']}"), PostOut),
            (await client.get("/posts", params={"author_id": author_id}), PostList),
            (await client.post("/posts/feed", json={"author_ids": [author_id]}), PostList),
            (await client.post("/posts/feed", json={"author_ids": []}), PostList),
            (await client.post("/posts/lookup", json={"ids": [post["id"]]}), PostBatch),
        ):
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "application/json"
            assert_matches_model(answer.json(), model)

    await check()
    await processed(db, settings, await publish(profile(author.id, 1, "alice", bio="hi", comment_count=2)))
    await check()
    extra = {**(await client.get(f"/posts/{post['id']}")).json(), "extra": 1}
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):  # the check can fail
        assert_matches_model(extra, PostOut)


async def test_duplicates_and_older_versions_change_nothing_and_newer_ones_win(
    client: httpx.AsyncClient, new_author: Any, publish: Publish, db: asyncpg.Connection, settings: BlogSettings
) -> None:
    author = new_author()
    post = await author.post()
    newer = await publish(profile(author.id, 3, "carol", image="https://img.example/c.png", comment_count=5))
    await publish(profile(author.id, 3, "carol", image="https://img.example/c.png", comment_count=5), message_id=newer)
    older = await publish(profile(author.id, 2, "bob"))  # arrives after the newer one
    same_version = await publish(profile(author.id, 3, "mallory"))  # a resend of v3 can only be equal: ignored
    await processed(db, settings, newer, older, same_version)
    carol = {"username": "carol", "bio": None, "image": "https://img.example/c.png", "commentCount": 5}
    assert (await client.get(f"/posts/{post['id']}")).json()["author"] == carol
    assert await db.fetchval("SELECT version FROM authors WHERE user_id = $1", author.id) == 3
    await processed(db, settings, await publish(profile(author.id, 4, "dave")))
    assert (await client.get(f"/posts/{post['id']}")).json()["author"]["username"] == "dave"
    other = new_author()
    await processed(db, settings, await publish(profile(other.id, 1, "erin")))
    assert (await client.get(f"/posts/{post['id']}")).json()["author"]["username"] == "dave"
