"""Request deadlines: a request's budget bounds its calls downstream, travels with them, and stops its own work."""

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI

from comm import deadlines
from comm.deadlines import DeadlineMiddleware
from comm.errors import UpstreamTimeout, install_error_handlers
from comm.http.client import ServiceClient
from comm.http.testing import Downstream, Reply
from comm.settings import CommSettings
from comm.testing import serve


def _settings() -> CommSettings:
    return CommSettings(service_name="gateway", http_retry_backoff_base_seconds=0.01)


def _front(client: ServiceClient, *, default_seconds: float | None) -> FastAPI:
    """An app calling `client` for each request, under a deadline."""
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(DeadlineMiddleware, default_seconds=default_seconds)

    @app.get("/proxy/{name}")
    async def proxy(name: str) -> dict[str, object]:
        await client.get(f"/{name}")
        return {}

    return app


async def test_a_call_downstream_is_told_what_is_left_and_times_out_with_the_deadline() -> None:
    downstream = Downstream()
    downstream.script("slow", Reply(delay=3.0), Reply(delay=3.0), Reply(delay=3.0))
    async with (
        serve(downstream.app, timeout_graceful_shutdown=0.5) as url,
        ServiceClient(downstream="blog", base_url=url, settings=_settings()) as client,
    ):
        transport = httpx.ASGITransport(_front(client, default_seconds=0.5))
        async with httpx.AsyncClient(transport=transport, base_url="http://front") as front:
            started = time.monotonic()
            response = await front.get("/proxy/slow")
            took = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert took < 0.5 + deadlines.GRACE_SECONDS + 0.2, took  # not the 5 s read timeout, nor retries after it
    budget = int(downstream.requests[0].headers[deadlines.HEADER])
    assert 300 < budget <= 500


async def test_the_callers_budget_header_is_the_services_deadline_and_stops_its_work() -> None:
    app = FastAPI()
    app.add_middleware(DeadlineMiddleware, default_seconds=None)

    @app.get("/work")
    async def work() -> dict[str, object]:
        await asyncio.sleep(5)
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as client:
        started = time.monotonic()
        response = await client.get("/work", headers={deadlines.HEADER: "200"})
        took = time.monotonic() - started
    assert response.status_code == 504
    assert response.json() == {"errors": {"body": ["request deadline exceeded"]}}
    assert took < 0.2 + deadlines.GRACE_SECONDS + 0.2, took


async def test_a_call_after_the_deadline_fails_at_once_without_reaching_the_downstream() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={})

    client = ServiceClient(
        downstream="blog", base_url="http://blog", settings=_settings(), transport=httpx.MockTransport(handler)
    )
    app = FastAPI()
    app.add_middleware(DeadlineMiddleware, default_seconds=0.05)

    @app.get("/late")
    async def late() -> dict[str, object]:
        await asyncio.sleep(0.06)  # past the deadline, within the grace
        with pytest.raises(UpstreamTimeout):
            await client.get("/anything")
        return {}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://svc") as front:
        assert (await front.get("/late")).status_code == 200
    assert seen == []
