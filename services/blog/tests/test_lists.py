"""Lists: RealWorld's filters, the feed, pagination, drafts on request, lookups and tags."""

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI


def _slugs(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [post["slug"] for post in response.json()["posts"]]


async def test_newest_first_with_total_count_and_pages(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    posts = [await author.post() for _ in range(5)]
    newest_first = [post["slug"] for post in reversed(posts)]
    everything = await client.get("/posts", params={"author_id": str(author.id)})
    assert _slugs(everything) == newest_first
    assert everything.json()["postsCount"] == 5
    assert "body" not in everything.json()["posts"][0]
    pages = [
        await client.get("/posts", params={"author_id": str(author.id), "limit": 2, "offset": offset})
        for offset in (0, 2, 4, 6)
    ]
    assert [_slugs(page) for page in pages] == [newest_first[0:2], newest_first[2:4], newest_first[4:], []]
    assert {page.json()["postsCount"] for page in pages} == {5}
    unfiltered = _slugs(await client.get("/posts", params={"limit": 100}))
    assert unfiltered.index(newest_first[0]) < unfiltered.index(newest_first[-1])


async def test_filters_by_tag_author_favorited_and_category_combine(client: httpx.AsyncClient, new_author: Any) -> None:
    alice, bob = new_author(), new_author()
    admin = new_author(frozenset({"admin"}))
    category = f"cat-{uuid.uuid4().hex[:8]}"
    created = await client.post("/categories", json={"name": category}, headers=admin.headers)
    assert created.status_code == 201, created.text
    tag = f"tag-{uuid.uuid4().hex[:8]}"
    a1 = await alice.post(tagList=[tag, "zzz"], category=category)
    a2 = await alice.post(tagList=["other"])
    b1 = await bob.post(tagList=[tag])
    await client.put(f"/posts/{a2['id']}/favorite", headers=bob.headers)
    await client.put(f"/posts/{b1['id']}/favorite", headers=bob.headers)

    async def listed(**params: str) -> list[str]:
        return _slugs(await client.get("/posts", params=params, headers=bob.headers))

    assert await listed(tag=tag) == [b1["slug"], a1["slug"]]
    assert await listed(tag=tag, author_id=str(alice.id)) == [a1["slug"]]
    assert await listed(favorited_by=str(bob.id)) == [b1["slug"], a2["slug"]]
    assert await listed(favorited_by=str(bob.id), author_id=str(alice.id)) == [a2["slug"]]
    assert await listed(category=category) == [a1["slug"]]
    assert await listed(category="no-such-category") == []
    assert await listed(author_id=str(uuid.uuid4())) == []
    assert await listed(tag="no-such-tag-anywhere") == []
    page = (await client.get("/posts", params={"favorited_by": str(bob.id)}, headers=bob.headers)).json()
    assert [(post["favorited"], post["favoritesCount"]) for post in page["posts"]] == [(True, 1), (True, 1)]
    assert page["posts"][0]["tagList"] == [tag]
    with_category = (await client.get("/posts", params={"category": category})).json()["posts"][0]
    assert with_category["category"] == {"slug": category, "name": category}
    assert with_category["tagList"] == sorted([tag, "zzz"])


async def test_feed_takes_thousands_of_authors_and_shows_only_theirs(
    client: httpx.AsyncClient, new_author: Any
) -> None:
    followed, also_followed, stranger = new_author(), new_author(), new_author()
    posts = [await followed.post(), await stranger.post(), await also_followed.post()]
    await followed.post(draft=True)
    authors = [str(uuid.uuid4()) for _ in range(9_998)] + [str(followed.id), str(also_followed.id)]
    feed = await client.post("/posts/feed", json={"author_ids": authors}, headers=stranger.headers)
    assert _slugs(feed) == [posts[2]["slug"], posts[0]["slug"]]
    assert feed.json()["postsCount"] == 2
    paged = await client.post("/posts/feed", params={"limit": 1, "offset": 1}, json={"author_ids": authors})
    assert (_slugs(paged), paged.json()["postsCount"]) == ([posts[0]["slug"]], 2)
    empty = await client.post("/posts/feed", json={"author_ids": []})
    assert empty.json() == {"posts": [], "postsCount": 0}
    too_many = await client.post("/posts/feed", json={"author_ids": [str(uuid.uuid4())] * 10_001})
    assert too_many.status_code == 422
    assert set(too_many.json()) == {"errors"}


async def test_drafts_mine_and_only_list_the_viewers_own_drafts(client: httpx.AsyncClient, new_author: Any) -> None:
    author, other = new_author(), new_author()
    public, draft = await author.post(), await author.post(draft=True)
    await other.post(draft=True)
    params = {"author_id": str(author.id)}
    mine = await client.get("/posts", params={**params, "drafts": "mine"}, headers=author.headers)
    assert _slugs(mine) == [draft["slug"], public["slug"]]
    only = await client.get("/posts", params={"drafts": "only", "limit": 100}, headers=author.headers)
    assert _slugs(only) == [draft["slug"]]
    seen_by_other = await client.get("/posts", params={**params, "drafts": "mine"}, headers=other.headers)
    assert _slugs(seen_by_other) == [public["slug"]]
    anonymous = await client.get("/posts", params={**params, "drafts": "mine"})
    assert anonymous.status_code == 401
    unknown_mode = await client.get("/posts", params={"drafts": "all"}, headers=author.headers)
    assert unknown_mode.status_code == 422


async def test_lookup_returns_the_visible_posts_among_ids(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    public, draft = await author.post(), await author.post(draft=True)
    ids = [public["id"], draft["id"], str(uuid.uuid4())]
    anonymous = (await client.post("/posts/lookup", json={"ids": ids})).json()["posts"]
    assert [post["id"] for post in anonymous] == [public["id"]]
    own = (await client.post("/posts/lookup", json={"ids": [*ids, public["id"]]}, headers=author.headers)).json()
    assert [post["id"] for post in own["posts"]] == [public["id"], draft["id"]]
    reversed_order = await client.post("/posts/lookup", json={"ids": ids[::-1]}, headers=author.headers)
    assert [post["id"] for post in reversed_order.json()["posts"]] == [draft["id"], public["id"]]
    assert "body" not in own["posts"][0]


async def test_tags_are_the_published_ones_sorted(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    unique = uuid.uuid4().hex[:8]
    await author.post(tagList=[f"b-{unique}", f"A-{unique}", f"é-{unique}"])
    await author.post(tagList=[f"hidden-{unique}"], draft=True)
    response = await client.get("/tags")
    assert response.status_code == 200
    tags = response.json()["tags"]
    assert tags == sorted(tags)
    assert {f"b-{unique}", f"A-{unique}", f"é-{unique}"} <= set(tags)
    assert f"hidden-{unique}" not in tags


async def test_a_page_costs_the_same_queries_whatever_its_size(
    client: httpx.AsyncClient, new_author: Any, app: FastAPI
) -> None:
    """favorited, favoritesCount and the total come with the page: one query for 1 post or 12, none per post; a
    page past the last asks the total alone."""
    author, fan = new_author(), new_author()
    posts = [await author.post() for _ in range(12)]
    await asyncio.gather(*(client.put(f"/posts/{post['id']}/favorite", headers=fan.headers) for post in posts[::2]))
    statements: list[str] = []
    pool = app.state.read_pool

    class Recording:  # the read pool, every statement a read runs through it written down
        def __getattr__(self, name: str) -> Any:
            run = getattr(pool, name)

            async def recorded(sql: str, *args: Any) -> Any:
                statements.append(sql)
                return await run(sql, *args)

            return recorded

    async def queries_for(limit: int, offset: int = 0) -> int:
        statements.clear()
        params = {"author_id": str(author.id), "limit": limit, "offset": offset}
        response = await client.get("/posts", params=params, headers=fan.headers)
        assert len(response.json()["posts"]) == max(0, min(limit, 12 - offset))
        assert response.json()["postsCount"] == 12
        return len(statements)

    app.state.read_pool = Recording()
    try:
        assert await queries_for(1) == await queries_for(12) == await queries_for(5, offset=10) == 1
        assert await queries_for(5, offset=12) == 2
    finally:
        app.state.read_pool = pool
    page = (await client.get("/posts", params={"author_id": str(author.id)}, headers=fan.headers)).json()
    assert [post["favorited"] for post in page["posts"]] == [i % 2 == 1 for i in range(12)]
    assert [post["favoritesCount"] for post in page["posts"]] == [i % 2 for i in range(12)]


def test_a_post_row_is_taken_apart_in_the_order_its_statement_selects() -> None:
    # _answer unpacks rows by position; each column here holds its own name, so any two out of step show. A list's
    # statement is the summary's with its total added after (blog.queries._list_statements).
    from blog.queries import _answer, _select_posts

    for statement in (_select_posts(body=True), _select_posts(body=False)):
        names = [column.key for column in statement.selected_columns]
        row = tuple(["<tag_list>"] if name == "tag_list" else f"<{name}>" for name in names)
        assert _answer(row) == {  # type: ignore[arg-type]  # a tuple unpacks as a Record does
            "id": "<id>",
            "slug": "<slug>",
            "title": "<title>",
            "description": "<description>",
            "tagList": ["<tag_list>"],
            "category": {"slug": "<category_slug>", "name": "<category_name>"},
            "author_id": "<author_id>",
            "author": {
                "username": "<author_username>",
                "bio": "<author_bio>",
                "image": "<author_image>",
                "commentCount": "<author_comment_count>",
            },
            "published": True,
            "publishedAt": "<published_at>",
            "createdAt": "<created_at>",
            "updatedAt": "<updated_at>",
            "favorited": "<favorited>",
            "favoritesCount": "<favorites_count>",
        }
