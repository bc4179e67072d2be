"""Create, list and read comments over real HTTP, with the post checked against the stand-in blog."""

import re
import uuid
from typing import Any

import httpx

from comm.tokens import Identity

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def test_a_users_comment_is_approved_and_listed_with_rfc3339_ms_timestamps(kit: Any) -> None:
    post_id = kit.blog.add()
    user = kit.user()
    comment = await kit.created(post_id, user, body="First!")
    assert comment["status"] == "approved"
    assert (comment["author_id"], comment["author_name"]) == (str(user.user_id), None)
    assert comment["post_id"] == str(post_id)
    assert uuid.UUID(comment["id"])
    assert isinstance(comment["number"], int)
    assert TIMESTAMP.match(comment["createdAt"]), comment["createdAt"]
    assert TIMESTAMP.match(comment["updatedAt"]), comment["updatedAt"]
    page = await kit.listed(post_id)
    assert page == {"comments": [comment], "total": 1}  # `author` null: their profile has not arrived


async def test_list_is_newest_first_paginated_with_the_total(kit: Any) -> None:
    post_id = kit.blog.add()
    user = kit.user()
    numbers = [(await kit.created(post_id, user, body=f"comment {i}"))["number"] for i in range(5)]
    first = await kit.listed(post_id, limit=2)
    second = await kit.listed(post_id, limit=2, offset=2)
    last = await kit.listed(post_id, limit=2, offset=4)
    assert [c["number"] for c in first["comments"] + second["comments"] + last["comments"]] == numbers[::-1]
    assert first["total"] == second["total"] == last["total"] == 5
    past = await kit.listed(post_id, offset=5)
    assert past["comments"] == []
    assert past["total"] == 5  # past the last page the total still holds
    assert (await kit.listed(kit.blog.add()))["total"] == 0  # default limit, a post with no comments


async def test_blog_sees_the_callers_identity(kit: Any) -> None:
    post_id = kit.blog.add()
    moderator = kit.user("moderator")
    await kit.created(post_id, moderator)
    seen = kit.blog.seen[-1]
    assert seen == Identity(user_id=moderator.user_id, roles=frozenset({"moderator"}), caller="comment")


async def test_unknown_posts_are_404_an_own_draft_403_and_nothing_is_stored(kit: Any) -> None:
    author = kit.user()
    unknown = uuid.uuid4()
    others_draft = kit.blog.add(published=False)
    own_draft = kit.blog.add(published=False, author_id=author.user_id)
    for post_id in (unknown, others_draft):
        response = await kit.create(post_id, author)
        assert response.status_code == 404, response.text
        assert response.json() == {"errors": {"body": ["post not found"]}}
    response = await kit.create(own_draft, author)
    assert response.status_code == 403, response.text
    assert response.json() == {"errors": {"body": ["a draft takes no comments until it is published"]}}
    assert await kit.count_comments(unknown, others_draft, own_draft) == 0


async def test_get_by_uuid_shows_pending_comments_only_to_moderators(kit: Any) -> None:
    post_id = kit.blog.add()
    approved = await kit.created(post_id, kit.user())
    pending = await kit.created(post_id, kit.anonymous, author_name="Guest")

    async def get(comment: dict[str, Any], actor: Any) -> httpx.Response:
        response: httpx.Response = await kit.client.get(f"/comments/{comment['id']}", headers=actor.headers)
        return response

    assert (await get(approved, kit.anonymous)).json() == approved
    assert (await get(pending, kit.user())).status_code == 404
    assert (await get(pending, kit.user("admin"))).json() == pending
    assert (await kit.client.get(f"/comments/{uuid.uuid4()}", headers=kit.anonymous.headers)).status_code == 404


async def test_calls_without_an_internal_token_are_401(kit: Any) -> None:
    async with httpx.AsyncClient(base_url=kit.url) as bare:
        response = await bare.get(f"/posts/{uuid.uuid4()}/comments")
    assert response.status_code == 401
    assert response.json() == {"errors": {"body": ["internal token required"]}}


async def test_health_and_readiness(kit: Any) -> None:
    assert (await kit.client.get("/health")).json() == {"status": "ok"}
    ready = await kit.client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "events": "ok"}
