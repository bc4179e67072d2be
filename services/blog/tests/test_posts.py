"""Posts: create, read, update, publish, delete; slugs; who may do what; drafts stay private."""

import asyncio
import re
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from comm.errors import UpstreamClientError
from comm.http.clients import BlogServiceClient
from comm.settings import CommSettings
from comm.tokens import Identity

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


async def test_create_then_read_by_id_and_slug(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    created = await author.post(title="How to train your dragon", tagList=["training", "dragons", "training"])
    assert created["slug"].startswith("how-to-train-your-dragon")
    assert created["tagList"] == ["dragons", "training"]
    assert created["author_id"] == str(author.id)
    assert (created["published"], created["favorited"], created["favoritesCount"]) == (True, False, 0)
    assert created["body"] == "the text"
    assert created["category"] is None
    for field in ("createdAt", "updatedAt", "publishedAt"):
        assert RFC3339_MS.match(created[field]), created[field]
    by_id = await client.get(f"/posts/{created['id']}")
    by_slug = await client.get(f"/posts/by-slug/{created['slug']}")
    assert by_id.status_code == by_slug.status_code == 200
    assert by_id.json() == by_slug.json() == created


async def test_same_title_twice_and_five_times_at_once_gives_distinct_slugs(new_author: Any) -> None:
    author = new_author()
    title = f"Same title {uuid.uuid4().hex[:6]}"
    first, second = await author.post(title=title), await author.post(title=title)
    concurrent = await asyncio.gather(*(author.post(title=title) for _ in range(5)))
    slugs = [post["slug"] for post in (first, second, *concurrent)]
    assert first["slug"] == title.lower().replace(" ", "-")
    assert len(set(slugs)) == 7
    assert all(slug.startswith(first["slug"]) for slug in slugs)


async def test_update_changes_the_slug_only_with_the_title(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    post = await author.post(title="Original title", tagList=["b"])
    url = f"/posts/{post['id']}"
    body_only = await client.patch(url, json={"body": "new text", "tagList": ["z", "a", "z"]}, headers=author.headers)
    assert body_only.status_code == 200, body_only.text
    assert (body_only.json()["slug"], body_only.json()["body"]) == (post["slug"], "new text")
    assert body_only.json()["tagList"] == ["a", "z"]
    assert body_only.json()["updatedAt"] > post["updatedAt"]
    assert body_only.json()["createdAt"] == post["createdAt"]
    retitled = (await client.patch(url, json={"title": "A new title"}, headers=author.headers)).json()
    assert retitled["slug"].startswith("a-new-title")
    assert (await client.get(f"/posts/by-slug/{post['slug']}")).status_code == 404
    assert (await client.get(f"/posts/by-slug/{retitled['slug']}")).json()["title"] == "A new title"
    unchanged = await client.patch(url, json={}, headers=author.headers)
    assert unchanged.json() == retitled


async def test_only_the_author_updates_publishes_or_deletes(client: httpx.AsyncClient, new_author: Any) -> None:
    author, other = new_author(), new_author()
    post = await author.post()
    url = f"/posts/{post['id']}"
    attempts = {
        "update": await client.patch(url, json={"title": "mine now"}, headers=other.headers),
        "publish": await client.post(f"{url}/publish", headers=other.headers),
        "delete": await client.delete(url, headers=other.headers),
    }
    for name, response in attempts.items():
        assert response.status_code == 403, name
        assert response.json() == {"errors": {"body": ["only the author may change this post"]}}
    anonymous = await client.patch(url, json={"title": "x"})
    assert anonymous.status_code == 401
    assert (await client.delete(url)).status_code == 401
    assert (await client.get(url)).json()["title"] == post["title"]


async def test_delete_removes_the_post_and_its_favorites(
    client: httpx.AsyncClient, new_author: Any, db: asyncpg.Connection
) -> None:
    author, fan = new_author(), new_author()
    post = await author.post()
    await client.put(f"/posts/{post['id']}/favorite", headers=fan.headers)
    deleted = await client.delete(f"/posts/{post['id']}", headers=author.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(f"/posts/{post['id']}")).status_code == 404
    assert (await client.delete(f"/posts/{post['id']}", headers=author.headers)).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM favorites WHERE post_id = $1", uuid.UUID(post["id"])) == 0


async def test_drafts_are_visible_to_their_author_only(client: httpx.AsyncClient, new_author: Any) -> None:
    author, other = new_author(), new_author()
    draft = await author.post(draft=True, tagList=[f"draft-{uuid.uuid4().hex[:6]}"])
    assert (draft["published"], draft["publishedAt"]) == (False, None)
    for headers in (other.headers, {}):  # another user, and a service acting on its own
        assert (await client.get(f"/posts/{draft['id']}", headers=headers)).status_code == 404
        assert (await client.get(f"/posts/by-slug/{draft['slug']}", headers=headers)).status_code == 404
        listed = await client.get("/posts", params={"author_id": str(author.id)}, headers=headers)
        assert listed.json() == {"posts": [], "postsCount": 0}
        assert (await client.put(f"/posts/{draft['id']}/favorite", headers=other.headers)).status_code == 404
        tags = (await client.get("/tags", headers=headers)).json()["tags"]
        assert draft["tagList"][0] not in tags
    assert (await client.patch(f"/posts/{draft['id']}", json={"title": "t"}, headers=other.headers)).status_code == 404
    own = await client.get(f"/posts/{draft['id']}", headers=author.headers)
    assert own.status_code == 200
    assert own.json()["published"] is False


async def test_publishing_a_draft_makes_it_public_once(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    draft = await author.post(draft=True)
    published = await client.post(f"/posts/{draft['id']}/publish", headers=author.headers)
    assert published.status_code == 200
    assert published.json()["published"] is True
    assert RFC3339_MS.match(published.json()["publishedAt"])
    again = await client.post(f"/posts/{draft['id']}/publish", headers=author.headers)
    assert again.json()["publishedAt"] == published.json()["publishedAt"]
    assert (await client.get(f"/posts/{draft['id']}")).status_code == 200


async def test_the_seed_client_reads_posts_and_not_others_drafts(
    blog_url: str, internal_keys: dict[str, str], new_author: Any
) -> None:
    """comm's BlogServiceClient.get_post, as the comment service calls it."""
    author = new_author()
    public, draft = await author.post(), await author.post(draft=True)
    caller = CommSettings(
        blog_service_url=blog_url,
        service_name="comment",
        internal_token_key=internal_keys["COMMENT_INTERNAL_TOKEN_KEY"],
    )
    async with BlogServiceClient(settings=caller) as blog:
        post = await blog.get_post(uuid.UUID(public["id"]))
        assert (post.id, post.slug, post.title, post.author_id) == (
            uuid.UUID(public["id"]),
            public["slug"],
            public["title"],
            author.id,
        )
        with pytest.raises(UpstreamClientError) as refused:
            await blog.get_post(uuid.UUID(draft["id"]))
        assert refused.value.status == 404
        own = await blog.get_post(uuid.UUID(draft["id"]), identity=Identity(user_id=author.id))
        assert own.id == uuid.UUID(draft["id"])


async def test_unknown_posts_are_404_in_the_error_shape(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    missing = uuid.uuid4()
    for response in (
        await client.get(f"/posts/{missing}"),
        await client.get("/posts/by-slug/no-such-post-here"),
        await client.patch(f"/posts/{missing}", json={"title": "x"}, headers=author.headers),
        await client.put(f"/posts/{missing}/favorite", headers=author.headers),
    ):
        assert response.status_code == 404
        assert response.json() == {"errors": {"body": ["post not found"]}}


async def test_update_moves_categories_and_suffixes_a_taken_slug(client: httpx.AsyncClient, new_author: Any) -> None:
    author, admin = new_author(), new_author(frozenset({"admin"}))
    category = f"moved-{uuid.uuid4().hex[:6]}"
    await client.post("/categories", json={"name": category}, headers=admin.headers)
    first = await author.post(title=f"Taken {category}")
    second = await author.post(title="Something else")
    url = f"/posts/{second['id']}"
    moved = await client.patch(url, json={"title": first["title"], "category": category}, headers=author.headers)
    assert moved.status_code == 200, moved.text
    assert moved.json()["slug"].startswith(first["slug"] + "-")
    assert moved.json()["category"] == {"slug": category, "name": category}
    kept = await client.patch(url, json={"description": "new"}, headers=author.headers)
    assert (kept.json()["category"], kept.json()["slug"]) == (moved.json()["category"], moved.json()["slug"])
    removed = await client.patch(url, json={"category": None}, headers=author.headers)
    assert removed.json()["category"] is None
    unknown = await client.patch(url, json={"category": "no-such-category"}, headers=author.headers)
    assert unknown.status_code == 422
    assert (await client.get(url)).json() == removed.json()
