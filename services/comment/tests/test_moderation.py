"""Anonymous comments wait for a moderator: approve shows them, reject keeps them hidden, events say so."""

import uuid
from typing import Any

from comm.events.models import CommentCreated, CommentModerated
from comm.events.testing import wait_until


async def moderation_events(kit: Any, comment_id: str) -> int:
    """How many comment.moderated rows this comment has in the outbox (written with the change, so exact)."""
    rows = await kit.sql(
        "SELECT count(*) AS n FROM outbox WHERE routing_key = 'comment.moderated' AND body LIKE $1",
        f'%"comment_id":"{comment_id}"%',
    )
    return int(rows[0]["n"])


async def test_anonymous_comment_is_pending_until_a_moderator_approves_it(kit: Any) -> None:
    post_id = kit.blog.add()
    moderator = kit.user("moderator")
    comment = await kit.created(post_id, kit.anonymous, body="Hello from a guest", author_name="  Guest  ")
    assert (comment["status"], comment["author_id"], comment["author_name"]) == ("pending", None, "Guest")
    assert (await kit.listed(post_id))["total"] == 0

    queue = await kit.client.get("/moderation/comments", params={"limit": 100}, headers=moderator.headers)
    assert comment["id"] in [c["id"] for c in queue.json()["comments"]]

    approve = f"/moderation/comments/{comment['number']}/approve"
    approved = await kit.client.post(approve, headers=moderator.headers)
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["moderator_id"]) == ("approved", str(moderator.user_id))
    assert [c["id"] for c in (await kit.listed(post_id))["comments"]] == [comment["id"]]

    again = await kit.client.post(approve, headers=kit.user("admin").headers)
    assert again.status_code == 200
    assert again.json()["moderator_id"] == str(moderator.user_id), "the second approval changed nothing"
    assert await moderation_events(kit, comment["id"]) == 1

    await wait_until(lambda: kit.events("comment.moderated", post_id=post_id), within=10)
    (created,) = kit.events("comment.created", post_id=post_id)
    assert isinstance(created, CommentCreated)
    assert (created.comment_id, created.author_id, created.status) == (uuid.UUID(comment["id"]), None, "pending")
    (moderated,) = kit.events("comment.moderated", post_id=post_id)
    assert isinstance(moderated, CommentModerated)
    assert (moderated.comment_id, moderated.status, moderated.moderator_id, moderated.reason) == (
        uuid.UUID(comment["id"]),
        "approved",
        moderator.user_id,
        None,
    )


async def test_a_rejected_comment_stays_hidden_and_carries_the_reason(kit: Any) -> None:
    post_id = kit.blog.add()
    moderator = kit.user("admin")
    comment = await kit.created(post_id, kit.anonymous, body="Buy cheap watches", author_name="Spammer")
    reject = f"/moderation/comments/{comment['number']}/reject"
    rejected = await kit.client.post(reject, json={"reason": "spam"}, headers=moderator.headers)
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["moderation_reason"]) == ("rejected", "spam")
    assert (await kit.listed(post_id))["total"] == 0
    queue = await kit.client.get("/moderation/comments", params={"limit": 100}, headers=moderator.headers)
    assert comment["id"] not in [c["id"] for c in queue.json()["comments"]]
    await kit.client.post(reject, json={"reason": "spam again"}, headers=moderator.headers)
    assert await moderation_events(kit, comment["id"]) == 1
    await wait_until(lambda: kit.events("comment.moderated", post_id=post_id), within=10)
    (moderated,) = kit.events("comment.moderated", post_id=post_id)
    assert (moderated.status, moderated.reason, moderated.author_id) == ("rejected", "spam", None)


async def test_the_queue_is_oldest_first_and_paginated(kit: Any) -> None:
    moderator = kit.user("moderator")
    post_id = kit.blog.add()
    ids = [(await kit.created(post_id, kit.anonymous, author_name=f"guest {i}"))["id"] for i in range(3)]
    everything = await kit.client.get("/moderation/comments", params={"limit": 100}, headers=moderator.headers)
    total = everything.json()["total"]
    mine = [c["id"] for c in everything.json()["comments"] if c["id"] in ids]
    assert mine == ids
    last = await kit.client.get(
        "/moderation/comments", params={"limit": 1, "offset": total - 1}, headers=moderator.headers
    )
    assert [c["id"] for c in last.json()["comments"]] == ids[-1:]


async def test_only_moderators_moderate(kit: Any) -> None:
    post_id = kit.blog.add()
    comment = await kit.created(post_id, kit.anonymous, author_name="Guest")
    approve = f"/moderation/comments/{comment['number']}/approve"
    for actor, status in ((kit.user(), 403), (kit.user("editor"), 403), (kit.anonymous, 401)):
        assert (await kit.client.post(approve, headers=actor.headers)).status_code == status
        queue = await kit.client.get("/moderation/comments", headers=actor.headers)
        assert queue.status_code == status
        assert set(queue.json()) == {"errors"}
    assert (await kit.listed(post_id))["total"] == 0
    missing = await kit.client.post("/moderation/comments/999999999/approve", headers=kit.user("moderator").headers)
    assert missing.status_code == 404


async def test_an_anonymous_comment_needs_a_display_name(kit: Any) -> None:
    post_id = kit.blog.add()
    for name in (None, "", "   ", "x" * 65):
        response = await kit.create(post_id, kit.anonymous, author_name=name)
        assert response.status_code == 422, (name, response.text)
        assert "author_name" in response.json()["errors"]
    assert await kit.count_comments(post_id) == 0
    named = await kit.created(post_id, kit.user(), author_name="ignored for users")
    assert named["author_name"] is None


async def test_a_moderator_can_hide_a_users_comment_and_show_it_again(kit: Any) -> None:
    post_id = kit.blog.add()
    author, moderator = kit.user(), kit.user("moderator")
    comment = await kit.created(post_id, author)
    base = f"/moderation/comments/{comment['number']}"
    hidden = await kit.client.post(f"{base}/reject", json={"reason": "off topic"}, headers=moderator.headers)
    assert hidden.json()["status"] == "rejected"
    assert (await kit.listed(post_id))["total"] == 0
    own = await kit.client.get(f"/comments/{comment['id']}", headers=author.headers)
    assert own.json()["moderation_reason"] == "off topic", "the author may see why"
    shown = await kit.client.post(f"{base}/approve", headers=moderator.headers)
    assert (shown.json()["status"], shown.json()["moderation_reason"]) == ("approved", None)
    assert (await kit.listed(post_id))["total"] == 1
    await wait_until(lambda: len(kit.events("comment.moderated", post_id=post_id)) == 2, within=10)
    statuses = [(e.status, e.author_id) for e in kit.events("comment.moderated", post_id=post_id)]
    assert statuses == [("rejected", author.user_id), ("approved", author.user_id)]


async def test_a_moderation_is_timestamped_after_the_creation_even_when_the_database_clock_is_ahead(kit: Any) -> None:
    """created_at comes from the database's clock, the moderation's time from the service's; with the database an
    hour ahead, the approval must still come after the creation, or consumers would keep 'pending'."""
    post_id = kit.blog.add()
    moderator = kit.user("moderator")
    comment = await kit.created(post_id, kit.anonymous, author_name="Guest")
    await kit.sql(
        "UPDATE comments SET created_at = created_at + interval '1 hour' WHERE id = $1", uuid.UUID(comment["id"])
    )
    number = comment["number"]

    await kit.client.post(f"/moderation/comments/{number}/approve", headers=moderator.headers)
    await kit.client.post(f"/moderation/comments/{number}/reject", json={"reason": "r"}, headers=moderator.headers)

    await wait_until(lambda: len(kit.events("comment.moderated", post_id=post_id)) == 2, within=10)
    (created,) = kit.events("comment.created", post_id=post_id)
    approved, rejected = kit.events("comment.moderated", post_id=post_id)
    assert (approved.status, rejected.status) == ("approved", "rejected")
    stored = await kit.sql("SELECT created_at FROM comments WHERE id = $1", uuid.UUID(comment["id"]))
    assert stored[0]["created_at"] < approved.timestamp < rejected.timestamp
    assert created.timestamp < approved.timestamp
