"""The public API's security edges through the gateway: a body over the cap is 413 however it is sent."""

from collections.abc import AsyncIterator

import httpx
from tests.conftest import Stack
from tests.test_flows import signup

CAP = 256 * 1024  # GATEWAY_MAX_BODY_BYTES


async def test_a_chunked_body_over_the_cap_is_413_and_nothing_is_stored(stack: Stack, api: httpx.AsyncClient) -> None:
    user = await signup(api)

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: httpx sends it chunked
        yield b'{"article": {"title": "Chunked", "description": "d", "body": "'
        for _ in range(CAP // 4096 + 2):
            yield b"x" * 4096
        yield b'"}}'

    response = await api.post(
        "/articles", content=chunked(), headers={**user["auth"], "content-type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413, response.text
    assert list(response.json()) == ["errors"]
    assert list(response.json()["errors"]) == ["body"]
    assert response.headers["x-content-type-options"] == "nosniff"  # the edge's headers on the 413 too
    stored = await api.get("/articles", params={"author": user["username"], "drafts": "mine"}, headers=user["auth"])
    assert stored.json()["articlesCount"] == 0
