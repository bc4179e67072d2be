"""ServiceClient: validated answers, tokens, trace context, and failures mapped onto the upstream errors."""

import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import BaseModel

from comm.errors import (
    UpstreamBadResponse,
    UpstreamClientError,
    UpstreamTimeout,
    UpstreamUnavailable,
    install_error_handlers,
)
from comm.http.client import ServiceClient
from comm.http.testing import Downstream, Reply
from comm.settings import CommSettings
from comm.testing import free_port, serve
from comm.tokens import HEADER, Identity, InternalTokens


class Item(BaseModel):
    id: int
    name: str


def _settings(**changes: object) -> CommSettings:
    return CommSettings.model_validate(
        {
            "service_name": "gateway",
            "http_retry_backoff_base_seconds": 0.01,
            "http_retry_backoff_max_seconds": 0.05,
            **changes,
        }
    )


def _mock(handler: Callable[[httpx.Request], httpx.Response], **settings: object) -> ServiceClient:
    return ServiceClient(
        downstream="blog",
        base_url="http://blog",
        settings=_settings(**settings),
        transport=httpx.MockTransport(handler),
    )


async def test_answer_is_validated_into_the_model() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 7, "name": "seven", "extra": "ignored by the model"})

    async with _mock(handler) as client:
        item = await client.get("/items/{item_id}", path_params={"item_id": 7}, response_model=Item)
    assert item == Item(id=7, name="seven")
    assert str(seen[0].url) == "http://blog/items/7"
    assert seen[0].headers["accept"] == "application/json"
    assert HEADER.lower() not in seen[0].headers  # no identity, no token


async def test_path_params_are_one_segment_each_and_params_are_encoded() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    async with _mock(handler) as client:
        await client.get("/posts/{slug}", path_params={"slug": "../a/b c"}, params={"q": "x&y", "limit": 5})
    assert seen[0].url.raw_path == b"/posts/..%2Fa%2Fb%20c?q=x%26y&limit=5"


async def test_identity_travels_as_an_internal_token_for_the_downstream() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    user = Identity(user_id=uuid.uuid4(), roles=frozenset({"moderator"}))
    async with _mock(handler) as client:
        assert await client.delete("/items/{item_id}", path_params={"item_id": 1}, identity=user) is None
    blog = InternalTokens.development("blog")  # the settings name no keys: development keys on both sides
    received = blog.verify(seen[0].headers[HEADER])
    assert (received.user_id, received.roles, received.caller) == (user.user_id, user.roles, "gateway")


async def test_json_body_is_serialised_with_models_and_uuids() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"id": 1, "name": "made"})

    post_id = uuid.uuid4()
    async with _mock(handler) as client:
        made = await client.post("/items", json={"item": Item(id=1, name="a"), "post": post_id}, response_model=Item)
    assert made.name == "made"
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].content == b'{"item":{"id":1,"name":"a"},"post":"%s"}' % str(post_id).encode()


async def test_downstream_4xx_passes_through_with_its_errors() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(404, json={"errors": {"body": ["article not found"]}})

    async with _mock(handler) as client:
        with pytest.raises(UpstreamClientError) as caught:
            await client.get("/posts/x", response_model=Item)
    assert (caught.value.status, caught.value.errors) == (404, {"body": ["article not found"]})
    assert calls == 1  # a 4xx is not retried


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(200, json={"id": "not a number"}), UpstreamBadResponse),
        (httpx.Response(200, content=b"<html>"), UpstreamBadResponse),
        (httpx.Response(500, json={}), UpstreamBadResponse),
        (httpx.Response(302, headers={"location": "/elsewhere"}), UpstreamBadResponse),
        (httpx.Response(503, headers={"retry-after": "9"}), UpstreamUnavailable),
        (httpx.Response(504), UpstreamTimeout),
    ],
)
async def test_bad_answers_map_to_upstream_errors(response: httpx.Response, error: type[Exception]) -> None:
    async with _mock(lambda request: response, http_retry_max_attempts=1) as client:
        with pytest.raises(error) as caught:
            await client.get("/items/1", response_model=Item)
    if response.status_code == 503:
        assert caught.value.retry_after == 9.0  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectError("refused"), UpstreamUnavailable),
        (httpx.RemoteProtocolError("reset"), UpstreamUnavailable),
        (httpx.ReadTimeout("slow"), UpstreamTimeout),
        (httpx.ConnectTimeout("slow"), UpstreamTimeout),
    ],
)
async def test_transport_failures_map_to_upstream_errors(exc: Exception, error: type[Exception]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    async with _mock(handler, http_retry_max_attempts=1) as client:
        with pytest.raises(error):
            await client.get("/items/1", response_model=Item)


async def test_client_span_and_traceparent() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": 1, "name": "a"})

    client = ServiceClient(
        downstream="blog",
        base_url="http://blog",
        settings=_settings(),
        transport=httpx.MockTransport(handler),
        tracer_provider=provider,
    )
    with provider.get_tracer("test").start_as_current_span("incoming") as parent:
        await client.get("/items/{item_id}", path_params={"item_id": 1}, response_model=Item)
    span = next(span for span in exporter.get_finished_spans() if span.kind is trace.SpanKind.CLIENT)
    assert span.name == "GET /items/{item_id}"
    assert span.attributes is not None
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["peer.service"] == "blog"
    trace_id = format(parent.get_span_context().trace_id, "032x")
    span_id = format(span.context.span_id, "016x")
    assert seen[0].headers["traceparent"].startswith(f"00-{trace_id}-{span_id}-")


def _front(client: ServiceClient) -> FastAPI:
    """An app that calls the downstream, rendering failures with the shared handlers."""
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/proxy")
    async def proxy() -> Item:
        return await client.get("/slow", response_model=Item)

    return app


async def test_downstream_timeout_is_upstream_timeout_then_504() -> None:
    downstream = Downstream()
    downstream.script("slow", Reply(delay=3.0), Reply(delay=3.0))
    settings = _settings(http_read_timeout_seconds=0.3, http_retry_max_attempts=1)
    async with (
        serve(downstream.app, timeout_graceful_shutdown=0.5) as url,
        ServiceClient(downstream="blog", base_url=url, settings=settings) as client,
    ):
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await client.get("/slow", response_model=Item)
        assert time.monotonic() - started < 0.3 + 1.0  # the read timeout and generous slack, not the 3 s
        front = httpx.AsyncClient(transport=httpx.ASGITransport(_front(client)), base_url="http://front")
        async with front:
            response = await front.get("/proxy")
    assert response.status_code == 504
    assert response.json() == {"errors": {"body": ["upstream service timed out"]}}
    assert response.headers["retry-after"] == "1"


async def test_connection_refused_is_upstream_unavailable_then_503() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = _settings(http_retry_max_attempts=1)
    async with ServiceClient(downstream="blog", base_url=url, settings=settings) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.get("/slow", response_model=Item)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(_front(client)), base_url="http://front") as front:
            response = await front.get("/proxy")
    assert response.status_code == 503
    assert response.json() == {"errors": {"body": ["upstream service unavailable"]}}
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize("name", [".", "..", "a/..", "../x", "%2E%2E"])
async def test_dot_segments_in_path_params_never_reach_another_route(name: str) -> None:
    """Over the real transport: `..` as a username must not turn `/items/{name}` into `/items`.

    A value with "/" is sent as `%2F`; the server decodes it and finds no route (404), never the listing."""
    app = FastAPI()

    @app.get("/items")
    async def listing() -> list[Item]:
        return []

    @app.get("/items/{item_name}")
    async def one(item_name: str) -> Item:
        return Item(id=1, name=item_name)

    async with serve(app) as url, ServiceClient(downstream="blog", base_url=url, settings=_settings()) as client:
        if "/" in name:
            with pytest.raises(UpstreamClientError) as refused:
                await client.get("/items/{name}", path_params={"name": name}, response_model=Item)
            assert refused.value.upstream_status == 404
        else:
            item = await client.get("/items/{name}", path_params={"name": name}, response_model=Item)
            assert item.name == name


async def test_patch_is_not_retried_without_a_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(503)

    async with _mock(handler) as client:
        with pytest.raises(UpstreamUnavailable):
            await client.patch("/items/1", json={"name": "b"}, response_model=Item)
    assert [(request.method, request.content) for request in seen] == [("PATCH", b'{"name":"b"}')]
