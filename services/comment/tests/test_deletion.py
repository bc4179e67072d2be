"""Deleting a comment: its author or a moderator, under the right post; comment.deleted follows."""

import uuid
from typing import Any

from comm.events.testing import wait_until


async def test_the_author_deletes_their_comment_and_an_event_follows(kit: Any) -> None:
    post_id = kit.blog.add()
    author = kit.user()
    comment = await kit.created(post_id, author)
    response = await kit.client.delete(f"/posts/{post_id}/comments/{comment['number']}", headers=author.headers)
    assert response.status_code == 204
    assert (await kit.listed(post_id))["total"] == 0
    await wait_until(lambda: kit.events("comment.deleted", post_id=post_id), within=10)
    (deleted,) = kit.events("comment.deleted", post_id=post_id)
    assert (deleted.comment_id, deleted.author_id) == (uuid.UUID(comment["id"]), author.user_id)


async def test_others_get_403_moderators_may_and_a_wrong_post_is_404(kit: Any) -> None:
    post_id, other_post = kit.blog.add(), kit.blog.add()
    comment = await kit.created(post_id, kit.user())
    url = f"/posts/{post_id}/comments/{comment['number']}"
    assert (await kit.client.delete(url, headers=kit.user().headers)).status_code == 403
    assert (await kit.client.delete(url, headers=kit.anonymous.headers)).status_code == 401
    wrong = await kit.client.delete(f"/posts/{other_post}/comments/{comment['number']}", headers=kit.user().headers)
    assert wrong.status_code == 404
    assert wrong.json() == {"errors": {"body": ["comment not found"]}}
    assert (await kit.listed(post_id))["total"] == 1
    assert (await kit.client.delete(url, headers=kit.user("moderator").headers)).status_code == 204
    assert (await kit.client.delete(url, headers=kit.user("moderator").headers)).status_code == 404


async def test_a_pending_comment_is_404_to_users_and_deletable_by_moderators(kit: Any) -> None:
    post_id = kit.blog.add()
    comment = await kit.created(post_id, kit.anonymous, author_name="Guest")
    url = f"/posts/{post_id}/comments/{comment['number']}"
    assert (await kit.client.delete(url, headers=kit.user().headers)).status_code == 404
    assert (await kit.client.delete(url, headers=kit.user("admin").headers)).status_code == 204
    assert await kit.count_comments(post_id) == 0
