"""Every error renders as `{"errors": {...}}` with its status; no traceback ever reaches the body."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel

from comm.errors import (
    CircuitOpen,
    Conflict,
    NotFound,
    RateLimited,
    UpstreamClientError,
    UpstreamTimeout,
    UpstreamUnavailable,
    install_error_handlers,
)
from comm.metrics import REGISTRY, setup_metrics
from comm.routing import add_routes


class PostNotFound(NotFound):
    detail = "article not found"


class NewUser(BaseModel):
    username: str
    email: str


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    setup_metrics(app, "errors-test")

    @app.get("/posts/{slug}")
    async def get_post(slug: str) -> None:
        raise PostNotFound

    @app.post("/users")
    async def create_user(user: NewUser) -> None:
        raise Conflict(errors={"email": ["has already been taken"]})

    @app.get("/limited")
    async def limited() -> None:
        raise RateLimited(retry_after=2.5)

    @app.get("/upstream/{kind}")
    async def upstream(kind: str) -> None:
        errors = {
            "unavailable": UpstreamUnavailable(downstream="blog", retry_after=7),
            "open": CircuitOpen(downstream="blog", retry_after=0.2),
            "timeout": UpstreamTimeout(downstream="blog"),
            "refused": UpstreamClientError(downstream="blog", upstream_status=403, errors={"body": ["not yours"]}),
        }
        raise errors[kind]

    @app.get("/boom")
    async def boom() -> None:
        raise ZeroDivisionError("secret internals")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # Starlette re-raises unhandled errors after answering (for servers to log); the answer is what we check.
    transport = httpx.ASGITransport(_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_app_error_renders_its_status_and_detail(client: httpx.AsyncClient) -> None:
    response = await client.get("/posts/nope")
    assert response.status_code == 404
    assert response.json() == {"errors": {"body": ["article not found"]}}


async def test_field_keyed_errors(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={"username": "a", "email": "a@example.com"})
    assert response.status_code == 422
    assert response.json() == {"errors": {"email": ["has already been taken"]}}


async def test_validation_error_is_422_keyed_by_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={"username": "a"})
    assert response.status_code == 422
    assert list(response.json()["errors"]) == ["email"]
    assert response.json()["errors"]["email"] == ["Field required"]


async def test_malformed_json_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "errors" in response.json()


async def test_unknown_route_and_wrong_method(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json() == {"errors": {"body": ["Not Found"]}}
    wrong = await client.delete("/users")
    assert wrong.status_code == 405
    assert wrong.json() == {"errors": {"body": ["Method Not Allowed"]}}
    assert wrong.headers["allow"] == "POST"


async def test_wrong_method_allows_the_documented_paths_methods_only() -> None:
    """`/things/mine` is its own path (GET); `/things/{id}` would match it too, but its DELETE is not mine's."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(prefix="/things")

    @router.get("/mine")
    async def mine() -> dict[str, str]:
        return {}

    @router.delete("/{thing_id}")
    async def remove(thing_id: str) -> None:
        return None

    add_routes(app, router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://x") as client:
        assert (await client.patch("/things/mine")).headers["allow"] == "GET"
        assert (await client.patch("/things/other")).headers["allow"] == "DELETE"


async def test_unhandled_exception_is_500_without_traceback(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"errors": {"body": ["internal error"]}}
    assert "Traceback" not in response.text
    assert "secret internals" not in response.text


@pytest.mark.parametrize(
    ("path", "status", "retry_after"),
    [
        ("/limited", 429, "3"),
        ("/upstream/unavailable", 503, "7"),
        ("/upstream/open", 503, "1"),
        ("/upstream/timeout", 504, "1"),
    ],
)
async def test_retry_after_on_429_503_504(client: httpx.AsyncClient, path: str, status: int, retry_after: str) -> None:
    response = await client.get(path)
    assert response.status_code == status
    assert response.headers["retry-after"] == retry_after
    assert list(response.json()["errors"]) == ["body"]


async def test_upstream_client_error_passes_status_and_errors_through(client: httpx.AsyncClient) -> None:
    response = await client.get("/upstream/refused")
    assert response.status_code == 403
    assert response.json() == {"errors": {"body": ["not yours"]}}
    assert "retry-after" not in response.headers


async def test_rendered_errors_are_counted_by_type(client: httpx.AsyncClient) -> None:
    labels = {"service": "errors-test", "type": "PostNotFound"}
    before = REGISTRY.get_sample_value("error_total", labels) or 0.0
    await client.get("/posts/nope")
    assert REGISTRY.get_sample_value("error_total", labels) == before + 1
