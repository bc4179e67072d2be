"""Flows across services through the public API: moderation, cascades, counts, and the edges of the gateway."""

import asyncio
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from tests.conftest import Stack

from comm.events.testing import wait_until
from comm.testing import LocalApps, assert_matches_model, free_port, tokens_of
from comm.tokens import HEADER, Identity, InternalTokens
from gateway.schemas import (
    ModeratedComment,
    ModerationQueueResponse,
    MultipleArticlesResponse,
    MultipleCommentsResponse,
    ProfileResponse,
    SingleArticleResponse,
    SingleCommentResponse,
)


async def signup(api: httpx.AsyncClient, prefix: str = "u") -> dict[str, Any]:
    """Register a user; returns the RealWorld user object plus an `auth` header dict."""
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    response = await api.post(
        "/users", json={"user": {"username": name, "email": f"{name}@mail.com", "password": "password"}}
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()["user"]
    user["auth"] = {"Authorization": f"Token {user['token']}"}
    user["headers"] = response.headers
    return user


async def grant(stack: Stack, username: str, role: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auth", "grant-role", username, role, env=stack.env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()


async def login(api: httpx.AsyncClient, user: dict[str, Any]) -> dict[str, str]:
    response = await api.post("/users/login", json={"user": {"email": user["email"], "password": "password"}})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Token {response.json()['user']['token']}"}


async def new_article(api: httpx.AsyncClient, author: dict[str, Any]) -> dict[str, Any]:
    body = {"article": {"title": "On dragons", "description": "d", "body": "b", "tagList": ["dragons"]}}
    response = await api.post("/articles", json=body, headers=author["auth"])
    assert response.status_code == 201, response.text
    article: dict[str, Any] = response.json()["article"]
    return article


async def comment_count(api: httpx.AsyncClient, username: str) -> int:
    response = await api.get(f"/profiles/{username}")
    assert response.status_code == 200, response.text
    count: int = response.json()["profile"]["commentCount"]
    return count


async def test_anonymous_comment_waits_for_a_moderator(stack: Stack, api: httpx.AsyncClient) -> None:
    author, moderator = await signup(api), await signup(api, "mod")
    await grant(stack, moderator["username"], "moderator")
    moderator_auth = await login(api, moderator)  # a fresh token: its validation carries the new role
    slug = (await new_article(api, author))["slug"]

    created = await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "hi", "authorName": "Anna"}})
    assert created.status_code == 200, created.text
    comment = created.json()["comment"]
    assert (comment["status"], comment["author"]["username"]) == ("pending", "Anna")
    assert (await api.get(f"/articles/{slug}/comments")).json()["comments"] == []
    assert (await api.get("/moderation/comments", headers=author["auth"])).status_code == 403

    queue = (await api.get("/moderation/comments?limit=100", headers=moderator_auth)).json()["comments"]
    assert any(c["id"] == comment["id"] and c["articleSlug"] == slug for c in queue)
    approved = await api.post(f"/moderation/comments/{comment['id']}/approve", headers=moderator_auth)
    assert approved.json()["status"] == "approved"
    visible = (await api.get(f"/articles/{slug}/comments")).json()["comments"]
    assert [(c["id"], c["author"]["guest"]) for c in visible] == [(comment["id"], True)]


async def test_every_answer_built_as_plain_data_is_what_its_model_writes(stack: Stack, api: httpx.AsyncClient) -> None:
    """The gateway builds its articles, comments and profiles as plain data (comm.answers): each answer, signed in
    and anonymous, with a draft, a guest and a rejection among them, is still exactly its model's shape."""
    author, reader, moderator = await signup(api), await signup(api, "reader"), await signup(api, "mod")
    await grant(stack, moderator["username"], "moderator")
    moderator_auth = await login(api, moderator)
    draft = {"article": {"title": "Draft", "description": "d", "body": "b", "draft": True}}
    created = await api.post("/articles", json=draft, headers=author["auth"])
    assert created.status_code == 201, created.text
    slug, name = created.json()["article"]["slug"], author["username"]
    published = await api.post(f"/articles/{slug}/publish", headers=author["auth"])
    guest = await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "hi", "authorName": "Guest"}})
    answers = [
        (created, SingleArticleResponse),
        (published, SingleArticleResponse),
        (
            await api.put(f"/articles/{slug}", json={"article": {"body": "c"}}, headers=author["auth"]),
            SingleArticleResponse,
        ),
        (await api.post(f"/profiles/{name}/follow", headers=reader["auth"]), ProfileResponse),
        (await api.post(f"/articles/{slug}/favorite", headers=reader["auth"]), SingleArticleResponse),
        (await api.get(f"/articles/{slug}", headers=reader["auth"]), SingleArticleResponse),
        (await api.get(f"/articles/{slug}"), SingleArticleResponse),
        (await api.get(f"/articles?author={name}", headers=reader["auth"]), MultipleArticlesResponse),
        (await api.get("/articles?tag=no-such-tag"), MultipleArticlesResponse),
        (await api.get("/articles/feed", headers=reader["auth"]), MultipleArticlesResponse),
        (await api.delete(f"/articles/{slug}/favorite", headers=reader["auth"]), SingleArticleResponse),
        (guest, SingleCommentResponse),
        (
            await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "me"}}, headers=reader["auth"]),
            SingleCommentResponse,
        ),
        (await api.get(f"/articles/{slug}/comments", headers=reader["auth"]), MultipleCommentsResponse),
        (await api.get(f"/profiles/{name}"), ProfileResponse),
        (await api.delete(f"/profiles/{name}/follow", headers=reader["auth"]), ProfileResponse),
        (await api.get("/moderation/comments?limit=100", headers=moderator_auth), ModerationQueueResponse),
        (
            await api.post(
                f"/moderation/comments/{guest.json()['comment']['id']}/reject",
                json={"reason": "spam"},
                headers=moderator_auth,
            ),
            ModeratedComment,
        ),
    ]
    for answer, model in answers:
        assert answer.status_code in (200, 201), (str(answer.url), answer.text)
        assert answer.headers["content-type"] == "application/json"
        assert_matches_model(answer.json(), model)


async def test_an_anonymous_comment_may_not_go_by_a_registered_users_name(api: httpx.AsyncClient) -> None:
    author, known = await signup(api), await signup(api, "Known")
    slug = (await new_article(api, author))["slug"]
    # The name is refused as soon as comment's copy of the profiles has it (profile.updated, moments after signup).
    impersonating = {"comment": {"body": "it is me", "authorName": known["username"].upper()}}

    async def refused() -> bool:
        response = await api.post(f"/articles/{slug}/comments", json=impersonating)
        assert response.status_code in (200, 422), response.text
        return response.status_code == 422 and list(response.json()["errors"]) == ["authorName"]

    await wait_until(refused, within=10)
    signed_in = await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "me"}}, headers=known["auth"])
    assert signed_in.json()["comment"]["author"]["guest"] is False


async def test_comment_counts_follow_comments_and_article_deletion(stack: Stack, api: httpx.AsyncClient) -> None:
    author, commenter = await signup(api), await signup(api)
    article = await new_article(api, author)
    slug = article["slug"]
    for text in ("one", "two", "three"):
        response = await api.post(
            f"/articles/{slug}/comments", json={"comment": {"body": text}}, headers=commenter["auth"]
        )
        assert response.status_code == 200, response.text
    await wait_until(lambda: _count_is(api, commenter["username"], 3), within=10)

    post_id = await post_id_of(stack, slug)
    assert (await api.delete(f"/articles/{slug}", headers=author["auth"])).status_code == 204
    await wait_until(lambda: has_no_comments(stack, post_id), within=2)
    await wait_until(lambda: _count_is(api, commenter["username"], 0), within=2)


async def _count_is(api: httpx.AsyncClient, username: str, expected: int) -> bool:
    return await comment_count(api, username) == expected


def _internal(stack: Stack, audience: str) -> dict[str, str]:
    return {HEADER: tokens_of(stack.env, "gateway").mint(audience=audience, identity=Identity())}


async def post_id_of(stack: Stack, slug: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{stack.url('blog')}/posts/by-slug/{slug}", headers=_internal(stack, "blog"))
    post_id: str = response.json()["id"]
    return post_id


async def has_no_comments(stack: Stack, post_id: str) -> bool:
    """Asked of the comment service itself: the article is gone from the public API already."""
    async with httpx.AsyncClient() as client:
        url = f"{stack.url('comment')}/posts/{post_id}/comments"
        response = await client.get(url, headers=_internal(stack, "comment"))
    return bool(response.json()["total"] == 0)


async def test_forged_identity_is_ignored_and_internal_routes_are_not_exposed(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    victim = await signup(api)
    forged = InternalTokens.development("gateway")  # the gateway's name, a key this stack does not know
    async with httpx.AsyncClient() as client:
        validated = await client.post(
            f"{stack.url('auth')}/auth/validate", json={"token": victim["token"]}, headers=_internal(stack, "auth")
        )
    victim_id = uuid.UUID(validated.json()["id"])
    headers = {
        HEADER: forged.mint(audience="user", identity=Identity(user_id=victim_id)),
        "X-User-Id": str(victim_id),
    }
    assert (await api.put("/user", json={"user": {"bio": "pwned"}}, headers=headers)).status_code == 401
    assert (await api.get(f"/profiles/{victim['username']}")).json()["profile"]["bio"] is None
    async with httpx.AsyncClient(base_url=stack.url("gateway")) as root:
        for path in ("/auth/validate", "/api/auth/validate"):
            assert (await root.post(path, json={"token": victim["token"]})).status_code == 404


async def test_a_service_acts_for_a_user_only_where_the_route_takes_it(stack: Stack, api: httpx.AsyncClient) -> None:
    """Each app signs with its own key: comment's token is refused where only the gateway may call (403), one of
    the gateway's name with another key is not a token at all (401); blog's post read takes comment's (it asks
    whether a post is public before storing a comment)."""
    victim = await signup(api)
    slug = (await new_article(api, victim))["slug"]
    async with httpx.AsyncClient() as client:
        validated = await client.post(
            f"{stack.url('auth')}/auth/validate", json={"token": victim["token"]}, headers=_internal(stack, "auth")
        )
        as_victim = Identity(user_id=uuid.UUID(validated.json()["id"]))
        comment = tokens_of(stack.env, "comment")
        forged = InternalTokens.development("gateway")
        edit = {"bio": "pwned"}
        for tokens, status in ((comment, 403), (forged, 401)):
            headers = {HEADER: tokens.mint(audience="user", identity=as_victim)}
            assert (
                await client.patch(f"{stack.url('user')}/profiles/me", json=edit, headers=headers)
            ).status_code == status
        post_id = await post_id_of(stack, slug)
        headers = {HEADER: comment.mint(audience="blog", identity=as_victim)}
        assert (await client.get(f"{stack.url('blog')}/posts/{post_id}", headers=headers)).status_code == 200
        assert (await client.get(f"{stack.url('blog')}/posts", headers=headers)).status_code == 403
    assert (await api.get(f"/profiles/{victim['username']}")).json()["profile"]["bio"] is None


async def test_the_sixth_rapid_failed_login_is_rate_limited(api: httpx.AsyncClient) -> None:
    email = f"nobody{uuid.uuid4().hex[:8]}@mail.com"
    statuses = []
    for _ in range(6):
        response = await api.post("/users/login", json={"user": {"email": email, "password": "wrong-password"}})
        statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json() == {"errors": {"body": ["too many requests"]}}


async def _served(stack: Stack, service: str) -> dict[tuple[str, str], float]:
    """Requests a service has served so far, by (method, route template), from its own /metrics."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(stack.metrics_url(service))).text
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total":
                key = (sample.labels["method"], sample.labels["path"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


async def _embedded(stack: Stack, tag: str, count: int) -> bool:
    """Blog's read model has caught up: its own list of the tag's posts carries every author."""
    async with httpx.AsyncClient() as client:
        url = f"{stack.url('blog')}/posts"
        posts = (await client.get(url, params={"tag": tag, "limit": 100}, headers=_internal(stack, "blog"))).json()
    return len(posts["posts"]) == count and all(post["author"] for post in posts["posts"])


async def _calls(stack: Stack, api: httpx.AsyncClient, path: str, **kwargs: Any) -> dict[tuple[str, ...], float]:
    """The requests blog and user served while the gateway answered one GET of `path`."""
    before = {service: await _served(stack, service) for service in ("blog", "user")}
    response = await api.get(path, **kwargs)
    assert response.status_code == 200, response.text
    after = {service: await _served(stack, service) for service in ("blog", "user")}
    return {
        (service, *key): after[service][key] - before[service].get(key, 0.0)
        for service in after
        for key in after[service]
        if after[service][key] != before[service].get(key, 0.0) and key[1] != "/metrics"
    }


async def test_a_page_of_twenty_articles_costs_a_constant_number_of_calls(stack: Stack, api: httpx.AsyncClient) -> None:
    tag = f"bulk{uuid.uuid4().hex[:8]}"
    for _ in range(20):  # twenty authors: twenty profiles embedded from blog's read model
        author = await signup(api)
        body = {"article": {"title": "Bulk", "description": "d", "body": "b", "tagList": [tag]}}
        assert (await api.post("/articles", json=body, headers=author["auth"])).status_code == 201
    reader = await signup(api, "reader")
    await wait_until(lambda: _embedded(stack, tag, 20), within=10)
    page = f"/articles?tag={tag}&limit=20"
    assert len((await api.get(page)).json()["articles"]) == 20
    # Anonymous: the authors come with the posts, nothing to ask the user service.
    assert await _calls(stack, api, page) == {("blog", "GET", "/posts"): 1.0}
    # Signed in: whom the reader follows, asked once, then kept by the gateway (gateway.follows).
    assert await _calls(stack, api, page, headers=reader["auth"]) == {
        ("blog", "GET", "/posts"): 1.0,
        ("user", "GET", "/profiles/me/following"): 1.0,
    }
    assert await _calls(stack, api, page, headers=reader["auth"]) == {("blog", "GET", "/posts"): 1.0}


async def test_the_feed_costs_one_call_and_shows_its_authors_followed(stack: Stack, api: httpx.AsyncClient) -> None:
    tag = f"feed{uuid.uuid4().hex[:8]}"
    reader, writers = await signup(api, "reader"), [await signup(api, "writer") for _ in range(2)]
    for writer in writers:
        followed = await api.post(f"/profiles/{writer['username']}/follow", headers=reader["auth"])
        assert followed.status_code == 200, followed.text
        body = {"article": {"title": "Fed", "description": "d", "body": "b", "tagList": [tag]}}
        assert (await api.post("/articles", json=body, headers=writer["auth"])).status_code == 201
    await wait_until(lambda: _embedded(stack, tag, 2), within=10)
    # Whom the reader follows (asked again since they followed), then their posts: the set says `following` too.
    assert await _calls(stack, api, "/articles/feed", headers=reader["auth"]) == {
        ("user", "GET", "/profiles/me/following"): 1.0,
        ("blog", "POST", "/posts/feed"): 1.0,
    }
    assert await _calls(stack, api, "/articles/feed", headers=reader["auth"]) == {("blog", "POST", "/posts/feed"): 1.0}
    feed = (await api.get("/articles/feed", headers=reader["auth"])).json()["articles"]
    assert {(a["author"]["username"], a["author"]["following"]) for a in feed} == {
        (writer["username"], True) for writer in writers
    }


async def _following_shown(api: httpx.AsyncClient, reader: dict[str, Any], slug: str, tag: str) -> set[bool]:
    """`following` of the article's author, as the reader sees it on the article, the tag's list and its comments."""
    one = (await api.get(f"/articles/{slug}", headers=reader["auth"])).json()["article"]["author"]
    listed = (await api.get(f"/articles?tag={tag}", headers=reader["auth"])).json()["articles"]
    comments = (await api.get(f"/articles/{slug}/comments", headers=reader["auth"])).json()["comments"]
    authors = [one, *(article["author"] for article in listed), *(comment["author"] for comment in comments)]
    return {author["following"] for author in authors}


async def _followed_article(api: httpx.AsyncClient) -> tuple[dict[str, Any], str, str]:
    """An author with one article (a tag of its own) and a comment of theirs on it: the author, the slug, the tag."""
    author, tag = await signup(api, "followed"), f"follow{uuid.uuid4().hex[:8]}"
    body = {"article": {"title": "Followed", "description": "d", "body": "b", "tagList": [tag]}}
    created = await api.post("/articles", json=body, headers=author["auth"])
    assert created.status_code == 201, created.text
    slug = created.json()["article"]["slug"]
    commented = await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "c"}}, headers=author["auth"])
    assert commented.status_code == 200, commented.text
    return author, slug, tag


async def test_a_follow_shows_at_once_in_the_followers_next_reads(api: httpx.AsyncClient) -> None:
    """The gateway keeps whom each reader follows (gateway.follows) and drops it on their follow or unfollow."""
    (author, slug, tag), reader = await _followed_article(api), await signup(api, "reader")
    assert await _following_shown(api, reader, slug, tag) == {False}  # kept from here on
    for follow, shown in ((True, True), (False, False), (True, True)):
        path = f"/profiles/{author['username']}/follow"
        answer = await (api.post(path, headers=reader["auth"]) if follow else api.delete(path, headers=reader["auth"]))
        assert answer.status_code == 200, answer.text
        assert await _following_shown(api, reader, slug, tag) == {shown}


async def test_a_follow_through_one_gateway_replica_shows_at_once_through_another(stack: Stack, tmp_path: Path) -> None:
    """Two gateways sharing Redis, as replicas do in Kubernetes (REDIS_URL): what one kept, a follow through the
    other drops."""
    redis = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    replicas = []
    try:
        for number in range(2):
            port = free_port()
            env = {**stack.env, "REDIS_URL": redis, "GATEWAY_LISTEN_PORT": str(port)}
            env["GATEWAY_METRICS_PORT"] = str(free_port())
            replica = LocalApps(env=env, ports={**stack.ports, "gateway": port}, logs=tmp_path / str(number))
            replica.logs.mkdir()
            replicas.append(replica)
            await replica.start("gateway")
        async with (
            httpx.AsyncClient(base_url=replicas[0].gateway, timeout=15) as one,
            httpx.AsyncClient(base_url=replicas[1].gateway, timeout=15) as other,
        ):
            (author, slug, tag), reader = await _followed_article(one), await signup(one, "reader")
            assert await _following_shown(other, reader, slug, tag) == {False}  # kept, in Redis
            assert await _following_shown(one, reader, slug, tag) == {False}
            path = f"/profiles/{author['username']}/follow"
            assert (await one.post(path, headers=reader["auth"])).status_code == 200
            assert await _following_shown(other, reader, slug, tag) == {True}
            assert (await other.delete(path, headers=reader["auth"])).status_code == 200
            assert await _following_shown(one, reader, slug, tag) == {False}
    finally:
        for replica in replicas:
            await replica.stop_all()


async def test_a_rename_shows_on_the_authors_articles_and_comments(stack: Stack, api: httpx.AsyncClient) -> None:
    author, reader = await signup(api, "old"), await signup(api, "reader")
    article = await new_article(api, author)
    slug = article["slug"]
    commented = await api.post(f"/articles/{slug}/comments", json={"comment": {"body": "mine"}}, headers=author["auth"])
    assert commented.status_code == 200, commented.text
    new_name = f"new{uuid.uuid4().hex[:10]}"

    async def names(headers: dict[str, str] | None) -> set[str]:
        """The author's name on their article, in the article list, and on their comment, as `headers` reads it."""
        one = (await api.get(f"/articles/{slug}", headers=headers)).json()["article"]["author"]["username"]
        listed = (await api.get(f"/articles?author={new_name}", headers=headers)).json()["articles"]
        comments = (await api.get(f"/articles/{slug}/comments", headers=headers)).json()["comments"]
        return {one, *(a["author"]["username"] for a in listed), *(c["author"]["username"] for c in comments)}

    renamed = await api.put("/user", json={"user": {"username": new_name}}, headers=author["auth"])
    assert renamed.status_code == 200, renamed.text
    started = time.monotonic()
    own = {"Authorization": f"Token {renamed.json()['user']['token']}"}
    assert await names(own) == {new_name}  # at once for the user who renamed

    async def everyone_sees_it() -> bool:
        """Another user and an anonymous reader, and blog's and comment's own copies (not a fallback) too."""
        seen = await names(reader["auth"]) | await names(None) | await copies(stack, slug)
        return seen == {new_name}

    await wait_until(everyone_sees_it, within=2.0 - (time.monotonic() - started))


async def copies(stack: Stack, slug: str) -> set[str | None]:
    """The author's name in blog's and comment's read models, as those services answer an article and its comments."""
    async with httpx.AsyncClient() as client:
        url = f"{stack.url('blog')}/posts/by-slug/{slug}"
        post = (await client.get(url, headers=_internal(stack, "blog"))).json()
        url = f"{stack.url('comment')}/posts/{post['id']}/comments"
        comments = (await client.get(url, headers=_internal(stack, "comment"))).json()["comments"]
    authors = [post["author"], *(comment["author"] for comment in comments)]
    return {author["username"] if author else None for author in authors}


async def test_the_edge_of_the_public_api(stack: Stack, api: httpx.AsyncClient) -> None:
    user = await signup(api)
    too_big = await api.post(
        "/articles", content=b"x" * 300_000, headers={**user["auth"], "content-type": "application/json"}
    )
    assert too_big.status_code == 413
    for query in ("limit=0", "limit=1000", "offset=-1"):
        response = await api.get(f"/articles?{query}")
        assert response.status_code == 422, query
        assert set(response.json()) == {"errors"}
    assert (await api.get("/user", headers=user["auth"])).headers["cache-control"] == "no-store"
    login = {"user": {"email": user["email"], "password": "password"}}
    answers = [await api.post("/users/login", json=login), await api.get("/tags"), await api.get("/nowhere"), too_big]
    assert answers[0].headers["cache-control"] == "no-store"  # it carries a token
    assert user["headers"]["cache-control"] == "no-store"  # registration's answer too
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
    allowed = await api.options(
        "/articles", headers={"Origin": "http://localhost:4200", "Access-Control-Request-Method": "POST"}
    )
    assert allowed.headers["access-control-allow-origin"] == "http://localhost:4200"
    other = await api.options(
        "/articles", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_every_comment_of_an_article_is_listed(api: httpx.AsyncClient) -> None:
    """RealWorld has no paging for an article's comments: 250 written (past the comment service's page of 100) and
    one pending, 250 listed, newest first, each once."""
    author = await signup(api)
    slug = (await new_article(api, author))["slug"]

    async def write(n: int) -> int:
        body = {"comment": {"body": f"comment {n}"}}
        response = await api.post(f"/articles/{slug}/comments", json=body, headers=author["auth"])
        assert response.status_code in (200, 201), response.text
        number: int = response.json()["comment"]["id"]
        return number

    numbers = [
        number for start in range(0, 250, 25) for number in await asyncio.gather(*map(write, range(start, start + 25)))
    ]
    pending = {"comment": {"body": "held", "authorName": "A passer-by"}}
    assert (await api.post(f"/articles/{slug}/comments", json=pending)).status_code in (200, 201)
    for headers in ({}, author["auth"]):
        response = await api.get(f"/articles/{slug}/comments", headers=headers)
        assert response.status_code == 200, response.text
        listed = response.json()["comments"]
        assert sorted(comment["id"] for comment in listed) == sorted(numbers)
        created = [comment["createdAt"] for comment in listed]
        assert created == sorted(created, reverse=True)


async def test_a_draft_takes_no_comments_with_one_answer(api: httpx.AsyncClient) -> None:
    """Its author sees the draft but may not comment on it yet (403, the comment service's rule); anyone else is
    told there is no such article (404)."""
    author, other = await signup(api), await signup(api)
    body = {"article": {"title": "Unfinished", "description": "d", "body": "b", "draft": True}}
    created = await api.post("/articles", json=body, headers=author["auth"])
    assert created.status_code == 201, created.text
    slug = created.json()["article"]["slug"]
    comment = {"comment": {"body": "too early"}}
    own = await api.post(f"/articles/{slug}/comments", json=comment, headers=author["auth"])
    assert own.status_code == 403, own.text
    assert own.json() == {"errors": {"body": ["a draft takes no comments until it is published"]}}
    others = await api.post(f"/articles/{slug}/comments", json=comment, headers=other["auth"])
    assert others.status_code == 404, others.text


async def test_the_password_rule_is_auths(api: httpx.AsyncClient) -> None:
    name = f"pw{uuid.uuid4().hex[:10]}"
    user = {"username": name, "email": f"{name}@mail.com", "password": "short"}
    response = await api.post("/users", json={"user": user})
    assert response.status_code == 422, response.text
    assert response.json() == {"errors": {"password": ["must be between 8 and 128 characters"]}}
