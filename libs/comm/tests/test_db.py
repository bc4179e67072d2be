"""comm.db against the real PostgreSQL: reads without a transaction, and a lost connection answered with 503."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Integer, bindparam, literal, make_url, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from comm.db import ReadDatabase, ReadSession, Session, Statement, create_engine, open_database, violated_constraint
from comm.errors import install_error_handlers
from comm.testing import free_port, temporary_database

FORTY_TWO = Statement(select(bindparam("x", type_=Integer) + literal(1)))  # a named parameter and a bound value


async def same_xact(session: AsyncSession) -> bool:
    """Whether two statements in a row ran in the same transaction (each asks for its transaction's id)."""
    first = await session.scalar(text("SELECT txid_current()"))
    return bool(first == await session.scalar(text("SELECT txid_current()")))


@asynccontextmanager
async def app_on_database() -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """An app with one read route and one write route on a database of its own; yields a client and the URL."""
    async with temporary_database("commdb") as url, AsyncExitStack() as stack:
        app = FastAPI()
        install_error_handlers(app)
        await open_database(stack, app, url)

        @app.get("/backend")
        async def backend(session: ReadSession) -> dict[str, object]:
            return {
                "pid": await session.scalar(text("SELECT pg_backend_pid()")),
                "one_transaction": await same_xact(session),
            }

        @app.get("/connection")
        async def connection(db: ReadDatabase) -> dict[str, object]:
            first = await db.fetchval("SELECT txid_current()")
            answer = await FORTY_TWO.fetchrow(db, x=41)
            return {"one_transaction": first == await db.fetchval("SELECT txid_current()"), "x": answer and answer[0]}

        @app.get("/slow")
        async def slow(db: ReadDatabase) -> dict[str, object]:
            return {"slept": await db.fetchval("SELECT pg_sleep(5) IS NULL")}

        @app.post("/write")
        async def write(session: Session) -> dict[str, object]:
            async with session.begin():
                await session.execute(text("CREATE TABLE IF NOT EXISTS t (x int)"))
                await session.execute(text("INSERT INTO t VALUES (1)"))
                one_transaction = await same_xact(session)
            return {"one_transaction": one_transaction}

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client, url


async def terminate_backends(url: str, *, running: str | None = None) -> int:
    """Kill the server processes connected to `url`'s database (the test's own, no other); with `running`, only
    those running a query like it."""
    database = make_url(url).database
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        kill = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> $2"
        if running is None:
            return int(await conn.fetchval(kill, database, conn.get_server_pid()))
        kill += " AND state = 'active' AND query LIKE $3"
        return int(await conn.fetchval(kill, database, conn.get_server_pid(), running))
    finally:
        await conn.close()


@pytest.mark.asyncio
async def test_reads_run_without_a_transaction_and_a_write_session_inside_one() -> None:
    async with app_on_database() as (client, _):
        assert (await client.get("/backend")).json()["one_transaction"] is False
        assert (await client.get("/connection")).json() == {"one_transaction": False, "x": 42}
        assert (await client.post("/write")).json() == {"one_transaction": True}


@pytest.mark.asyncio
async def test_a_session_connection_lost_while_pooled_fails_one_request_with_503_and_the_next_gets_a_new_one() -> None:
    async with app_on_database() as (client, url):
        before = (await client.get("/backend")).json()["pid"]
        assert await terminate_backends(url) >= 1

        lost = await client.get("/backend")
        assert lost.status_code == 503
        assert lost.headers["retry-after"] == "1"
        assert lost.json() == {"errors": {"body": ["database unavailable, try again"]}}

        again = await client.get("/backend")
        assert again.status_code == 200
        assert again.json()["pid"] != before


@pytest.mark.asyncio
async def test_the_read_pool_replaces_a_connection_lost_while_idle() -> None:
    async with app_on_database() as (client, url):
        assert (await client.get("/connection")).status_code == 200
        assert await terminate_backends(url) >= 1
        await asyncio.sleep(0.1)  # the server's goodbye reaches the idle connection
        assert (await client.get("/connection")).json() == {"one_transaction": False, "x": 42}


@pytest.mark.asyncio
async def test_a_read_whose_connection_is_lost_midway_is_503_and_the_next_read_gets_a_new_one() -> None:
    async with app_on_database() as (client, url):
        slow = asyncio.create_task(client.get("/slow"))
        for _ in range(50):  # until the read is running on the server
            await asyncio.sleep(0.05)
            if await terminate_backends(url, running="%pg_sleep%"):
                break
        lost = await slow
        assert lost.status_code == 503
        assert lost.headers["retry-after"] == "1"
        assert lost.json() == {"errors": {"body": ["database unavailable, try again"]}}
        assert (await client.get("/connection")).json() == {"one_transaction": False, "x": 42}


@pytest.mark.asyncio
async def test_a_write_on_a_lost_connection_is_503_and_stores_nothing_half_done() -> None:
    async with app_on_database() as (client, url):
        assert (await client.post("/write")).status_code == 200
        await terminate_backends(url)
        assert (await client.post("/write")).status_code == 503
        assert (await client.post("/write")).status_code == 200
        conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(hide_password=False))
        try:
            assert await conn.fetchval("SELECT count(*) FROM t") == 2  # the failed write left no row
        finally:
            await conn.close()


async def test_a_database_that_refuses_connections_is_503_not_500() -> None:
    async with AsyncExitStack() as stack:
        app = FastAPI()
        install_error_handlers(app)
        await open_database(stack, app, f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing")

        @app.get("/read")
        async def read(session: ReadSession) -> int | None:
            return await session.scalar(text("SELECT 1"))

        @app.get("/connection")
        async def connection(db: ReadDatabase) -> int | None:
            answer: int | None = await db.fetchval("SELECT 1")
            return answer

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            responses = [await client.get(route) for route in ("/read", "/connection")]
    for response in responses:
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json() == {"errors": {"body": ["database unavailable, try again"]}}


async def test_a_unique_violation_names_its_constraint() -> None:
    async with temporary_database("unique") as url:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.begin() as connection:
                await connection.execute(text("CREATE TABLE t (name text CONSTRAINT uq_t_name UNIQUE)"))
                await connection.execute(text("INSERT INTO t VALUES ('a')"))
            with pytest.raises(IntegrityError) as caught:
                async with engine.begin() as connection:
                    await connection.execute(text("INSERT INTO t VALUES ('a')"))
            assert violated_constraint(caught.value) == "uq_t_name"
        finally:
            await engine.dispose()


@pytest.mark.asyncio
async def test_a_database_refusing_connections_is_503_on_reads_and_writes_not_500() -> None:
    """`ALLOW_CONNECTIONS false` (an operator, a failover) refuses new connections with SQLSTATE 55000, which asyncpg
    raises as ObjectNotInPrerequisiteStateError: the hot reads' pool answered 500 with it (the soak's user database
    outage) until `database_unreachable`, the consumers' rule, decided the answer everywhere."""
    async with app_on_database() as (client, url):
        database = make_url(url).database
        admin = await asyncpg.connect(
            make_url(url).set(drivername="postgresql", database="postgres").render_as_string()
        )
        try:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)
            for path, method in (("/connection", "GET"), ("/backend", "GET"), ("/write", "POST")):
                refused = await client.request(method, path)
                assert refused.status_code == 503, (path, refused.text)
                assert refused.json() == {"errors": {"body": ["database unavailable, try again"]}}
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()
        assert (await client.get("/connection")).json() == {"one_transaction": False, "x": 42}
