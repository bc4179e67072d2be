"""Argon2id parameters, and the rehash on login when they change."""

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx

from auth.passwords import Passwords
from auth.settings import AuthSettings

Register = Callable[[], Awaitable[dict[str, Any]]]


async def test_hashes_use_argon2id_at_owasp_parameters() -> None:
    stored = await Passwords(AuthSettings()).hash("password")
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_login_rehashes_a_hash_made_with_old_parameters(
    client: httpx.AsyncClient, register: Register, settings: AuthSettings
) -> None:
    user = await register()
    old = await Passwords(AuthSettings(argon2_time_cost=3)).hash("password")
    conn = await asyncpg.connect(settings.database_url.replace("+asyncpg", ""))
    try:
        await conn.execute("UPDATE users SET password_hash = $1 WHERE email = $2", old, user["email"])
        response = await client.post("/auth/login", json={"email": user["email"], "password": "password"})
        assert response.status_code == 200
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", user["email"])
    finally:
        await conn.close()
    assert stored != old
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
