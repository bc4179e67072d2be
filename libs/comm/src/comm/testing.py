"""Test support shared by every suite: real servers and real databases, isolated by unique names.

Tests use the real PostgreSQL and RabbitMQ (DESIGN §6); each run creates what it needs under a unique name and
drops it afterwards, so suites can run side by side on the shared servers.
"""

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import uvicorn

ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def unique_name(prefix: str) -> str:
    """A name no other test run uses: `prefix_<12 hex>`."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def admin_database_url() -> str:
    return os.environ.get("TEST_DATABASE_ADMIN_URL", ADMIN_DATABASE_URL)


@asynccontextmanager
async def temporary_database(prefix: str = "test") -> AsyncIterator[str]:
    """Create an empty database, yield its SQLAlchemy asyncpg URL, drop it on exit."""
    name = unique_name(prefix)
    admin = admin_database_url()
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base, _, _ = admin.rpartition("/")
    try:
        yield f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def free_port() -> int:
    """A TCP port that was free a moment ago (for servers that must be told their port up front)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serve(app: Any, *, port: int = 0, **config: Any) -> AsyncIterator[str]:
    """Run an ASGI app under a real uvicorn server in this event loop; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **config)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        await task
