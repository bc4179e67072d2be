"""Retries against a real server that fails on purpose: only what is safe to repeat, within a deadline."""

import time
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from comm.errors import CircuitOpen, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from comm.http.client import ServiceClient
from comm.http.retry import is_idempotent, is_retryable
from comm.http.testing import Downstream, Reply
from comm.metrics import REGISTRY
from comm.settings import CommSettings
from comm.testing import serve

UNAVAILABLE = Reply(status=503, body={"errors": {"body": ["down"]}})


class Item(BaseModel):
    id: int
    name: str


def _settings(**changes: object) -> CommSettings:
    return CommSettings.model_validate(
        {
            "service_name": "retry-test",
            "http_retry_backoff_base_seconds": 0.01,
            "http_retry_backoff_max_seconds": 0.05,
            "http_breaker_failure_threshold": 1000,  # these tests are about retries alone
            **changes,
        }
    )


@pytest.fixture
async def downstream() -> AsyncIterator[tuple[Downstream, str]]:
    server = Downstream()
    async with serve(server.app, timeout_graceful_shutdown=0.5) as url:
        yield server, url


def _retries() -> float:
    return REGISTRY.get_sample_value("http_client_retries_total", {"service": "retry-test", "downstream": "blog"}) or 0


async def test_get_failing_twice_is_retried_and_returns(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", UNAVAILABLE, UNAVAILABLE)
    before = _retries()
    async with ServiceClient(downstream="blog", base_url=url, settings=_settings()) as client:
        assert await client.get("/items", response_model=Item) == Item(id=1, name="ok")
    assert server.hits["items"] == 3
    assert _retries() == before + 2


async def test_post_without_idempotency_key_is_sent_once(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", UNAVAILABLE, UNAVAILABLE)
    async with ServiceClient(downstream="blog", base_url=url, settings=_settings()) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.post("/items", json={"name": "x"}, response_model=Item)
    assert server.hits["items"] == 1


async def test_post_with_idempotency_key_is_retried(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", UNAVAILABLE, Reply(status=502))
    async with ServiceClient(downstream="blog", base_url=url, settings=_settings()) as client:
        made = await client.post("/items", json={"name": "x"}, headers={"Idempotency-Key": "k-1"}, response_model=Item)
    assert made.id == 1
    assert server.hits["items"] == 3
    assert all(request.headers["idempotency-key"] == "k-1" for request in server.requests)


@pytest.mark.parametrize("status", [500, 404, 422])
async def test_other_failures_are_not_retried(downstream: tuple[Downstream, str], status: int) -> None:
    server, url = downstream
    server.script("items", Reply(status=status))
    async with ServiceClient(downstream="blog", base_url=url, settings=_settings()) as client:
        with pytest.raises(Exception):  # noqa: B017, PT011 - which error is test_http_client's concern
            await client.get("/items", response_model=Item)
    assert server.hits["items"] == 1


async def test_retries_stop_at_the_attempt_limit(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", *[UNAVAILABLE] * 10)
    async with ServiceClient(downstream="blog", base_url=url, settings=_settings(http_retry_max_attempts=4)) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.get("/items", response_model=Item)
    assert server.hits["items"] == 4


async def test_retries_stop_at_the_deadline(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", *[UNAVAILABLE] * 1000)
    settings = _settings(
        http_retry_max_attempts=1000,
        http_retry_deadline_seconds=0.6,
        http_retry_backoff_base_seconds=0.05,
        http_retry_backoff_max_seconds=0.2,
    )
    async with ServiceClient(downstream="blog", base_url=url, settings=settings) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamUnavailable):
            await client.get("/items", response_model=Item)
        elapsed = time.monotonic() - started
    assert elapsed < 0.6 + 1.0  # the deadline and generous slack for a loaded machine
    assert 2 <= server.hits["items"] < 100


async def test_no_attempt_outlives_the_deadline(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", *[Reply(delay=2.0)] * 10)
    settings = _settings(http_retry_max_attempts=10, http_retry_deadline_seconds=1.0, http_read_timeout_seconds=0.6)
    async with ServiceClient(downstream="blog", base_url=url, settings=settings) as client:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await client.get("/items", response_model=Item)
        elapsed = time.monotonic() - started
    # Attempt 1 times out at 0.6 s; attempt 2 gets only what is left of the 1 s deadline.
    assert elapsed < 1.0 + 1.0
    assert 1 <= server.hits["items"] <= 3


def test_what_is_safe_to_repeat() -> None:
    assert all(is_idempotent(method, {}) for method in ("GET", "PUT", "DELETE"))
    assert not is_idempotent("POST", {})
    assert is_idempotent("POST", {"idempotency-key": "k"})
    assert is_retryable(UpstreamUnavailable())
    assert is_retryable(UpstreamTimeout())
    assert is_retryable(UpstreamBadResponse(upstream_status=502))
    assert not is_retryable(UpstreamBadResponse(upstream_status=500))
    assert not is_retryable(UpstreamBadResponse(upstream_status=200))  # a body that does not fit the model
    assert not is_retryable(CircuitOpen())
