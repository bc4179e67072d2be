"""The edge: a public request starts a trace of its own unless GATEWAY_TRUST_TRACEPARENT is set, and its `baggage`
goes no further, whatever the setting (gateway.edge). Seen where it matters, in what the gateway sends downstream."""

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request

from comm.testing import serve
from gateway.main import create_app
from gateway.settings import GatewaySettings

CLIENT_TRACE = secrets.token_hex(16)  # the trace id a client's traceparent asks for


@pytest.fixture
async def blog() -> AsyncIterator[tuple[str, list[httpx.Headers]]]:
    """A stand-in for blog that answers `/tags` and keeps the headers of every call."""
    received: list[httpx.Headers] = []
    app = FastAPI()

    @app.get("/tags")
    async def tags(request: Request) -> dict[str, list[str]]:
        received.append(httpx.Headers(request.headers.raw))
        return {"tags": ["dragons"]}

    async with serve(app) as url:
        yield url, received


async def _downstream_headers(blog: tuple[str, list[httpx.Headers]], *, trust_traceparent: bool) -> httpx.Headers:
    url, received = blog
    settings = GatewaySettings(blog_service_url=url, metrics_port=0, trust_traceparent=trust_traceparent)
    async with serve(create_app(settings)) as gateway, httpx.AsyncClient(base_url=gateway) as client:
        sent = {"traceparent": f"00-{CLIENT_TRACE}-{secrets.token_hex(8)}-01", "baggage": "user=mallory," + "x" * 4000}
        response = await client.get("/api/tags", headers={**sent, "tracestate": "vendor=chosen"})
    assert response.json() == {"tags": ["dragons"]}, response.text
    return received[-1]


def trace_id(headers: httpx.Headers) -> str:
    return headers["traceparent"].split("-")[1]


async def test_a_public_request_starts_a_new_trace_and_its_baggage_stops_at_the_edge(
    blog: tuple[str, list[httpx.Headers]],
) -> None:
    downstream = await _downstream_headers(blog, trust_traceparent=False)
    assert "traceparent" in downstream  # the gateway's own trace goes on
    assert trace_id(downstream) != CLIENT_TRACE
    assert "baggage" not in downstream
    assert "vendor=chosen" not in downstream.get("tracestate", "")


async def test_a_trusted_traceparent_is_continued_baggage_still_dropped(blog: tuple[str, list[httpx.Headers]]) -> None:
    downstream = await _downstream_headers(blog, trust_traceparent=True)
    assert trace_id(downstream) == CLIENT_TRACE
    assert "baggage" not in downstream
