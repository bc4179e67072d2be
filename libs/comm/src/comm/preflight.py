"""`python -m comm.preflight`: before `make run`, check that PostgreSQL and RabbitMQ answer, and say what is missing.

It reads the same settings the apps read (each service's database URL, RABBITMQ_URL) and exits non-zero with
one line per missing server and the command that starts it on a Debian machine.
"""

import asyncio
import os
import sys
from collections.abc import Awaitable

import aio_pika
import asyncpg
from sqlalchemy import make_url

from comm.settings import CommSettings

SERVICES = ("auth", "blog", "user", "comment")
HINTS = {
    "PostgreSQL": "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
    "   (or: docker compose up postgres)",
    "RabbitMQ": "rabbitmq-server -detached   (or: docker compose up rabbitmq)",
}


async def _check(name: str, probe: Awaitable[object]) -> str | None:
    try:
        await asyncio.wait_for(probe, 5)
    except Exception as exc:  # any failure means "not reachable"; the message says which
        return f"{name} is not reachable ({type(exc).__name__}: {exc}).\n    start it with: {HINTS[name]}"
    return None


async def _postgres(url: str) -> None:
    parsed = make_url(url).set(drivername="postgresql", database="postgres")
    conn = await asyncpg.connect(parsed.render_as_string(hide_password=False))
    await conn.close()


async def _rabbitmq(url: str) -> None:
    connection = await aio_pika.connect(url, timeout=5)
    await connection.close()


async def preflight() -> list[str]:
    """One message per missing server; empty when everything answers."""
    settings = CommSettings()
    urls = {os.environ.get(f"{s.upper()}_DATABASE_URL", f"postgresql://postgres@localhost:5432/{s}") for s in SERVICES}
    checks = [_check("PostgreSQL", _postgres(url)) for url in sorted(urls)]
    checks.append(_check("RabbitMQ", _rabbitmq(settings.rabbitmq_url)))
    return sorted({problem for problem in await asyncio.gather(*checks) if problem})


if __name__ == "__main__":
    problems = asyncio.run(preflight())
    for problem in problems:
        print(f"make run: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)
