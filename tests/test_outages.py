"""Faults: a service process killed, the broker unreachable; the gateway degrades and nothing is lost."""

import asyncio
import time

import httpx
from tests.conftest import Stack
from tests.test_flows import comment_count, copies, has_no_comments, new_article, post_id_of, signup

from comm.events.testing import wait_until


async def _profile_readable(api: httpx.AsyncClient, username: str) -> bool:
    return (await api.get(f"/profiles/{username}")).status_code == 200


async def _copied(stack: Stack, slug: str, username: str) -> bool:
    return await copies(stack, slug) == {username}


async def _count_is(api: httpx.AsyncClient, username: str, expected: int) -> bool:
    response = await api.get(f"/profiles/{username}")
    return response.status_code == 200 and response.json()["profile"]["commentCount"] == expected


async def test_user_service_killed_gives_fast_503s_and_recovers_without_loss(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    author, commenter = await signup(api), await signup(api)
    first, second = await new_article(api, author), await new_article(api, author)
    await wait_until(lambda: _copied(stack, first["slug"], author["username"]), within=10)
    await stack.kill("user")
    try:
        # An anonymous reader needs nothing of the user service: the author comes with the post.
        read = await api.get(f"/articles/{first['slug']}")
        assert read.status_code == 200, read.text
        assert read.json()["article"]["author"]["username"] == author["username"]
        for _ in range(3):  # the first answers after a few quick retries, the next ones from the open breaker
            started = time.monotonic()
            response = await api.get(f"/profiles/{author['username']}")
            assert response.status_code == 503, response.text
            assert time.monotonic() - started < 1.0
            assert int(response.headers["Retry-After"]) >= 1
            assert "errors" in response.json()
        assert (await api.get("/tags")).status_code == 200
        assert (await api.delete(f"/articles/{second['slug']}", headers=author["auth"])).status_code == 204
        written = await api.post(
            f"/articles/{first['slug']}/comments", json={"comment": {"body": "still"}}, headers=commenter["auth"]
        )
        assert written.status_code == 200, written.text
        newcomer = await signup(api)  # its profile can only come from user.created now
    finally:
        await stack.start("user")
    await wait_until(lambda: _profile_readable(api, newcomer["username"]), within=20)
    await wait_until(lambda: _count_is(api, commenter["username"], 1), within=20)


async def test_writes_succeed_while_the_broker_is_unreachable_and_take_effect_after(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    author, commenter = await signup(api), await signup(api)
    kept, doomed = await new_article(api, author), await new_article(api, author)
    doomed_id = await post_id_of(stack, doomed["slug"])
    await stack.broker.close()
    try:
        for article in (kept, doomed):
            response = await api.post(
                f"/articles/{article['slug']}/comments", json={"comment": {"body": "x"}}, headers=commenter["auth"]
            )
            assert response.status_code == 200, response.text
        assert (await api.delete(f"/articles/{doomed['slug']}", headers=author["auth"])).status_code == 204
        assert await comment_count(api, commenter["username"]) == 0  # counts come from events: none went out
    finally:
        await stack.broker.open()
    # Both comment.created events arrive, post.deleted cascades, and its comment.deleted takes one away again.
    await wait_until(lambda: has_no_comments(stack, doomed_id), within=30)
    await wait_until(lambda: _count_is(api, commenter["username"], 1), within=30)
    await asyncio.sleep(1)
    assert await comment_count(api, commenter["username"]) == 1
