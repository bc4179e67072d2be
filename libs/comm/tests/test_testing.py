"""The test support itself: a temporary database is real, usable and gone afterwards; the platform's environment."""

from pathlib import Path

import asyncpg
import pytest

from comm.testing import QUEUES, SERVICES, admin_database_url, platform_environment, queue_names, temporary_database


async def test_temporary_database_is_created_and_dropped() -> None:
    async with temporary_database("commtest") as url:
        name = url.rsplit("/", 1)[1]
        conn = await asyncpg.connect(url.replace("+asyncpg", ""))
        assert await conn.fetchval("SELECT current_database()") == name
        await conn.close()
    admin = await asyncpg.connect(admin_database_url())
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name) == 0
    finally:
        await admin.close()


def test_platform_environment_replaces_the_services_own_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLOG_DATABASE_URL", "postgresql+asyncpg://elsewhere/blog")  # a developer's, not the run's
    monkeypatch.setenv("GATEWAY_RATE_LIMIT_LOGIN", "1/minute")
    ports = {service: 8000 + i for i, service in enumerate(SERVICES)}
    env = platform_environment(
        databases={"blog": "postgresql+asyncpg://here/blog"},
        ports=ports,
        exchange="x",
        prefix="p",
        broker_url="amqp://broker/",
        logs=Path("/logs"),
        extra={"GATEWAY_RATE_LIMIT_REGISTER": "9/minute", "EVENTS_EXCHANGE": "y"},
    )
    assert env["BLOG_DATABASE_URL"] == "postgresql+asyncpg://here/blog"
    assert "GATEWAY_RATE_LIMIT_LOGIN" not in env
    assert "AUTH_DATABASE_URL" not in env
    assert env["GATEWAY_RATE_LIMIT_REGISTER"] == "9/minute"
    assert env["EVENTS_EXCHANGE"] == "y"  # the extra settings come last
    assert env["USER_SERVICE_URL"] == f"http://127.0.0.1:{ports['user']}"
    assert [f"{env[f'{s.upper()}_QUEUE_PREFIX']}.{c}" for s, cs in QUEUES.items() for c in cs] == queue_names("p")
