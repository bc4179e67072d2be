"""Deadlines: a hung service (SIGSTOP of the process the stack started) answers within the gateway's deadline, the
breaker then fails fast, and everything recovers after SIGCONT with nothing lost."""

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

import httpx
from tests.conftest import Stack
from tests.test_flows import comment_count, new_article, signup

from comm.events.testing import wait_until

DEADLINE = 3.0  # GATEWAY_REQUEST_DEADLINE_SECONDS, as shipped
SLACK = 0.3  # the answer's own way back through the gateway, on a busy machine


@contextlib.contextmanager
def frozen(stack: Stack, service: str) -> Iterator[None]:
    """The service's process stopped (it holds its connections open and answers nothing), continued whatever happens."""
    process = stack.processes[service]
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


async def _timed_get(api: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await api.get(path)
    return response, time.monotonic() - started


async def _profile_ok(api: httpx.AsyncClient, username: str) -> bool:
    return (await api.get(f"/profiles/{username}")).status_code == 200


async def test_a_hung_service_answers_within_the_deadline_then_fast_from_the_breaker_and_recovers(
    stack: Stack, api: httpx.AsyncClient
) -> None:
    author, commenter = await signup(api), await signup(api)
    article = await new_article(api, author)
    path = f"/profiles/{author['username']}"
    with frozen(stack, "user"):
        # As many at once as the breaker's threshold (5): each times out at the deadline, together they open it.
        timed_out = await asyncio.gather(*(_timed_get(api, path) for _ in range(5)))
        for response, took in timed_out:
            assert response.status_code in (503, 504), response.text
            assert took < DEADLINE + SLACK, took
            assert "errors" in response.json()
        for _ in range(5):
            response, took = await _timed_get(api, path)
            assert response.status_code == 503, response.text
            assert took < 0.1, took
            assert int(response.headers["Retry-After"]) >= 1
        written = await api.post(
            f"/articles/{article['slug']}/comments", json={"comment": {"body": "meanwhile"}}, headers=commenter["auth"]
        )
        assert written.status_code == 200, written.text
    await wait_until(lambda: _profile_ok(api, author["username"]), within=15)
    # The comment's event waited in the user service's queue: counted once, nothing lost.
    await wait_until(lambda: _count_is(api, commenter["username"], 1), within=20)


async def _count_is(api: httpx.AsyncClient, username: str, expected: int) -> bool:
    return await comment_count(api, username) == expected
