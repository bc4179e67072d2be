"""Argon2id parameters, and the rehash on login when they change."""

import asyncio
import threading
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


async def test_a_burst_of_hashes_and_verifies_runs_at_most_the_configured_number_at_once() -> None:
    """Each Argon2id run holds 19 MiB: the bound is what keeps a login burst inside the pod's memory limit."""
    passwords = Passwords(AuthSettings(password_hash_concurrency=2, argon2_memory_cost_kib=1024, argon2_time_cost=1))
    running, peak, lock = 0, 0, threading.Lock()

    def counted(run: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            try:
                threading.Event().wait(0.05)  # long enough for the other threads to pile in
                return run(*args)
            finally:
                with lock:
                    running -= 1

        return wrapper

    passwords._hash.hash = counted(passwords._hash.hash)  # type: ignore[method-assign]
    passwords._hash.verify_and_update = counted(passwords._hash.verify_and_update)  # type: ignore[method-assign]
    await asyncio.gather(
        *(passwords.hash(f"password-{n}") for n in range(6)), *(passwords.verify("password", None) for _ in range(6))
    )
    assert peak == 2


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
