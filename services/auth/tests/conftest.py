"""The auth service under a real uvicorn server, on its own fresh database and its own exchange."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth.main import create_app
from auth.settings import AuthSettings
from comm.db import migrate
from comm.events.testing import delete_topology
from comm.testing import serve, temporary_database, unique_name
from comm.tokens import HEADER, Identity, InternalTokens

GATEWAY = InternalTokens.development("gateway")  # what the apps accept with no keys set


def internal_headers(user_id: uuid.UUID | None = None, roles: frozenset[str] = frozenset()) -> dict[str, str]:
    """What the gateway sends: an internal token for auth, on behalf of a user or of nobody."""
    return {HEADER: GATEWAY.mint(audience="auth", identity=Identity(user_id=user_id, roles=roles))}


@pytest.fixture(scope="session")
async def database_url() -> AsyncIterator[str]:
    async with temporary_database("auth") as url:
        await migrate(package="auth", url=url)
        yield url


@pytest.fixture(scope="session")
async def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AuthSettings]:
    settings = AuthSettings(
        database_url=database_url,
        events_exchange=unique_name("test.auth.events"),
        dev_signing_key_file=Path(tmp_path_factory.mktemp("keys")) / "signing.pem",
    )
    yield settings
    await delete_topology(url=settings.rabbitmq_url, exchange=settings.events_exchange)


@pytest.fixture(scope="session")
async def auth_url(settings: AuthSettings) -> AsyncIterator[str]:
    async with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
async def client(auth_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=auth_url, headers=internal_headers(), timeout=10) as client:
        yield client


Register = Callable[[], Awaitable[dict[str, Any]]]
Headers = Callable[..., dict[str, str]]


@pytest.fixture
def register(client: httpx.AsyncClient) -> Register:
    """Registers a new user with a unique name; returns the auth response (id, username, email, roles, token)."""

    async def new_user() -> dict[str, Any]:
        name = unique_name("u")
        response = await client.post(
            "/auth/register", json={"username": name, "email": f"{name}@mail.com", "password": "password"}
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    return new_user


@pytest.fixture
def headers_for() -> Headers:
    return internal_headers
