"""`python -m comm.preflight auth blog ...`: before `make run`, check that PostgreSQL and RabbitMQ answer.

It reads each named service's own settings class (`<service>.settings`), so it checks exactly the database URL and
RABBITMQ_URL the apps will use, defaults included, and exits non-zero with one line per missing server and the
command that starts it on a Debian machine. The Makefile names the services; the library knows none of them.
"""

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Sequence

import aio_pika
import asyncpg
from sqlalchemy import make_url

from comm.settings import CommSettings

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


def service_settings(package: str) -> CommSettings:
    """The settings a service reads, from its own class in `<package>.settings`."""
    module = importlib.import_module(f"{package}.settings")
    (settings,) = (
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, CommSettings) and value.__module__ == module.__name__
    )
    return settings()


async def preflight(packages: Sequence[str]) -> list[str]:
    """One message per missing server; empty when everything answers."""
    services = [service_settings(package) for package in packages]
    urls = {url for settings in services if (url := getattr(settings, "database_url", None))}  # gateway: none
    checks = [_check("PostgreSQL", _postgres(url)) for url in sorted(urls)]
    checks += [_check("RabbitMQ", _rabbitmq(url)) for url in sorted({s.rabbitmq_url for s in services})]
    return sorted({problem for problem in await asyncio.gather(*checks) if problem})


if __name__ == "__main__":
    problems = asyncio.run(preflight(sys.argv[1:]))
    for problem in problems:
        print(f"make run: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)
