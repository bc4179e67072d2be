"""`python -m auth grant-role`: the documented way to make a moderator."""

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from auth.settings import AuthSettings

Register = Callable[[], Awaitable[dict[str, Any]]]


async def test_grant_role_gives_the_role_and_refuses_unknown_users(
    client: httpx.AsyncClient, register: Register, settings: AuthSettings
) -> None:
    user = await register()
    env = {**os.environ, "AUTH_DATABASE_URL": settings.database_url}
    status, stderr = await _grant(user["username"], env)
    assert status == 0, stderr
    validated = await client.post("/auth/validate", json={"token": user["token"]})
    assert validated.json()["roles"] == ["moderator"]
    status, stderr = await _grant("no-such-user-here", env)
    assert status == 1
    assert "user not found" in stderr
    assert "Traceback" not in stderr


async def _grant(username: str, env: dict[str, str]) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "auth", "grant-role", username, "moderator", env=env, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stderr.decode()
