"""Each service's migrations build exactly the schema its models describe (no drift between the two)."""

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import pool
from sqlalchemy.ext.asyncio import create_async_engine

from comm.db import migrate
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
