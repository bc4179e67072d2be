"""End to end with the real auth service: register there, and the profile appears here through the real broker."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from auth.main import create_app as create_auth_app
from auth.settings import AuthSettings
from comm.db import migrate
from comm.events.testing import wait_until
from comm.testing import serve, temporary_database, unique_name
from comm.tokens import HEADER, Identity, InternalTokens
from user.settings import UserSettings


@pytest.fixture(scope="module")
async def auth_client(
    settings: UserSettings, user_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """The auth app on its own temporary database, publishing to this suite's exchange (the user app is up first,
    so its queues are bound before auth publishes anything)."""
    async with temporary_database("auth") as url:
        await migrate(package="auth", url=url)
        auth_settings = AuthSettings(
            database_url=url,
            events_exchange=settings.events_exchange,
            dev_signing_key_file=Path(tmp_path_factory.mktemp("auth-keys")) / "signing.pem",
            outbox_poll_interval_seconds=0.2,
        )
        async with (
            serve(create_auth_app(auth_settings)) as auth_url,
            httpx.AsyncClient(base_url=auth_url, headers=_for_auth(None), timeout=10) as client,
        ):
            yield client


async def test_registering_with_auth_creates_the_profile_here(
    auth_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    name = unique_name("e2e")
    registered = await auth_client.post(
        "/auth/register", json={"username": name, "email": f"{name}@mail.com", "password": "password"}
    )
    assert registered.status_code == 201, registered.text
    user_id = registered.json()["id"]

    async def profile_is_here() -> bool:
        return (await client.get(f"/profiles/{user_id}")).status_code == 200

    await wait_until(profile_is_here, within=30, interval=0.05)
    assert (await client.get(f"/profiles/by-username/{name}")).json()["user_id"] == user_id

    renamed = await auth_client.patch(
        "/auth/users/me", json={"username": name + "_2"}, headers=_for_auth(uuid.UUID(user_id))
    )
    assert renamed.status_code == 200, renamed.text

    async def rename_arrived() -> bool:
        username: str = (await client.get(f"/profiles/{user_id}")).json()["username"]
        return username == name + "_2"

    await wait_until(rename_arrived, within=30, interval=0.05)


def _for_auth(user_id: uuid.UUID | None) -> dict[str, str]:
    """What the gateway sends to auth."""
    tokens = InternalTokens.from_settings(UserSettings(service_name="gateway"))
    return {HEADER: tokens.mint(audience="auth", identity=Identity(user_id=user_id))}
