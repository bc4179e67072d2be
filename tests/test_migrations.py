"""Each service's migrations: they build exactly the schema its models describe (no drift between the two), they
gate readiness (a pod is ready only on a schema at its code's head), and they run safely from every pod at once."""

import asyncio
import importlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from comm.bootstrap import service_app
from comm.db import Schema, current_revision, migrate, open_database
from comm.settings import CommSettings
from comm.testing import temporary_database


@pytest.mark.parametrize("service", ["auth", "blog", "user", "comment"])
async def test_migrations_match_the_models(service: str) -> None:
    metadata = importlib.import_module(f"{service}.models").Base.metadata
    async with temporary_database(f"drift_{service}") as url:
        await migrate(package=service, url=url)
        engine = create_async_engine(url, poolclass=pool.NullPool)
        async with engine.connect() as conn:
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), metadata))
        await engine.dispose()
    assert diff == []


# ---- migrations as a deployment step (docs/operations.md) ----------------------------------------------------------


@asynccontextmanager
async def blog_app(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A service app as comm.bootstrap builds every one, on `url`, with its default readiness check."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            await open_database(stack, app, url)
            yield

    app = service_app(CommSettings(service_name="blog"), max_body_bytes=1024, lifespan=lifespan)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://blog") as client,
    ):
        yield client


async def set_revision(url: str, revision: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("UPDATE alembic_version SET version_num = $1", revision)
    finally:
        await conn.close()


async def test_a_service_is_ready_only_once_its_schema_is_at_the_head_of_its_migrations() -> None:
    schema = Schema.of("blog")
    first = min(schema.known - {schema.head})  # any revision before the head
    async with temporary_database("ready_blog") as url, blog_app(url) as client:
        fresh = await client.get("/ready")
        assert (fresh.status_code, fresh.json()["checks"]["database"]) == (
            503,
            f"failed: schema at no revision, this code needs {schema.head}",
        )
        await migrate(package="blog", url=url, revision=first)
        behind = await client.get("/ready")
        assert (behind.status_code, behind.json()["checks"]["database"]) == (
            503,
            f"failed: schema at {first}, this code needs {schema.head}",
        )
        await migrate(package="blog", url=url)
        assert (await client.get("/ready")).status_code == 200
        # Rolled back onto a schema a later release expanded: still ready (expand/contract, docs/operations.md).
        await set_revision(url, "f00dfeedbeef")
        assert (await client.get("/ready")).status_code == 200


async def test_migrate_leaves_a_later_release_schema_as_it_is() -> None:
    async with temporary_database("later_blog") as url:
        await migrate(package="blog", url=url)
        await set_revision(url, "f00dfeedbeef")
        await migrate(package="blog", url=url)  # the older release's init container: no error, nothing done
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            assert await current_revision(engine) == "f00dfeedbeef"
        finally:
            await engine.dispose()


@pytest.mark.parametrize("service", ["auth", "blog", "user", "comment"])
async def test_migrations_started_together_take_turns(service: str) -> None:
    """What the pods of a rollout do: each runs `migrate` as it starts, on the same fresh database."""
    async with temporary_database(f"turns_{service}") as url:
        await asyncio.gather(*(migrate(package=service, url=url) for _ in range(3)))
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            assert await current_revision(engine) == Schema.of(service).head
        finally:
            await engine.dispose()
