"""The test support itself: a temporary database is real, usable and gone afterwards."""

import asyncpg

from comm.testing import admin_database_url, temporary_database


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
