"""Favorites: idempotent, per viewer, and consistent under concurrent requests."""

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx


async def test_favorite_and_unfavorite_are_idempotent_and_per_viewer(
    client: httpx.AsyncClient, new_author: Any
) -> None:
    author, fan = new_author(), new_author()
    post = await author.post()
    url = f"/posts/{post['id']}/favorite"
    first, again = await client.put(url, headers=fan.headers), await client.put(url, headers=fan.headers)
    assert first.status_code == again.status_code == 200
    assert (again.json()["favorited"], again.json()["favoritesCount"]) == (True, 1)
    assert again.json()["body"] == post["body"]
    assert again.json()["updatedAt"] == post["updatedAt"]  # a favorite does not change the post
    seen_by_author = (await client.get(f"/posts/{post['id']}", headers=author.headers)).json()
    assert (seen_by_author["favorited"], seen_by_author["favoritesCount"]) == (False, 1)
    seen_by_nobody = (await client.get(f"/posts/{post['id']}")).json()
    assert (seen_by_nobody["favorited"], seen_by_nobody["favoritesCount"]) == (False, 1)
    removed = await client.delete(url, headers=fan.headers)
    removed_again = await client.delete(url, headers=fan.headers)
    assert (removed_again.json()["favorited"], removed_again.json()["favoritesCount"]) == (False, 0)
    assert removed.status_code == 200
    assert (await client.put(url)).status_code == 401


async def test_concurrent_favorites_and_unfavorites_lose_no_update(
    client: httpx.AsyncClient, new_author: Any, db: asyncpg.Connection
) -> None:
    """20 users at once: 10 who had favorited unfavorite, 10 new ones favorite; then the count is exact."""
    author = new_author()
    post = await author.post()
    url = f"/posts/{post['id']}/favorite"
    leaving = [new_author() for _ in range(10)]
    joining = [new_author() for _ in range(10)]
    await asyncio.gather(*(client.put(url, headers=user.headers) for user in leaving))
    responses = await asyncio.gather(
        *(client.delete(url, headers=user.headers) for user in leaving),
        *(client.put(url, headers=user.headers) for user in joining),
    )
    assert {response.status_code for response in responses} == {200}
    rows = await db.fetchval("SELECT count(*) FROM favorites WHERE post_id = $1", uuid.UUID(post["id"]))
    final = (await client.get(f"/posts/{post['id']}")).json()["favoritesCount"]
    assert rows == final == 10
    # Every request saw a count that some order of the requests produces: between 0 and 20.
    assert all(0 <= response.json()["favoritesCount"] <= 20 for response in responses)


async def test_twenty_users_favorite_at_once(client: httpx.AsyncClient, new_author: Any) -> None:
    author = new_author()
    post = await author.post()
    fans = [new_author() for _ in range(20)]
    responses = await asyncio.gather(*(client.put(f"/posts/{post['id']}/favorite", headers=f.headers) for f in fans))
    assert sorted(response.json()["favoritesCount"] for response in responses) == list(range(1, 21))
    assert (await client.get(f"/posts/{post['id']}")).json()["favoritesCount"] == 20
