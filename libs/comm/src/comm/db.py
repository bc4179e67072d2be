"""Database plumbing every service shares: engine and sessions for the lifespan, Alembic migrations.

Each service owns its database and its migrations (`<service>/migrations`); this module only runs them. A service's
`migrations/env.py` is one call to `run_env(metadata)`, and `migrate(package=..., url=...)` applies them from code
(tests, `python -m <service> migrate`, `make run`) on a connection it hands to Alembic, so it works inside a running
event loop too.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

import asyncpg
from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import Depends, FastAPI, Request
from sqlalchemy import MetaData, make_url, pool, text
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from comm.appstate import app_state
from comm.errors import DatabaseUnavailable, database_unreachable

log = logging.getLogger(__name__)

# Constraint names every service's migrations get (Alembic needs names to alter or drop constraints later).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """The MetaData of a service's declarative Base."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the constraint a write broke (`uq_posts_slug`, ...), as asyncpg reports it; None if unknown."""
    return getattr(exc.orig.__cause__ if exc.orig is not None else None, "constraint_name", None)


async def open_database(
    stack: AsyncExitStack, app: FastAPI, url: str, *, pool_size: int = 10, read_pool_size: int = 10
) -> AsyncEngine:
    """In a lifespan: the engine, the session factories and the read pool on `app.state`, closed with `stack`.

    A process holds `pool_size + read_pool_size` connections at most (`<P>DATABASE_POOL_SIZE`,
    `<P>DATABASE_READ_POOL_SIZE`); replicas x that sum must fit PostgreSQL's `max_connections` (100 by default),
    with the relays' and consumers' sessions drawn from the engine's pool.
    """
    engine = create_engine(url, pool_size=pool_size)
    stack.push_async_callback(engine.dispose)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    app.state.read_sessionmaker = create_sessionmaker(app.state.read_engine)
    app.state.read_pool = await ReadPool.open(url, size=read_pool_size)
    stack.push_async_callback(app.state.read_pool.close)
    return engine


class DatabaseSettings(Protocol):
    """What a service with a database reads for it (`<P>DATABASE_URL`, `<P>DATABASE_POOL_SIZE`, ...)."""

    database_url: str
    database_pool_size: int
    database_read_pool_size: int


async def open_service_database(stack: AsyncExitStack, app: FastAPI, settings: DatabaseSettings) -> AsyncEngine:
    """`open_database` as every service's lifespan calls it: URL and pool sizes from its settings."""
    return await open_database(
        stack,
        app,
        settings.database_url,
        pool_size=settings.database_pool_size,
        read_pool_size=settings.database_read_pool_size,
    )


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """One engine per process, created in the lifespan.

    A fixed pool, no overflow: an overflow connection is closed as soon as it is returned, so a burst above the
    pool size kept opening and closing connections (`make bench` saw it dominate a read); a request that finds
    the pool busy waits for a connection instead.

    No pre-ping: with asyncpg it costs three round trips per checkout (BEGIN, an empty query, ROLLBACK), more than
    the one-query read it guards (`make bench`). A connection that broke while idle is dealt with when it is
    used: that request fails with 503 and `Retry-After` (comm.errors; ServiceClient retries idempotent calls), and
    SQLAlchemy then replaces every pooled connection opened before the failure, so the next request gets a new one.
    """
    return create_async_engine(url, pool_size=pool_size, max_overflow=0)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses are built after the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request; the use case opens its own transaction with `session.begin()`."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A session per request for reads only: autocommit, each statement on its own, no BEGIN and no ROLLBACK.

    Under PostgreSQL's default READ COMMITTED every statement sees its own snapshot even inside a transaction, so
    a read loses nothing by running without one, and saves the two round trips that would open and close it.
    Never write through it: nothing would make two writes atomic.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.read_sessionmaker
    async with sessionmaker() as session:
        yield session


class ReadPool:
    """asyncpg's own pool for the hot reads (`Statement`): one statement each, autocommit, no Session.

    A read that is one statement needs no unit of work. Run on a connection of SQLAlchemy's pool it still paid the
    pool's checkout and return bookkeeping and asyncpg's reset on return (`make bench`: about 120 microseconds of
    CPU a read over asyncpg's own pool). Here a connection goes back to the pool as it is: nothing a read does
    leaves state on it (no transaction, no SET, no LISTEN), so the reset asyncpg's pool would run (a query and a
    round trip) is skipped. Connections open lazily (`min_size=0`), up to `size`.

    Connection loss is a 503 (`DatabaseUnavailable`, with `Retry-After`; the caller's client retries an idempotent
    read); asyncpg's pool drops the broken connection and opens a new one for the next read.
    """

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, size: int) -> "ReadPool":
        """The pool for `url`; it opens no connection yet (`min_size=0`), so a database that is down cannot fail it."""
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        return cls(await asyncpg.create_pool(dsn, min_size=0, max_size=size, reset=_keep_session))

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        rows: list[asyncpg.Record] = await self._run(self._pool.fetch, sql, args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await self._run(self._pool.fetchrow, sql, args)
        return row

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(self._pool.fetchval, sql, args)

    @staticmethod
    async def _run(method: Callable[..., Awaitable[Any]], sql: str, args: tuple[Any, ...]) -> Any:
        try:
            return await method(sql, *args)
        except Exception as exc:
            if database_unreachable(exc):  # lost, refused (ALLOW_CONNECTIONS false), too many clients
                raise DatabaseUnavailable from exc
            raise

    async def close(self) -> None:
        await self._pool.close()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A read leaves nothing to reset (see ReadPool)."""


class Statement:
    """A Core statement compiled once, at import, for asyncpg; executed with named parameters.

    The statement stays SQLAlchemy Core, written against the models; only its execution skips SQLAlchemy. asyncpg
    prepares it once per connection (its statement cache). Rows are asyncpg Records: `row["column"]`.
    """

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_ASYNCPG)
        assert isinstance(compiled, SQLCompiler)  # asyncpg's numbered parameters: their names in order
        self.sql = str(compiled)
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self._values = {name: value for name, value in compiled.params.items() if value is not None}  # literal(0)

    def _args(self, params: Mapping[str, Any]) -> list[Any]:
        return [params[name] if name in params else self._values[name] for name in self._names]

    async def fetch(self, db: ReadPool, **params: Any) -> list[asyncpg.Record]:
        return await db.fetch(self.sql, *self._args(params))

    async def fetchrow(self, db: ReadPool, **params: Any) -> asyncpg.Record | None:
        return await db.fetchrow(self.sql, *self._args(params))

    async def fetchval(self, db: ReadPool, **params: Any) -> Any:
        return await db.fetchval(self.sql, *self._args(params))


_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


Session = Annotated[AsyncSession, Depends(get_session)]
ReadSession = Annotated[AsyncSession, Depends(get_read_session)]
read_pool = app_state("read_pool", ReadPool)  # the app's ReadPool, kept in the lifespan
ReadDatabase = Annotated[ReadPool, Depends(read_pool)]


async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist (for `make run` on a fresh server).

    Only a missing database goes through the `postgres` database: a role that owns its database but may not
    create one (compose's and Kubernetes' `*_app` roles) never needs to.
    """
    parsed = make_url(url)
    try:
        await (await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))).close()
        return
    except asyncpg.InvalidCatalogNameError:
        pass
    admin = parsed.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)
    conn = await asyncpg.connect(admin)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", parsed.database)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await conn.close()


def alembic_config(*, package: str, url: str) -> Config:
    """Alembic configuration for a service's `migrations` folder, without an ini file."""
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@dataclass(frozen=True)
class Schema:
    """What a service's code knows of its schema: the revision it expects (its migrations' head) and all the
    revisions of its migrations. A database at a revision outside them is at a later release's (docs/operations.md:
    a rollback keeps the newer, expanded schema)."""

    head: str
    known: frozenset[str]

    @classmethod
    def of(cls, package: str) -> "Schema":
        script = ScriptDirectory.from_config(alembic_config(package=package, url=""))
        head = script.get_current_head()  # raises if the migrations have two heads
        assert head is not None, f"{package} has no migrations"
        return cls(head=head, known=frozenset(revision.revision for revision in script.walk_revisions()))

    def usable(self, current: str | None) -> bool:
        """Whether this code may run on a database at `current`: at its head, or at a later release's."""
        return current == self.head or (current is not None and current not in self.known)


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's Alembic revision; None before the first migration."""
    async with engine.connect() as conn:
        try:
            revision: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        except ProgrammingError:  # no alembic_version table yet
            return None
        return revision


async def migrate(*, package: str, url: str, revision: str = "head") -> None:
    """Upgrade the service's database to `revision`; a database at a later release's revision is left as it is.

    Safe to run from several processes at once (each pod's init container): a transaction-level advisory lock
    makes them take turns, and the ones after the first find the schema at head.
    """
    schema = Schema.of(package)

    def upgrade(config: Config) -> None:
        connection = config.attributes["connection"]
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        current = MigrationContext.configure(connection).get_current_revision()
        if current is not None and current not in schema.known:
            log.warning(
                "%s: database at revision %s, a later release's (this code's head is %s): left as it is",
                *(package, current, schema.head),
            )
            return
        command.upgrade(config, revision)

    await _alembic(package=package, url=url, run=upgrade)


_MIGRATION_LOCK = 0x6D696772  # "migr": advisory locks are per database, and each service has its own


async def _alembic(*, package: str, url: str, run: Callable[[Config], object]) -> None:
    """Run an Alembic command on a connection of ours (env.py picks it up), in one transaction."""
    config = alembic_config(package=package, url=url)
    engine = create_async_engine(url, poolclass=pool.NullPool)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda connection: _with_connection(config, connection, run))
    finally:
        await engine.dispose()


def _with_connection(config: Config, connection: Connection, run: Callable[[Config], object]) -> None:
    config.attributes["connection"] = connection
    run(config)


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_migrations(connection, target_metadata)
        return
    asyncio.run(_run_migrations_async(context.config.get_main_option("sqlalchemy.url", ""), target_metadata))


async def _run_migrations_async(url: str, target_metadata: MetaData) -> None:
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as conn:
        await conn.run_sync(_run_migrations, target_metadata)
        await conn.commit()
    await engine.dispose()


def _run_migrations(connection: Connection, target_metadata: MetaData) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def autogenerate(*, package: str, url: str, message: str) -> None:
    """Write a new revision: the difference between the service's models and its migrations at head."""
    await migrate(package=package, url=url)
    await _alembic(
        package=package, url=url, run=lambda config: command.revision(config, message=message, autogenerate=True)
    )


async def _autogenerate_on_scratch_database(package: str, message: str) -> None:
    from comm.testing import temporary_database  # a scratch database, dropped afterwards

    async with temporary_database(f"rev_{package}") as url:
        await autogenerate(package=package, url=url, message=message)


if __name__ == "__main__":  # python -m comm.db <service> "<message>": see `make migration`
    import sys

    asyncio.run(_autogenerate_on_scratch_database(sys.argv[1], sys.argv[2]))
