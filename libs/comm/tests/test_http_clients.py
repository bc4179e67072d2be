"""The typed clients: the seed's endpoints, minimal models, service tokens by default, typed errors."""

import json
import uuid

import httpx
import pytest

from comm.errors import UpstreamClientError
from comm.http.clients import (
    AuthServiceClient,
    BlogServiceClient,
    CommentServiceClient,
    TokenRejected,
    UserServiceClient,
)
from comm.settings import CommSettings
from comm.tokens import HEADER, Identity, InternalTokens

SETTINGS = CommSettings(service_name="gateway", http_retry_backoff_base_seconds=0.01)  # development keys
USER_ID = uuid.uuid4()
USER = {"id": str(USER_ID), "username": "alice", "email": "a@example.com", "roles": ["moderator"], "bio": None}


def _recording(status: int, body: object, seen: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body)

    return httpx.MockTransport(handler)


def _verify(request: httpx.Request, audience: str) -> Identity:
    return InternalTokens.development(audience).verify(request.headers[HEADER])


async def test_validate_token_returns_the_user() -> None:
    seen: list[httpx.Request] = []
    async with AuthServiceClient(settings=SETTINGS, transport=_recording(200, USER, seen)) as auth:
        user = await auth.validate_token("user-jwt")
    assert (user.id, user.username, user.roles) == (USER_ID, "alice", ["moderator"])
    assert (seen[0].method, str(seen[0].url)) == ("POST", "http://localhost:3001/auth/validate")
    assert json.loads(seen[0].content) == {"token": "user-jwt"}
    caller = _verify(seen[0], "auth")
    assert (caller.user_id, caller.caller) == (None, "gateway")  # the gateway acting on its own


async def test_validate_token_401_is_token_rejected() -> None:
    seen: list[httpx.Request] = []
    transport = _recording(401, {"errors": {"body": ["token expired"]}}, seen)
    async with AuthServiceClient(settings=SETTINGS, transport=transport) as auth:
        with pytest.raises(TokenRejected) as caught:
            await auth.validate_token("expired-jwt")
    assert caught.value.status == 401
    assert len(seen) == 1


async def test_validate_token_is_retried_on_transient_failures() -> None:
    answers = iter([httpx.Response(503), httpx.Response(200, json=USER)])
    transport = httpx.MockTransport(lambda request: next(answers))
    async with AuthServiceClient(settings=SETTINGS, transport=transport) as auth:
        assert (await auth.validate_token("user-jwt")).id == USER_ID


async def test_get_post_carries_the_users_identity() -> None:
    post_id, author = uuid.uuid4(), uuid.uuid4()
    body = {"id": str(post_id), "slug": "hello", "title": "Hello", "author_id": str(author), "body": "ignored"}
    seen: list[httpx.Request] = []
    reader = Identity(user_id=USER_ID, roles=frozenset({"reader"}))
    async with BlogServiceClient(settings=SETTINGS, transport=_recording(200, body, seen)) as blog:
        post = await blog.get_post(post_id, identity=reader)
    assert (post.id, post.slug, post.author_id) == (post_id, "hello", author)
    assert str(seen[0].url) == f"http://localhost:3002/posts/{post_id}"
    assert _verify(seen[0], "blog").user_id == USER_ID


async def test_profile_and_comment_placeholders() -> None:
    user_seen: list[httpx.Request] = []
    profile = {"user_id": str(USER_ID), "username": "alice", "bio": None, "image": None, "following": False}
    async with UserServiceClient(settings=SETTINGS, transport=_recording(200, profile, user_seen)) as users:
        assert (await users.get_profile(USER_ID)).username == "alice"
    assert str(user_seen[0].url) == f"http://localhost:3003/profiles/{USER_ID}"

    comment_id, post_id = uuid.uuid4(), uuid.uuid4()
    comment = {"id": str(comment_id), "post_id": str(post_id), "body": "hi", "status": "approved"}
    comment_seen: list[httpx.Request] = []
    async with CommentServiceClient(settings=SETTINGS, transport=_recording(200, comment, comment_seen)) as comments:
        assert (await comments.get_comment(comment_id)).status == "approved"
    assert str(comment_seen[0].url) == f"http://localhost:3004/comments/{comment_id}"


async def test_missing_post_passes_through_as_404() -> None:
    seen: list[httpx.Request] = []
    transport = _recording(404, {"errors": {"body": ["article not found"]}}, seen)
    async with BlogServiceClient(settings=SETTINGS, transport=transport) as blog:
        with pytest.raises(UpstreamClientError) as caught:
            await blog.get_post(uuid.uuid4())
    assert (caught.value.status, caught.value.errors) == (404, {"body": ["article not found"]})
