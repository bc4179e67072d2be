"""Comment lists carry their authors' public profiles from the read model `profile.updated` keeps (comm.authors)."""

import uuid
from datetime import UTC, datetime
from typing import Any

from comm.events.models import ProfileUpdated
from comm.events.testing import publish_event, wait_until
from comm.testing import assert_matches_model
from comment.schemas import CommentPage


def profile(user_id: uuid.UUID, version: int, username: str, **fields: Any) -> ProfileUpdated:
    face: dict[str, Any] = {"bio": None, "image": None, "comment_count": 0, **fields}
    return ProfileUpdated(user_id=user_id, username=username, version=version, timestamp=datetime.now(UTC), **face)


async def publish(kit: Any, event: ProfileUpdated, message_id: uuid.UUID | None = None) -> uuid.UUID:
    """What the user service's relay sends, on the test exchange; returns the event id."""
    return await publish_event(kit.exchange, event, app_id="user", message_id=message_id)


async def processed(kit: Any, *ids: uuid.UUID) -> None:
    query = "SELECT count(*) AS n FROM processed_events WHERE consumer = $1 AND event_id = ANY($2::uuid[])"

    async def done() -> bool:
        return int((await kit.sql(query, kit.settings.authors_queue, list(ids)))[0]["n"]) == len(set(ids))

    await wait_until(done, within=30, interval=0.05)


async def test_lists_carry_the_author_null_for_anonymous_and_unknown_authors(kit: Any) -> None:
    post_id = kit.blog.add()
    known, unknown, moderator = kit.user(), kit.user(), kit.user("moderator")
    await processed(kit, await publish(kit, profile(known.user_id, 1, "alice", bio="hi", comment_count=1)))
    await kit.created(post_id, known, body="by alice")
    await kit.created(post_id, unknown, body="by someone not arrived yet")
    await kit.created(post_id, kit.anonymous, body="by a passer-by", author_name="Passer-by")
    page = await kit.listed(post_id)
    assert_matches_model(page, CommentPage)  # built as plain data (comm.answers): the model is still its shape
    listed = {c["body"]: c["author"] for c in page["comments"]}
    alice = {"username": "alice", "bio": "hi", "image": None, "commentCount": 1}
    assert listed == {"by alice": alice, "by someone not arrived yet": None}
    pending = (await kit.client.get("/moderation/comments", params={"limit": 100}, headers=moderator.headers)).json()
    assert [c["author"] for c in pending["comments"] if c["post_id"] == str(post_id)] == [None]
    assert_matches_model(pending, CommentPage)


async def test_duplicates_and_older_versions_change_nothing(kit: Any) -> None:
    post_id, user = kit.blog.add(), kit.user()
    await kit.created(post_id, user)
    newest = await publish(kit, profile(user.user_id, 5, "renamed", image="https://img.example/r.png"))
    again = await publish(kit, profile(user.user_id, 5, "renamed", image="https://img.example/r.png"), newest)
    older = [await publish(kit, profile(user.user_id, version, f"old{version}")) for version in (4, 1, 3)]
    await processed(kit, newest, again, *older)
    [comment] = (await kit.listed(post_id))["comments"]
    assert comment["author"] == {
        "username": "renamed",
        "bio": None,
        "image": "https://img.example/r.png",
        "commentCount": 0,
    }
    await processed(kit, await publish(kit, profile(user.user_id, 6, "again", comment_count=1)))
    [comment] = (await kit.listed(post_id))["comments"]
    assert comment["author"]["username"] == "again"
    rows = await kit.sql("SELECT version FROM authors WHERE user_id = $1", user.user_id)
    assert [row["version"] for row in rows] == [6]


async def test_an_anonymous_comment_may_not_go_by_a_registered_name(kit: Any) -> None:
    """Compared case- and Unicode-normalised: the name as registered, lower case, full-width letters, a ligature."""
    post_id, user = kit.blog.add(), kit.user()
    registered = f"Ünﬁrm{uuid.uuid4().hex[:8]}"
    await processed(kit, await publish(kit, profile(user.user_id, 1, registered)))
    tail = registered.removeprefix("Ünﬁrm")
    full_width = "".join(chr(ord(c) + 0xFEE0) if c.isascii() and c.isalnum() else c for c in tail)
    for name in (registered, registered.lower(), f"üNFIRM{tail.upper()}", f"Ünfirm{full_width}", f" {registered} "):
        response = await kit.create(post_id, kit.anonymous, author_name=name)
        assert response.status_code == 422, (name, response.text)
        assert list(response.json()["errors"]) == ["author_name"], response.text
    # A name of its own is welcome, and a signed-in author's name field is ignored as before.
    await kit.created(post_id, kit.anonymous, author_name=f"{registered}-fan")
    await kit.created(post_id, user, author_name=registered)
    assert await kit.count_comments(post_id) == 2
