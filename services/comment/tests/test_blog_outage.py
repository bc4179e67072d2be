"""Blog unreachable: creates fail fast with 503 and store nothing; once blog is back (and the breaker's reset
timeout has passed) they work again. A second comment app points at a port where nothing listens yet."""

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from comm.events.testing import wait_until
from comm.testing import free_port, serve
from comment.main import create_app


@pytest.fixture
async def cut_off(kit: Any) -> AsyncIterator[tuple[str, int]]:
    """A comment app whose blog URL is a free port; yields its URL and that port."""
    port = free_port()
    settings = kit.settings.model_copy(update={"blog_service_url": f"http://127.0.0.1:{port}"})
    async with serve(create_app(settings)) as url:
        yield url, port


async def test_creates_fail_fast_with_503_while_blog_is_down_and_work_when_it_is_back(
    kit: Any, cut_off: tuple[str, int]
) -> None:
    url, port = cut_off
    post_id = kit.blog.add()
    user = kit.user()
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:

        async def create() -> httpx.Response:
            response: httpx.Response = await client.post(
                f"/posts/{post_id}/comments", json={"body": "hello?"}, headers=user.headers
            )
            return response

        timings = []
        for _ in range(6):
            started = time.monotonic()
            response = await create()
            timings.append(time.monotonic() - started)
            assert response.status_code == 503, response.text
            assert int(response.headers["retry-after"]) >= 1
            assert set(response.json()) == {"errors"}
        # The first request makes its 3 attempts (refused at once, short backoff) and opens the breaker; from then
        # on requests fail fast without touching the network. Bounds are generous for a loaded 2-core machine.
        assert timings[0] < 3.0, timings
        assert max(timings[1:]) < 1.0, timings
        assert "circuit open" in response.json()["errors"]["body"][0]
        assert await kit.count_comments(post_id) == 0

        async with serve(kit.blog.app, port=port):
            outcome: list[int] = []

            async def created() -> bool:
                outcome.append((await create()).status_code)
                return outcome[-1] == 201

            await wait_until(created, within=10, interval=0.1)
        assert set(outcome) <= {201, 503}, outcome
    assert await kit.count_comments(post_id) == 1
