"""The circuit breaker: opens, fails fast, lets exactly one probe through when half-open, closes or re-opens."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from comm.errors import CircuitOpen, UpstreamClientError, UpstreamUnavailable
from comm.http.breaker import CircuitBreaker, State
from comm.http.client import ServiceClient
from comm.http.testing import Downstream, Reply
from comm.metrics import REGISTRY
from comm.settings import CommSettings
from comm.testing import serve

UNAVAILABLE = Reply(status=503)


class Item(BaseModel):
    id: int
    name: str


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock, downstream: str = "unit") -> CircuitBreaker:
    return CircuitBreaker(
        service="breaker-test", downstream=downstream, failure_threshold=3, reset_timeout=10, clock=clock
    )


def _fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(ConnectionRefusedError), breaker.guard():
        raise ConnectionRefusedError


def _succeed(breaker: CircuitBreaker) -> None:
    with breaker.guard():
        pass


def test_opens_after_consecutive_failures_only() -> None:
    breaker = _breaker(Clock())
    _fail(breaker)
    _fail(breaker)
    _succeed(breaker)  # resets the count
    _fail(breaker)
    _fail(breaker)
    assert breaker.state is State.CLOSED
    _fail(breaker)
    assert breaker.state is State.OPEN


def test_open_fails_fast_with_time_until_half_open() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        _fail(breaker)
    clock.now += 4
    with pytest.raises(CircuitOpen) as caught:
        breaker.guard()
    assert caught.value.retry_after == pytest.approx(6)


def test_a_failed_answer_counts_like_an_exception() -> None:
    breaker = _breaker(Clock())
    for _ in range(3):
        with breaker.guard() as call:
            call.failed = True  # e.g. the downstream answered 503
    assert breaker.state is State.OPEN


def test_half_open_admits_one_probe_then_closes_or_reopens() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        _fail(breaker)
    clock.now += 10
    probe = breaker.guard()
    assert probe.probe
    with pytest.raises(CircuitOpen):
        breaker.guard()  # the probe is in flight
    with pytest.raises(ConnectionResetError), probe:
        raise ConnectionResetError
    assert breaker.state is State.OPEN
    clock.now += 10
    with breaker.guard() as probe:
        assert probe.probe
    assert breaker.state is State.CLOSED


def test_a_cancelled_probe_lets_the_next_call_probe() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(3):
        _fail(breaker)
    clock.now += 10
    with pytest.raises(asyncio.CancelledError), breaker.guard():
        raise asyncio.CancelledError
    assert breaker.state is State.HALF_OPEN
    assert breaker.guard().probe


def test_late_answers_of_calls_admitted_before_opening_do_not_count() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    early = breaker.guard()
    for _ in range(3):
        _fail(breaker)
    with early:  # admitted while closed, answers while open
        pass
    assert breaker.state is State.OPEN


def test_state_and_transitions_are_metrics() -> None:
    clock = Clock()
    breaker = _breaker(clock, downstream="metered")
    labels = {"service": "breaker-test", "downstream": "metered"}

    def transitions(to: str) -> float:
        return REGISTRY.get_sample_value("circuit_breaker_transitions_total", labels | {"to": to}) or 0.0

    assert REGISTRY.get_sample_value("circuit_breaker_state", labels) == 0
    for _ in range(3):
        _fail(breaker)
    assert REGISTRY.get_sample_value("circuit_breaker_state", labels) == 1
    clock.now += 10
    with breaker.guard():
        assert REGISTRY.get_sample_value("circuit_breaker_state", labels) == 2
    assert REGISTRY.get_sample_value("circuit_breaker_state", labels) == 0
    assert (transitions("open"), transitions("half_open"), transitions("closed")) == (1, 1, 1)


# ---- Through ServiceClient against a real server ------------------------------------------------------------


@pytest.fixture
async def downstream() -> AsyncIterator[tuple[Downstream, str]]:
    server = Downstream()
    async with serve(server.app, timeout_graceful_shutdown=0.5) as url:
        yield server, url


def _client(url: str, clock: Clock, **changes: object) -> ServiceClient:
    settings = CommSettings.model_validate(
        {
            "service_name": "breaker-test",
            "http_breaker_failure_threshold": 3,
            "http_breaker_reset_timeout_seconds": 10,
            "http_retry_max_attempts": 1,
            **changes,
        }
    )
    return ServiceClient(downstream="blog", base_url=url, settings=settings, clock=clock)


async def _open(client: ServiceClient, server: Downstream) -> None:
    server.script("items", *[UNAVAILABLE] * 3)
    for _ in range(3):
        with pytest.raises(UpstreamUnavailable):
            await client.get("/items", response_model=Item)
    assert client.breaker.state is State.OPEN


async def test_open_breaker_fails_fast_without_touching_the_network(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    async with _client(url, Clock()) as client:
        await _open(client, server)
        hits = server.hits["items"]
        for _ in range(10):
            with pytest.raises(CircuitOpen):
                await client.get("/items", response_model=Item)
    assert server.hits["items"] == hits == 3


async def test_downstream_4xx_does_not_open_the_breaker(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", *[Reply(status=404)] * 5)
    async with _client(url, Clock()) as client:
        for _ in range(5):
            with pytest.raises(UpstreamClientError):
                await client.get("/items", response_model=Item)
        assert client.breaker.state is State.CLOSED


async def test_half_open_sends_exactly_one_probe_and_closes(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    clock = Clock()
    async with _client(url, clock) as client:
        await _open(client, server)
        clock.now += 10
        server.script("items", Reply(delay=0.5))  # a slow probe: the other 49 calls overlap it
        results = await asyncio.gather(
            *(client.get("/items", response_model=Item) for _ in range(50)), return_exceptions=True
        )
        assert server.hits["items"] == 3 + 1
        assert sum(isinstance(result, Item) for result in results) == 1
        assert sum(isinstance(result, CircuitOpen) for result in results) == 49
        assert client.breaker.state is State.CLOSED
        assert await client.get("/items", response_model=Item) == Item(id=1, name="ok")


async def test_failed_probe_reopens(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    clock = Clock()
    async with _client(url, clock) as client:
        await _open(client, server)
        clock.now += 10
        server.script("items", UNAVAILABLE)
        with pytest.raises(UpstreamUnavailable):
            await client.get("/items", response_model=Item)
        assert client.breaker.state is State.OPEN
        with pytest.raises(CircuitOpen):
            await client.get("/items", response_model=Item)
    assert server.hits["items"] == 4


async def test_retries_end_when_the_breaker_opens(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    server.script("items", *[UNAVAILABLE] * 10)
    async with _client(url, Clock(), http_retry_max_attempts=10, http_retry_backoff_base_seconds=0.01) as client:
        with pytest.raises(CircuitOpen):
            await client.get("/items", response_model=Item)
    assert server.hits["items"] == 3  # each attempt passes the breaker; the 4th meets it open


async def test_a_cancelled_probe_frees_the_slot(downstream: tuple[Downstream, str]) -> None:
    server, url = downstream
    clock = Clock()
    async with _client(url, clock) as client:
        await _open(client, server)
        clock.now += 10
        server.script("items", Reply(delay=2.0))
        probe = asyncio.create_task(client.get("/items", response_model=Item))
        await asyncio.sleep(0.2)
        with pytest.raises(CircuitOpen):
            await client.get("/items", response_model=Item)  # the probe holds the slot
        probe.cancel()  # e.g. the caller's own client went away
        with pytest.raises(asyncio.CancelledError):
            await probe
        assert await client.get("/items", response_model=Item) == Item(id=1, name="ok")  # the next probe
        assert client.breaker.state is State.CLOSED
