"""post.deleted on the real broker takes every comment of the post, even one created while the delete is in flight."""

import asyncio
import time
import uuid
from typing import Any

from comm.events.testing import wait_until


async def test_a_deleted_posts_50_comments_go_within_2_s_each_with_comment_deleted(kit: Any) -> None:
    post_id = kit.blog.add()
    created: list[dict[str, Any]] = []
    for _ in range(5):
        created += await asyncio.gather(*(kit.created(post_id, kit.user()) for _ in range(10)))
    assert await kit.count_comments(post_id) == 50

    started = time.monotonic()
    await kit.publish_post_deleted(post_id)
    await wait_until(lambda: _none_left(kit, post_id), within=2.0)
    await wait_until(lambda: len(kit.events("comment.deleted", post_id=post_id)) >= 50, within=10)
    elapsed = time.monotonic() - started

    deleted = kit.events("comment.deleted", post_id=post_id)
    assert sorted(str(event.comment_id) for event in deleted) == sorted(comment["id"] for comment in created)
    assert {event.author_id for event in deleted} == {uuid.UUID(comment["author_id"]) for comment in created}
    assert elapsed < 5, elapsed
    late = await kit.create(post_id, kit.user())  # blog still answers for it here: the tombstone says no
    assert late.status_code == 404


async def test_a_comment_created_during_the_delete_never_survives_it(kit: Any) -> None:
    """20 races of a create against post.deleted: each create either loses (404) or is deleted with an event."""
    user = kit.user()
    posts = [kit.blog.add() for _ in range(20)]
    statuses: list[int] = []
    created_ids: list[str] = []
    for post_id in posts:
        response, _ = await asyncio.gather(kit.create(post_id, user), kit.publish_post_deleted(post_id))
        statuses.append(response.status_code)
        if response.status_code == 201:
            created_ids.append(response.json()["id"])
    assert set(statuses) <= {201, 404}, statuses

    await wait_until(lambda: _tombstones(kit, posts), within=10)
    assert await kit.count_comments(*posts) == 0

    def all_deleted() -> bool:
        deleted = {str(e.comment_id) for post_id in posts for e in kit.events("comment.deleted", post_id=post_id)}
        return deleted >= set(created_ids)

    await wait_until(all_deleted, within=10)


async def test_post_deleted_again_or_redelivered_deletes_nothing_more(kit: Any) -> None:
    post_id = kit.blog.add()
    await kit.created(post_id, kit.user())
    first = await kit.publish_post_deleted(post_id)
    await wait_until(lambda: _none_left(kit, post_id), within=5)
    await kit.publish_post_deleted(post_id, event_id=first)  # a redelivery: same message id
    second = await kit.publish_post_deleted(post_id)  # blog deleting it again: a new event
    await wait_until(lambda: _processed(kit, second), within=10)
    rows = await kit.sql(
        "SELECT count(*) AS n FROM outbox WHERE routing_key = 'comment.deleted' AND body LIKE $1", f"%{post_id}%"
    )
    assert rows[0]["n"] == 1
    assert len(await kit.sql("SELECT 1 FROM processed_events WHERE event_id = $1", first)) == 1


async def _none_left(kit: Any, post_id: uuid.UUID) -> bool:
    return bool(await kit.count_comments(post_id) == 0)


async def _tombstones(kit: Any, posts: list[uuid.UUID]) -> bool:
    rows = await kit.sql("SELECT count(*) AS n FROM deleted_posts WHERE post_id = ANY($1::uuid[])", posts)
    return bool(rows[0]["n"] == len(posts))


async def _processed(kit: Any, event_id: uuid.UUID) -> bool:
    return bool(await kit.sql("SELECT 1 FROM processed_events WHERE event_id = $1", event_id))
